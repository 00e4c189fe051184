//! What an engineer may change on a running station, and the settings log that keeps who
//! changed it. The panel changes both; MQTT commands switch models. A headless build keeps
//! the settings with fewer (or no) ways to change them.
#![cfg_attr(not(feature = "panel"), allow(dead_code))]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use inspecta_pipeline::station::ModelSwitch;
use inspecta_pipeline::store::{ChangeKind, NewChange, RecordStore};
use inspecta_vision::decision::DecisionRule;
use inspecta_vision::model::Model;

/// What an engineer may change on a running station: its model (among the configured
/// ones) and the model's decision thresholds. Every change lands in the store's settings
/// log with who made it. Cheap to clone; the panel and plant commands each hold one.
#[derive(Debug, Clone)]
pub struct Settings {
    models: ModelSwitch,
    /// `[model] path` first, then the alternatives.
    choices: Vec<PathBuf>,
    threads: usize,
    store: Option<Arc<RecordStore>>,
}

impl Settings {
    /// `choices`: the paths an engineer may switch to, the one in charge first.
    pub fn new(
        models: ModelSwitch,
        choices: Vec<PathBuf>,
        threads: usize,
        store: Option<Arc<RecordStore>>,
    ) -> Self {
        Self {
            models,
            choices,
            threads,
            store,
        }
    }

    /// The model judging the parts now.
    pub fn model(&self) -> Arc<Model> {
        self.models.current()
    }

    pub fn choices(&self) -> &[PathBuf] {
        &self.choices
    }

    /// Loads `path` (one of [`Self::choices`]) and puts it in charge from the next frame
    /// on. Loading takes a while: call it from a worker, never the UI thread.
    pub fn switch_model(&self, path: &Path, who: &str) -> anyhow::Result<String> {
        if !self.choices.iter().any(|c| c == path) {
            bail!(
                "{} is not one of this station's models ([model] path and alternatives)",
                path.display()
            );
        }
        let model = crate::engine::load_model(path, self.threads)?;
        let old = self
            .models
            .switch(&model)
            .context("preparing the new model")?;
        let (before, after) = (describe_model(&old), describe_model(&model));
        tracing::warn!(%who, %before, %after, "model switched at the station");
        self.log(who, ChangeKind::Model, before, after)
    }

    /// Changes the decision thresholds of the model judging now; the next part is judged
    /// with them.
    pub fn set_thresholds(
        &self,
        who: &str,
        threshold: f32,
        band: [f32; 2],
    ) -> anyhow::Result<String> {
        let model = self.models.current();
        let previous = model.set_thresholds(threshold, band)?;
        let (before, after) = (describe_rule(&previous), describe_rule(&model.rule()));
        tracing::warn!(%who, %before, %after, "decision thresholds changed at the station");
        self.log(who, ChangeKind::Thresholds, before, after)
    }

    /// Keeps the change in the settings log; says what changed, for the person who did it.
    fn log(
        &self,
        who: &str,
        kind: ChangeKind,
        before: String,
        after: String,
    ) -> anyhow::Result<String> {
        let summary = format!("{before} -> {after} (by {who})");
        if let Some(store) = &self.store {
            let change = NewChange {
                who: who.to_owned(),
                kind,
                before,
                after,
            };
            store
                .log_change(&change)
                .context("the change is in effect but the settings log could not keep it")?;
        }
        Ok(summary)
    }
}

fn describe_model(model: &Model) -> String {
    let manifest = model.manifest();
    format!("{} {}", manifest.name, manifest.version)
}

fn describe_rule(rule: &DecisionRule) -> String {
    let [low, high] = rule.uncertain_band();
    format!(
        "reject >= {:.3}, uncertain [{low:.3}, {high:.3})",
        rule.defect_threshold()
    )
}
