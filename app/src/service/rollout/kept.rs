//! What a station keeps of its rollouts on disk, each write synced through a temporary
//! file: per rollout its order and state, and `in_charge.json` for the rolled-out model in
//! charge, which decides the model a station starts with.

use std::path::{Path, PathBuf};

use inspecta_pipeline::publish::rollout::{Phase, RolloutState};
use serde::{Deserialize, Serialize};

use super::fetch::{FetchError, kept_package, write_synced};

pub(super) const ORDER: &str = "order.json";
pub(super) const STATE: &str = "state.json";
pub(super) const IN_CHARGE: &str = "in_charge.json";
/// The rolled-out model in charge, and what was in charge before it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct InCharge {
    pub(super) rollout: String,
    pub(super) digest: String,
    pub(super) model: PathBuf,
    /// The model it replaced, which a rollback puts back.
    pub(super) previous: PathBuf,
    /// `[model] path` when it took charge: a config changed since then wins.
    pub(super) configured: PathBuf,
    pub(super) who: String,
    pub(super) at: jiff::Timestamp,
    /// The rolled-out model that was in charge before, if any: in charge again after a
    /// rollback.
    pub(super) before: Option<Box<InCharge>>,
}

/// The model a station starts with: the rolled-out one in charge when it still matches its
/// digest and `[model] path` has not changed since, else `[model] path`.
pub fn model_to_start(dir: &Path, configured: &Path) -> PathBuf {
    let Some(in_charge) = read_json::<InCharge>(&dir.join(IN_CHARGE)) else {
        return configured.to_owned();
    };
    let rollout = dir.join(&in_charge.rollout);
    if in_charge.configured != configured {
        tracing::warn!(rollout = %in_charge.rollout, configured = %configured.display(), "[model] path changed since the rollout took charge: the configured model runs");
        settle(
            &rollout,
            Phase::Superseded,
            "[model] path changed after it took charge".into(),
        );
        remove_in_charge(dir);
        return configured.to_owned();
    }
    let checked = kept_package(&rollout, &in_charge.digest)
        .and_then(|package| Ok(package.verify(&in_charge.model)?));
    match checked {
        Ok(()) => {
            tracing::warn!(rollout = %in_charge.rollout, model = %in_charge.model.display(), by = %in_charge.who, "the rolled-out model is in charge, not [model] path (`inspecta fleet rollback` returns to the one before)");
            in_charge.model
        }
        Err(e) => {
            tracing::error!(rollout = %in_charge.rollout, "the rolled-out model no longer matches its digest, so it does not run: {e}");
            settle(
                &rollout,
                Phase::Rejected,
                format!("changed on disk after it took charge: {e}"),
            );
            remove_in_charge(dir);
            configured.to_owned()
        }
    }
}

/// Ends the rollout in `folder` as `phase`, before the station runs (its report follows).
pub(super) fn settle(folder: &Path, phase: Phase, reason: String) {
    if let Some(mut state) = read_json::<RolloutState>(&folder.join(STATE)) {
        state.enter(phase, Some(reason));
        save(&folder.join(STATE), &state);
    }
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::error!(path = %path.display(), "unreadable rollout file, ignored: {e}");
            None
        }
    }
}

/// Writes a rollout file; a failure is logged: the rollout goes on in memory and reports.
pub(super) fn save<T: Serialize>(path: &Path, value: &T) {
    let written = serde_json::to_vec_pretty(value)
        .map_err(|e| FetchError::Failed(e.to_string()))
        .and_then(|bytes| write_synced(path, &bytes));
    if let Err(e) = written {
        tracing::error!(path = %path.display(), "cannot keep the rollout's state on disk: {e}");
    }
}

pub(super) fn remove_in_charge(dir: &Path) {
    let path = dir.join(IN_CHARGE);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::error!(path = %path.display(), "cannot remove: {e}");
    }
}
