//! Training on the box, in Rust, from image folders: a frozen backbone (run by tract) gives
//! feature maps, and what is learned is small enough for seconds to minutes on a CPU: a
//! PatchCore memory bank from good parts ([`anomaly`]), or a softmax head over classes
//! ([`classifier`]). Both write a model directory that `run` and `eval` load like any other.

pub mod anomaly;
pub mod classifier;

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray::ArrayView3;
use rayon::prelude::*;

use crate::frame::Frame;
use crate::model::familiarity::Familiarity;
use crate::model::manifest::{ColorOrder, InputSpec, Layout, MANIFEST_FILE, Manifest, ResizeMode};
use crate::model::{ModelError, Network, RunnerOptions, feature_maps, weights};

/// The bundled feature trunk (EfficientNet-Lite0, ImageNet), cut at three stages: `add_77`
/// (40 channels, 28x28), `add_171` (112, 14x14), `add_234` (192, 7x7).
pub const TRUNK_FILE: &str = "efficientnet_lite0_trunk.onnx";
/// What the anomaly model compares: the two deepest stages, on a 28x28 patch grid. Deeper
/// features separate defective tiles from good ones far better than the fine stage (image
/// AUROC on magnetic tiles, docs/BENCHMARKS.md).
pub const ANOMALY_FEATURES: [&str; 2] = ["add_171", "add_234"];
pub const ANOMALY_GRID: usize = 28;
/// What the classifier pools: fine texture and mid-level structure.
pub const CLASSIFIER_FEATURES: [&str; 2] = ["add_77", "add_171"];
/// File names inside a trained model directory.
pub const BACKBONE_FILE: &str = "backbone.onnx";
pub const HEAD_FILE: &str = "head.safetensors";
pub const FAMILIARITY_FILE: &str = "familiarity.safetensors";

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Dataset(#[from] crate::evaluation::dataset::DatasetError),
    #[error("{what}: {reason}")]
    Data { what: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{0} already exists; choose another --out or pass --force")]
    Exists(PathBuf),
}

/// The trunk's input: what its ImageNet weights were trained on.
pub fn trunk_input() -> InputSpec {
    InputSpec {
        width: 224,
        height: 224,
        layout: Layout::Nchw,
        color: ColorOrder::Rgb,
        resize: ResizeMode::Stretch,
        mean: [127.0; 3],
        std: [128.0; 3],
    }
}

/// A backbone for training: the ONNX file and the outputs the head will read.
#[derive(Debug)]
pub struct Backbone {
    pub path: PathBuf,
    pub outputs: Vec<String>,
    network: Network,
}

impl Backbone {
    /// The bundled trunk (or one like it), fed the images its ImageNet weights expect.
    pub fn load(path: &Path, outputs: &[&str]) -> Result<Self, ModelError> {
        let outputs: Vec<String> = outputs.iter().map(|s| (*s).to_owned()).collect();
        Self::with_input(path, &trunk_input(), outputs)
    }

    /// Any network, fed images as `input` describes: a model's own, to learn what its
    /// training images look like.
    pub fn with_input(
        path: &Path,
        input: &InputSpec,
        outputs: Vec<String>,
    ) -> Result<Self, ModelError> {
        let network = Network::load(path, input, &outputs, RunnerOptions::default())?;
        Ok(Self {
            path: path.to_owned(),
            outputs,
            network,
        })
    }

    /// Runs the backbone on every image on `threads` workers and keeps what `keep` makes of
    /// each image's maps. Unreadable images are logged and left out: `None` at their index.
    pub fn extract<T: Send>(
        &self,
        images: &[PathBuf],
        threads: usize,
        progress: &(dyn Fn() + Sync),
        keep: impl Fn(&[ArrayView3<'_, f32>]) -> T + Sync,
    ) -> Result<Vec<Option<T>>, TrainError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("train-{i}"))
            .build()
            .map_err(|e| TrainError::Data {
                what: "worker threads".into(),
                reason: e.to_string(),
            })?;
        pool.install(|| {
            images
                .par_iter()
                .map_init(
                    || self.network.session(),
                    |session, path| {
                        let session = session.as_mut().map_err(|e| ModelError::Inference(e.to_string().into()))?;
                        let result = Frame::open(path)
                            .map_err(|e| e.to_string())
                            .and_then(|frame| session.run(&frame).map_err(|e| e.to_string()))
                            .and_then(|(outputs, _)| {
                                feature_maps(&outputs)
                                    .map(|maps| keep(&maps))
                                    .map_err(|e| e.to_string())
                            });
                        progress();
                        Ok(match result {
                            Ok(value) => Some(value),
                            Err(error) => {
                                tracing::warn!(path = %path.display(), %error, "image left out of training");
                                None
                            }
                        })
                    },
                )
                .collect()
        })
    }
}

/// Writes a model directory: manifest, a copy of the backbone, the head's weights and, for
/// classifiers, the familiarity data. Built
/// beside `out` and renamed into place, so a station never loads a half-written model.
pub fn write_model_dir(
    out: &Path,
    manifest: &Manifest,
    backbone: &Path,
    tensors: &[(&str, ArrayD<f32>)],
    familiarity: Option<&Familiarity>,
    extras: &[(&str, Vec<u8>)],
    force: bool,
) -> Result<(), TrainError> {
    if out.exists() && !force {
        return Err(TrainError::Exists(out.to_owned()));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TrainError::Io { path, source }
    };
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    std::fs::copy(backbone, partial.join(BACKBONE_FILE)).map_err(io(backbone))?;
    let head = partial.join(HEAD_FILE);
    weights::save(&head, tensors).map_err(|reason| TrainError::Write {
        path: head.clone(),
        reason,
    })?;
    if let Some(familiarity) = familiarity {
        let path = partial.join(FAMILIARITY_FILE);
        familiarity
            .save(&path)
            .map_err(|reason| TrainError::Write { path, reason })?;
    }
    for (name, bytes) in extras {
        let path = partial.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    let text = manifest.to_toml().map_err(|e| TrainError::Write {
        path: partial.join(MANIFEST_FILE),
        reason: e.to_string(),
    })?;
    let header = "# Inspecta model manifest, written by `inspecta train`.\n";
    std::fs::write(partial.join(MANIFEST_FILE), format!("{header}{text}"))
        .map_err(io(&partial.join(MANIFEST_FILE)))?;
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::rename(&partial, out).map_err(io(out))
}

/// Images directly inside `folder`, sorted.
pub fn images_in(folder: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let entries = std::fs::read_dir(folder).map_err(|source| TrainError::Io {
        path: folder.to_owned(),
        source,
    })?;
    let mut images: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| crate::evaluation::dataset::is_image(p))
        .collect();
    images.sort();
    Ok(images)
}

/// A stable 0..100 bucket for a file name, so splits are the same on every machine.
fn bucket(path: &Path) -> u8 {
    use sha2::Digest as _;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(name.as_bytes());
    digest[0] % 100
}
