//! The model runner: an ONNX classifier loaded and optimised once with tract, shared by
//! every worker thread, each of which runs it through its own [`Session`].

pub mod cpu;
pub mod familiarity;
pub mod head;
pub mod manifest;
pub mod metadata;
mod network;
pub mod preprocess;
pub mod sanity;
pub mod weights;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::decision::DecisionRule;
use crate::frame::Frame;
use crate::inspection::{Inspection, UncertainReason, Verdict};
use familiarity::Familiarity;
use head::Head;
use manifest::{Layout, MANIFEST_FILE, Manifest, ScoreKind};
use metadata::OnnxFacts;
pub use network::{Network, NetworkSession, feature_maps};
use preprocess::PreprocessError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "{path} has no manifest ({MANIFEST_FILE} or <name>.toml beside it) and no \
         {} metadata to derive one from",
        metadata::PIXEL_FORMAT
    )]
    NoManifest { path: PathBuf },
    #[error("{path} is not a model Inspecta can run: {source}")]
    Onnx { path: PathBuf, source: BoxError },
    #[error("{path} does not fit its manifest: {reason}")]
    Incompatible { path: PathBuf, reason: String },
    #[error("preprocessing failed: {0}")]
    Preprocess(#[from] PreprocessError),
    #[error("inference failed: {0}")]
    Inference(BoxError),
}

/// How the runner uses the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerOptions {
    /// Threads tract may use inside one inference. 1 is best when the caller already runs
    /// one inference per core (batch evaluation); more lowers single-frame latency.
    pub intra_op_threads: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            intra_op_threads: 1,
        }
    }
}

#[derive(Debug)]
pub struct Model {
    manifest: Manifest,
    onnx_path: PathBuf,
    /// Swapped whole when an engineer changes thresholds; each inspection reads it once.
    rule: RwLock<Arc<DecisionRule>>,
    network: Network,
    /// Trained by Inspecta on the network's feature maps; None for plain ONNX classifiers.
    head: Option<Head>,
    /// Which frames look like the training images; None for models fitted without it.
    familiarity: Option<Familiarity>,
    /// How many of the network's outputs the head (or the scores) read; the familiarity
    /// features follow.
    scoring_outputs: usize,
    /// The files it was loaded from: ONNX, manifest, head weights, familiarity data.
    files: Vec<PathBuf>,
    fingerprint: String,
}

