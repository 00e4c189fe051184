//! Candidate models from the learning loop: each a model directory in the candidates
//! folder (`[learning] candidates`), trained on the box from reviews, with its comparison
//! against the running model in `compare/` (`inspecta eval --compare CURRENT CANDIDATE
//! FOLDER --out CANDIDATE/compare`). An engineer promotes one; the comparison stays in the
//! model's directory, and `promoted.json` says who promoted it, when, and what it replaced.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use inspecta_pipeline::station::shadow::{ShadowSlot, ShadowSnapshot};
use inspecta_vision::model::manifest::Manifest;
use serde::{Deserialize, Serialize};

use super::Settings;

const COMPARISON: &str = "compare/compare.json";
const PROMOTED: &str = "promoted.json";

/// Why a promotion was refused, so the API can answer 404 or 409.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("there is no candidate {0:?}")]
    Unknown(String),
    #[error("{0}")]
    Refused(String),
}

/// What an engineer needs to decide on a candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Its directory's name in the candidates folder.
    pub id: String,
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    /// Operator reviews it was trained on (`[training] reviews`; their record ids are in
    /// its `reviews.csv`).
    pub reviews: Option<i64>,
    pub trained_at: Option<String>,
    pub comparison: Option<Comparison>,
    /// The running model is the one the comparison was made against.
    pub compared_with_running: bool,
    /// How it fares as the station's shadow, when the shadow is this candidate.
    pub shadow: Option<ShadowSnapshot>,
    pub promoted: Option<Promotion>,
}

/// The parts of `eval --compare`'s `compare.json` a decision rests on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// "name version" of the model compared against (A) and of the candidate (B).
    pub a: String,
    pub b: String,
    /// "A", "B", or none when no figure differs beyond its tolerance.
    pub better: Option<char>,
    pub reason: String,
    pub mcnemar_p: f64,
    #[serde(default)]
    pub criteria: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Promotion {
    pub who: String,
    pub at: String,
    pub replaced: String,
}

/// The candidates folder of one station.
#[derive(Debug, Clone)]
pub struct Candidates {
    dir: PathBuf,
    settings: Settings,
    shadow: ShadowSlot,
}

impl Candidates {
    pub fn new(dir: PathBuf, settings: Settings, shadow: ShadowSlot) -> Self {
        Self {
            dir,
            settings,
            shadow,
        }
    }

    /// Every candidate, newest trained first; a directory that is no model is skipped with
    /// a warning, a folder not made yet is an empty list.
    pub fn list(&self) -> anyhow::Result<Vec<Candidate>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list {}", self.dir.display()));
            }
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.join("model.toml").is_file() {
                continue;
            }
            match self.read(&path) {
                Ok(candidate) => found.push(candidate),
                Err(e) => tracing::warn!(path = %path.display(), "not a candidate model: {e:#}"),
            }
        }
        found.sort_by(|a, b| b.trained_at.cmp(&a.trained_at).then(a.id.cmp(&b.id)));
        Ok(found)
    }

    fn read(&self, path: &Path) -> anyhow::Result<Candidate> {
        let manifest = Manifest::from_path(&path.join("model.toml"))?;
        let comparison = read_json::<Comparison>(&path.join(COMPARISON))?;
        let running = self.settings.model();
        let running = format!("{} {}", running.manifest().name, running.manifest().version);
        let training = manifest.training.as_ref();
        let field = |key: &str| training.and_then(|t| t.get(key));
        Ok(Candidate {
            id: id_of(path),
            compared_with_running: comparison.as_ref().is_some_and(|c| c.a == running),
            comparison,
            reviews: field("reviews").and_then(toml::Value::as_integer),
            trained_at: field("trained_at")
                .and_then(toml::Value::as_str)
                .map(String::from),
            shadow: self
                .shadow
                .current()
                .filter(|shadow| same_dir(shadow.model().onnx_path(), path))
                .map(|shadow| shadow.snapshot()),
            promoted: read_json::<Promotion>(&path.join(PROMOTED))?,
            name: manifest.name,
            version: manifest.version,
            path: path.to_owned(),
        })
    }

    /// Puts candidate `id` in charge from the next part on. Refused without a comparison
    /// against the running model, or when the comparison found it worse, unless `force`.
    /// Loads a model: call it from a worker.
    pub fn promote(&self, id: &str, who: &str, force: bool) -> Result<String, PromoteError> {
        let candidate = self
            .list()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Refusal::Unknown(id.to_owned()))?;
        if !force {
            check_evidence(&candidate)?;
        }
        let running = self.settings.model();
        let replaced = format!("{} {}", running.manifest().name, running.manifest().version);
        let summary = self.settings.promote_candidate(&candidate.path, who)?;
        let promotion = Promotion {
            who: who.to_owned(),
            at: jiff::Timestamp::now().to_string(),
            replaced,
        };
        let record = candidate.path.join(PROMOTED);
        let text = serde_json::to_vec_pretty(&promotion).context("promotion record")?;
        std::fs::write(&record, text).with_context(|| {
            format!(
                "the candidate is in charge, but {} could not be written",
                record.display()
            )
        })?;
        tracing::warn!(%who, candidate = %id, "candidate model promoted");
        Ok(summary)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Refusal(#[from] Refusal),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

fn check_evidence(candidate: &Candidate) -> Result<(), Refusal> {
    let refuse = |why: String| Err(Refusal::Refused(why));
    let Some(comparison) = &candidate.comparison else {
        return refuse(format!(
            "candidate {} has no comparison with the running model: run `inspecta eval --compare RUNNING {} FOLDER --out {}` (or promote with force)",
            candidate.id,
            candidate.path.display(),
            candidate.path.join("compare").display()
        ));
    };
    if !candidate.compared_with_running {
        return refuse(format!(
            "candidate {} was compared with {}, not with the running model: compare it again (or promote with force)",
            candidate.id, comparison.a
        ));
    }
    if comparison.better == Some('A') {
        return refuse(format!(
            "candidate {} did worse than the running model ({}); promote with force to run it anyway",
            candidate.id, comparison.reason
        ));
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not readable", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn id_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b || a.parent() == Some(&b),
        _ => false,
    }
}
