//! The model manifest: everything Inspecta must know about an ONNX file to turn pixels
//! into a verdict. It lives beside the `.onnx` as TOML, so a quality engineer can read and
//! tune thresholds without touching the model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelError;

/// Manifest file name looked up inside a model directory.
pub const MANIFEST_FILE: &str = "model.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// ONNX file, relative to the manifest.
    pub onnx: PathBuf,
    /// One label per model output score, in output order.
    pub labels: Vec<String>,
    /// Labels that mean "good part". Empty for defect-type-only models (every part is a defect).
    #[serde(default)]
    pub good: Vec<String>,
    pub input: InputSpec,
    #[serde(default)]
    pub output: OutputSpec,
    #[serde(default)]
    pub decision: DecisionSpec,
    /// A head Inspecta trained on the ONNX network's feature maps (`inspecta train`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<super::head::HeadSpec>,
    /// What the model's training images looked like, so frames unlike them go to the
    /// operator (`inspecta familiarize`, or `inspecta train`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub familiarity: Option<super::familiarity::FamiliaritySpec>,
    /// Free-form provenance written by the training recipe; kept, never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<toml::Table>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub color: ColorOrder,
    #[serde(default)]
    pub resize: ResizeMode,
    /// Subtracted from each 0..255 channel value, in the model's channel order.
    #[serde(default = "zeros")]
    pub mean: [f32; 3],
    /// Divides each channel after the mean is subtracted.
    #[serde(default = "ones")]
    pub std: [f32; 3],
}

impl InputSpec {
    /// The part of a `width` x `height` frame the model sees, as (x, y, width, height) in 0..1:
    /// all of it when stretched, else the centred crop of the input's aspect ratio.
    pub fn region(&self, width: u32, height: u32) -> [f32; 4] {
        if self.resize == ResizeMode::Stretch || width == 0 || height == 0 {
            return [0.0, 0.0, 1.0, 1.0];
        }
        let input = self.width as f32 / self.height.max(1) as f32;
        let frame = width as f32 / height as f32;
        if frame > input {
            let w = input / frame;
            [(1.0 - w) / 2.0, 0.0, w, 1.0]
        } else {
            let h = frame / input;
            [0.0, (1.0 - h) / 2.0, 1.0, h]
        }
    }
}

fn zeros() -> [f32; 3] {
    [0.0; 3]
}

fn ones() -> [f32; 3] {
    [1.0; 3]
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    #[default]
    Rgb,
    Bgr,
    Gray,
}

impl ColorOrder {
    pub fn channels(self) -> usize {
        match self {
            Self::Rgb | Self::Bgr => 3,
            Self::Gray => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Scale the whole frame to the input size, ignoring aspect ratio.
    #[default]
    Stretch,
    /// Crop the centre of the frame to the input aspect ratio, then scale.
    CenterCrop,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output tensor name; the model's first output when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub scores: ScoreKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// Already a probability distribution (the model ends with softmax).
    #[default]
    Probabilities,
    /// Raw logits: Inspecta applies softmax.
    Logits,
}

/// How scores become a verdict; see [`crate::verdict`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionSpec {
    /// Defect score (1 - P(good)) at or above which a part is rejected.
    #[serde(default = "half")]
    pub defect_threshold: f32,
    /// Defect scores in `[low, high)` go to the operator as uncertain. `[t, t]` disables it.
    #[serde(default = "half_band")]
    pub uncertain_band: [f32; 2],
    /// Minimum probability of the top defect class for the verdict to name it.
    #[serde(default)]
    pub class_threshold: f32,
    /// Per-class overrides of `class_threshold`.
    #[serde(default)]
    pub class_thresholds: BTreeMap<String, f32>,
}

fn half() -> f32 {
    0.5
}

fn half_band() -> [f32; 2] {
    [0.5, 0.5]
}

impl Default for DecisionSpec {
    fn default() -> Self {
        Self {
            defect_threshold: half(),
            uncertain_band: half_band(),
            class_threshold: 0.0,
            class_thresholds: BTreeMap::new(),
        }
    }
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn from_path(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|reason| ModelError::Manifest {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses and validates manifest text; the error says which key is wrong.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let manifest: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    fn validate(&self) -> Result<(), String> {
        if self.labels.is_empty() {
            return Err("`labels` is empty".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.labels.iter().find(|l| !seen.insert(l.as_str())) {
            return Err(format!("label {dup:?} appears twice in `labels`"));
        }
        let known = |l: &String| self.labels.contains(l);
        if let Some(g) = self.good.iter().find(|g| !known(g)) {
            return Err(format!("`good` names {g:?}, which is not in `labels`"));
        }
        if let Some(c) = self.decision.class_thresholds.keys().find(|c| !known(c)) {
            return Err(format!(
                "`decision.class_thresholds` names {c:?}, which is not in `labels`"
            ));
        }
        if self.input.width == 0 || self.input.height == 0 {
            return Err("`input.width` and `input.height` must be positive".into());
        }
        if self.input.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err("`input.std` must be finite and non-zero".into());
        }
        check_thresholds(self.decision.defect_threshold, self.decision.uncertain_band)
    }

    /// Whether a label means a good part.
    pub fn is_good(&self, label: &str) -> bool {
        self.good.iter().any(|g| g == label)
    }
}

/// The reject threshold lies in 0..=1 and inside the uncertain band, whoever sets it (the
/// manifest, or an engineer at the station).
pub fn check_thresholds(defect_threshold: f32, band: [f32; 2]) -> Result<(), String> {
    let [low, high] = band;
    if !(0.0..=1.0).contains(&defect_threshold) {
        return Err("`decision.defect_threshold` must be within 0..=1".into());
    }
    if !(low <= defect_threshold && defect_threshold <= high) {
        return Err(format!(
            "`decision.uncertain_band` [{low}, {high}] must contain defect_threshold {defect_threshold}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "m"
        version = "1"
        onnx = "m.onnx"
        labels = ["good", "scratch"]
        good = ["good"]
        [input]
        width = 8
        height = 8
    "#;

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = Manifest::from_toml(MINIMAL).expect("valid manifest");
        assert_eq!(m.input.layout, Layout::Nchw);
        assert_eq!(m.input.std, [1.0; 3]);
        assert_eq!(m.decision.defect_threshold, 0.5);
        assert!(m.is_good("good") && !m.is_good("scratch"));
    }

    #[test]
    fn unknown_key_is_named() {
        let text = MINIMAL.replace("[input]", "colour = \"rgb\"\n[input]");
        let err = Manifest::from_toml(&text).expect_err("unknown key");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn good_label_must_exist() {
        let text = MINIMAL.replace("good = [\"good\"]", "good = [\"ok\"]");
        let err = Manifest::from_toml(&text).expect_err("unknown good label");
        assert!(err.contains("\"ok\""), "{err}");
    }

    #[test]
    fn band_must_contain_threshold() {
        let text =
            format!("{MINIMAL}\n[decision]\ndefect_threshold = 0.5\nuncertain_band = [0.6, 0.9]\n");
        let err = Manifest::from_toml(&text).expect_err("bad band");
        assert!(err.contains("uncertain_band"), "{err}");
    }
}