impl Model {
    /// Loads a model from a directory holding `model.toml`, a manifest file, or an `.onnx`
    /// file (with `<stem>.toml` beside it, or Custom Vision image metadata inside it).
    pub fn load(path: &Path, options: RunnerOptions) -> Result<Self, ModelError> {
        let (manifest_path, onnx_path) = resolve_paths(path)?;
        let manifest = manifest_path
            .as_deref()
            .map(Manifest::from_path)
            .transpose()?;
        let model_dir = manifest_path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .to_owned();
        let onnx_path = match &manifest {
            Some(m) => model_dir.join(&m.onnx),
            None => onnx_path,
        };
        let (proto, graph) = read_onnx(&onnx_path)?;
        let onnx_error = |source: TractError| ModelError::Onnx {
            path: onnx_path.clone(),
            source: source.into(),
        };
        let declared = declared_input_shape(&graph).map_err(onnx_error)?;
        let manifest = match manifest {
            Some(m) => m,
            None => {
                let meta: HashMap<String, String> = proto
                    .metadata_props
                    .iter()
                    .map(|p| (p.key.clone(), p.value.clone()))
                    .collect();
                let facts = OnnxFacts {
                    metadata: &meta,
                    input_shape: &declared,
                };
                metadata::manifest_from_metadata(&onnx_path, &facts)?
            }
        };
        let incompatible = |reason: String| ModelError::Incompatible {
            path: onnx_path.clone(),
            reason,
        };
        let head = manifest
            .head
            .as_ref()
            .map(|spec| Head::load(spec, &model_dir, manifest.labels.len()))
            .transpose()
            .map_err(|reason| ModelError::Manifest {
                path: manifest_path.clone().unwrap_or_default(),
                reason,
            })?;
        let familiarity = manifest
            .familiarity
            .as_ref()
            .map(|spec| Familiarity::load(&model_dir.join(&spec.weights)))
            .transpose()
            .map_err(|reason| ModelError::Manifest {
                path: manifest_path.clone().unwrap_or_default(),
                reason,
            })?;
        if familiarity.is_none() {
            tracing::warn!(model = %manifest.name, "the model has no familiarity data: frames unlike its training images cannot be told apart (see `inspecta familiarize`)");
        }
        let mut outputs = match &manifest.head {
            Some(spec) => spec.features().to_vec(),
            None => manifest.output.name.iter().cloned().collect(),
        };
        if let Some(spec) = &manifest.familiarity {
            if outputs.is_empty() {
                outputs.push(first_output_name(&graph).map_err(onnx_error)?);
            }
            outputs.extend(spec.features.iter().cloned());
        }
        // No output named means the network's first one: still one to score with.
        let scoring_outputs = outputs.len().max(1)
            - manifest
                .familiarity
                .as_ref()
                .map_or(0, |spec| spec.features.len());
        let network = Network::from_graph(
            graph,
            &onnx_path,
            &manifest.input,
            &declared,
            &outputs,
            options,
        )?;
        match &head {
            Some(head) => check_feature_maps(&network.plan, scoring_outputs, head.channels()),
            None => check_output(&network.plan, &manifest),
        }
        .map_err(incompatible)?;
        let mut files = vec![onnx_path.clone()];
        files.extend(manifest_path);
        files.extend(manifest.head.as_ref().map(|h| model_dir.join(h.weights())));
        files.extend(
            manifest
                .familiarity
                .as_ref()
                .map(|f| model_dir.join(&f.weights)),
        );
        let fingerprint = fingerprint(&files)?;
        tracing::info!(model = %manifest.name, version = %manifest.version, fingerprint = %&fingerprint[..12], path = %onnx_path.display(), cpu = %cpu::instruction_sets(), "model loaded");
        Ok(Self {
            rule: RwLock::new(Arc::new(DecisionRule::from_manifest(&manifest))),
            manifest,
            onnx_path,
            network,
            head,
            familiarity,
            scoring_outputs,
            files,
            fingerprint,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn onnx_path(&self) -> &Path {
        &self.onnx_path
    }

    /// The files the model is made of (ONNX first): what a rollout sends.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// SHA-256 over the model's files (ONNX, manifest, head weights), hex: two models with
    /// the same name and version but other contents never pass for one another.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The decision rule in force now.
    pub fn rule(&self) -> Arc<DecisionRule> {
        Arc::clone(&self.rule.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes the reject threshold and uncertain band for every later inspection, without
    /// reloading the model. Returns the rule it replaced.
    pub fn set_thresholds(
        &self,
        defect_threshold: f32,
        band: [f32; 2],
    ) -> Result<Arc<DecisionRule>, ModelError> {
        let mut rule = self.rule.write().unwrap_or_else(PoisonError::into_inner);
        let changed = rule
            .with_decision(defect_threshold, band)
            .map_err(|reason| ModelError::Manifest {
                path: self.onnx_path.clone(),
                reason,
            })?;
        Ok(std::mem::replace(&mut *rule, Arc::new(changed)))
    }

    /// Per-thread state: preprocessing buffers, the input tensor and a tract run state,
    /// reused frame after frame.
    pub fn session(self: &Arc<Self>) -> Result<Session, ModelError> {
        Ok(Session {
            model: Arc::clone(self),
            network: self.network.session()?,
        })
    }
}

#[derive(Debug)]
pub struct Session {
    model: Arc<Model>,
    network: NetworkSession,
}

impl Session {
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn inspect(&mut self, frame: &Frame) -> Result<Inspection, ModelError> {
        let model = &self.model;
        let (outputs, timings) = self.network.run(frame)?;
        let (scoring, familiar) = outputs.split_at(model.scoring_outputs.min(outputs.len()));
        let (probabilities, heat_map) = match &model.head {
            Some(head) => {
                let maps = feature_maps(scoring)?;
                let out = head
                    .apply(&maps)
                    .map_err(|e| ModelError::Inference(e.into()))?;
                (out.probabilities, out.heat_map)
            }
            None => {
                let raw = scoring[0]
                    .to_plain_array_view::<f32>()
                    .map_err(|e| ModelError::Inference(e.into()))?;
                let raw: Vec<f32> = raw.iter().copied().collect();
                let probabilities = match model.manifest.output.scores {
                    ScoreKind::Probabilities => raw,
                    ScoreKind::Logits => softmax(&raw),
                };
                (probabilities, None)
            }
        };
        let rule = model.rule();
        let mut scores = rule.scores(probabilities);
        scores.familiarity = model
            .familiarity
            .as_ref()
            .map(|f| {
                let features = familiarity_features(familiar)?;
                f.score(&features)
                    .map_err(|e| ModelError::Inference(e.into()))
            })
            .transpose()?;
        let input = [model.manifest.input.width, model.manifest.input.height];
        let unjudgeable = sanity::check(frame, input).or_else(|| {
            scores
                .familiarity
                .filter(|f| *f > 1.0)
                .map(|_| UncertainReason::OutOfDistribution)
        });
        let verdict = match unjudgeable {
            Some(reason) => Verdict::Uncertain { reason },
            None => rule.verdict(&scores),
        };
        Ok(Inspection {
            verdict,
            scores,
            heat_map,
            timings_ms: timings,
        })
    }
}

/// The familiarity features: every map pooled by mean and max per channel, in order.
fn familiarity_features(outputs: &[TValue]) -> Result<ndarray::Array1<f32>, ModelError> {
    Ok(head::pooled_features(&feature_maps(outputs)?))
}

fn read_onnx(onnx_path: &Path) -> Result<(tract_onnx::pb::ModelProto, InferenceModel), ModelError> {
    let onnx_error = |source: TractError| ModelError::Onnx {
        path: onnx_path.to_owned(),
        source: source.into(),
    };
    if !onnx_path.is_file() {
        return Err(ModelError::Io {
            path: onnx_path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "model file not found"),
        });
    }
    let proto = onnx().proto_model_for_path(onnx_path).map_err(onnx_error)?;
    let graph = onnx().model_for_proto_model(&proto).map_err(onnx_error)?;
    Ok((proto, graph))
}

/// SHA-256 of the files' contents, in order, hex.
fn fingerprint(files: &[PathBuf]) -> Result<String, ModelError> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for path in files {
        let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        std::io::copy(&mut file, &mut hasher).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|v| v / sum).collect()
}

/// (manifest, onnx) for a user-given path.
fn resolve_paths(path: &Path) -> Result<(Option<PathBuf>, PathBuf), ModelError> {
    let missing = || ModelError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such model file or directory",
        ),
    };
    if path.is_dir() {
        let manifest = path.join(MANIFEST_FILE);
        if manifest.is_file() {
            return Ok((Some(manifest), PathBuf::new()));
        }
        let onnx = single_onnx_in(path)?;
        return Ok((None, onnx));
    }
    if !path.is_file() {
        return Err(missing());
    }
    if path.extension().is_some_and(|e| e == "toml") {
        return Ok((Some(path.to_owned()), PathBuf::new()));
    }
    let sibling = path.with_extension("toml");
    Ok((sibling.is_file().then_some(sibling), path.to_owned()))
}

fn single_onnx_in(dir: &Path) -> Result<PathBuf, ModelError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let onnx: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    match onnx.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(ModelError::NoManifest {
            path: dir.to_owned(),
        }),
    }
}

