//! Builds a manifest for an ONNX file that has none, from the image metadata that
//! Azure Custom Vision and Windows ML exports carry (`Image.BitmapPixelFormat`,
//! `Image.NominalPixelRange`) and the `labels.txt` they ship beside the model.

use std::collections::HashMap;
use std::path::Path;

use super::ModelError;
use super::manifest::{
    ColorOrder, DecisionSpec, InputSpec, Layout, Manifest, OutputSpec, ResizeMode,
};

pub const PIXEL_FORMAT: &str = "Image.BitmapPixelFormat";
pub const PIXEL_RANGE: &str = "Image.NominalPixelRange";
const LABELS_FILE: &str = "labels.txt";
/// Labels that conventionally mean a good part in exported classifiers.
const GOOD_NAMES: [&str; 5] = ["good", "ok", "pass", "normal", "no_defect"];

/// The pieces of the ONNX file the manifest is derived from.
#[derive(Debug)]
pub struct OnnxFacts<'a> {
    pub metadata: &'a HashMap<String, String>,
    /// Declared input shape; `None` for symbolic dimensions.
    pub input_shape: &'a [Option<usize>],
}

pub fn manifest_from_metadata(onnx: &Path, facts: &OnnxFacts<'_>) -> Result<Manifest, ModelError> {
    let incompatible = |reason: String| ModelError::Incompatible {
        path: onnx.to_owned(),
        reason,
    };
    let format = facts
        .metadata
        .get(PIXEL_FORMAT)
        .ok_or_else(|| ModelError::NoManifest {
            path: onnx.to_owned(),
        })?;
    let color = match format.as_str() {
        "Rgb8" | "Rgba8" => ColorOrder::Rgb,
        "Bgr8" | "Bgra8" => ColorOrder::Bgr,
        "Gray8" => ColorOrder::Gray,
        other => {
            return Err(incompatible(format!(
                "unsupported {PIXEL_FORMAT} {other:?}"
            )));
        }
    };
    let range = facts
        .metadata
        .get(PIXEL_RANGE)
        .map_or("NominalRange_0_255", String::as_str);
    let (mean, std) = match range {
        "NominalRange_0_255" => (0.0, 1.0),
        "Normalized_0_1" => (0.0, 255.0),
        "Normalized_1_1" => (127.5, 127.5),
        other => return Err(incompatible(format!("unsupported {PIXEL_RANGE} {other:?}"))),
    };
    let (layout, height, width) = match facts.input_shape {
        [_, Some(c), Some(h), Some(w)] if *c == color.channels() => (Layout::Nchw, *h, *w),
        [_, Some(h), Some(w), Some(c)] if *c == color.channels() => (Layout::Nhwc, *h, *w),
        shape => {
            return Err(incompatible(format!(
                "input shape {shape:?} is not a {}-channel image in NCHW or NHWC",
                color.channels()
            )));
        }
    };
    let labels = read_labels(onnx)?;
    let good = labels
        .iter()
        .filter(|l| GOOD_NAMES.contains(&l.to_ascii_lowercase().as_str()))
        .cloned()
        .collect();
    let name = onnx
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    Ok(Manifest {
        name,
        version: "0".into(),
        description: format!("derived from ONNX image metadata ({format}, {range})"),
        onnx: onnx.file_name().map(Into::into).unwrap_or_default(),
        labels,
        good,
        input: InputSpec {
            width: to_u32(width, onnx)?,
            height: to_u32(height, onnx)?,
            layout,
            color,
            resize: ResizeMode::Stretch,
            mean: [mean; 3],
            std: [std; 3],
        },
        output: OutputSpec::default(),
        decision: DecisionSpec::default(),
        head: None,
        familiarity: None,
        training: None,
    })
}

fn to_u32(v: usize, onnx: &Path) -> Result<u32, ModelError> {
    u32::try_from(v).map_err(|_| ModelError::Incompatible {
        path: onnx.to_owned(),
        reason: format!("input side {v} is too large"),
    })
}

fn read_labels(onnx: &Path) -> Result<Vec<String>, ModelError> {
    let path = onnx.with_file_name(LABELS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
        path: path.clone(),
        source,
    })?;
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(Into::into)
        .collect();
    if labels.is_empty() {
        return Err(ModelError::Manifest {
            path,
            reason: "no labels".into(),
        });
    }
    Ok(labels)
}