/// The name of the network's first output, which plain classifiers score with.
fn first_output_name(graph: &InferenceModel) -> TractResult<String> {
    let outlet = *graph
        .output_outlets()?
        .first()
        .ok_or_else(|| TractError::msg("the model has no output"))?;
    Ok(graph
        .outlet_label(outlet)
        .map_or_else(|| graph.node(outlet.node).name.clone(), str::to_owned))
}

fn declared_input_shape(graph: &InferenceModel) -> TractResult<Vec<Option<usize>>> {
    let inputs = graph.input_outlets()?.len();
    if inputs != 1 {
        return Err(TractError::msg(format!(
            "the model has {inputs} inputs; an image classifier has exactly one"
        )));
    }
    let fact = graph.input_fact(0)?;
    Ok(fact
        .shape
        .dims()
        .map(|d| {
            d.concretize()
                .and_then(|d| usize::try_from(d.to_i64().ok()?).ok())
        })
        .collect())
}

/// The concrete input shape, or why the ONNX input cannot take the manifest's images.
fn check_input(
    spec: &manifest::InputSpec,
    declared: &[Option<usize>],
) -> Result<[usize; 4], String> {
    let (c, h, w) = (
        spec.color.channels(),
        spec.height as usize,
        spec.width as usize,
    );
    let wanted = match spec.layout {
        Layout::Nchw => [1, c, h, w],
        Layout::Nhwc => [1, h, w, c],
    };
    let fits = declared.len() == 4
        && declared
            .iter()
            .zip(wanted)
            .all(|(d, want)| d.is_none_or(|d| d == want));
    if !fits {
        let shown: Vec<String> = declared
            .iter()
            .map(|d| d.map_or("?".into(), |d| d.to_string()))
            .collect();
        return Err(format!(
            "the model input is [{}] but the manifest describes {:?} images as {wanted:?}",
            shown.join(", "),
            spec.layout,
        ));
    }
    Ok(wanted)
}

fn optimise(
    mut graph: InferenceModel,
    outputs: &[String],
    input_shape: [usize; 4],
    options: RunnerOptions,
) -> TractResult<Arc<TypedSimplePlan>> {
    graph.set_input_fact(0, f32::fact(input_shape).into())?;
    if !outputs.is_empty() {
        graph.select_outputs_by_name(outputs)?;
    } else {
        let first = graph.output_outlets()?[0];
        graph.select_output_outlets(&[first])?;
    }
    let typed = graph.into_optimized()?;
    let executor = if options.intra_op_threads > 1 {
        Executor::multithread(options.intra_op_threads)
    } else {
        Executor::SingleThread
    };
    typed.into_runnable_with_options(&RunOptions {
        executor: Some(executor),
        ..RunOptions::default()
    })
}

/// The head's maps: `[1, C, H, W]` f32 each, channels adding up to what the head was trained on.
fn check_feature_maps(
    plan: &TypedSimplePlan,
    outputs: usize,
    channels: usize,
) -> Result<(), String> {
    let model = plan.model();
    let mut total = 0;
    for i in 0..outputs.min(model.outputs.len()) {
        let fact = model.output_fact(i).map_err(|e| e.to_string())?;
        match fact.shape.as_concrete() {
            Some([1, c, _, _]) if fact.datum_type == f32::datum_type() => total += c,
            _ => {
                return Err(format!(
                    "feature output {i} is {:?} {:?}, not f32 [1, C, H, W]",
                    fact.datum_type, fact.shape
                ));
            }
        }
    }
    if total != channels {
        return Err(format!(
            "the feature maps have {total} channels, the head was trained on {channels}"
        ));
    }
    Ok(())
}

fn check_output(plan: &TypedSimplePlan, manifest: &Manifest) -> Result<(), String> {
    let fact = plan.model().output_fact(0).map_err(|e| e.to_string())?;
    let shape = fact.shape.as_concrete().map(<[usize]>::to_vec);
    let labels = manifest.labels.len();
    match shape {
        Some(shape)
            if shape.iter().product::<usize>() == labels
                && fact.datum_type == f32::datum_type() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "the model output is {:?} {:?} but the manifest lists {labels} labels; expected f32 [1, {labels}]",
            fact.datum_type, fact.shape
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_reuses_its_input_tensor() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/xsdd");
        let model = Arc::new(Model::load(&dir, RunnerOptions::default()).expect("model"));
        let mut session = model.session().expect("session");
        let frame = Frame::from_rgb8(64, 48, vec![90; 64 * 48 * 3]).expect("frame");
        session.inspect(&frame).expect("first run");
        let buffer = Arc::as_ptr(&session.network.input);
        session.inspect(&frame).expect("second run");
        assert_eq!(
            Arc::strong_count(&session.network.input),
            1,
            "tract kept a reference to the input"
        );
        assert_eq!(
            Arc::as_ptr(&session.network.input),
            buffer,
            "the input tensor was reallocated"
        );
    }

    #[test]
    fn softmax_normalises_logits() {
        let p = softmax(&[1.0, 1.0, 1.0 + 2f32.ln()]);
        assert!(
            (p[2] - 0.5).abs() < 1e-6 && (p[0] - 0.25).abs() < 1e-6,
            "{p:?}"
        );
    }
}
