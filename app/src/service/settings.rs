//! What an engineer may change on a running station, and the settings log that keeps who
//! changed it. The panel changes both; MQTT commands switch models. A headless build keeps
//! the settings with fewer (or no) ways to change them.
#![cfg_attr(not(feature = "panel"), allow(dead_code))]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use inspecta_pipeline::station::ModelSwitch;
use inspecta_pipeline::store::{ChangeKind, NewChange, RecordStore};
use inspecta_vision::decision::DecisionRule;
use inspecta_vision::model::Model;

use crate::config::Recipe;

/// What an engineer may change on a running station: its model (among the configured
/// ones) and the model's decision thresholds. Every change lands in the store's settings
/// log with who made it. Cheap to clone; the panel and plant commands each hold one.
#[derive(Debug, Clone)]
pub struct Settings {
    models: ModelSwitch,
    /// `[model] path` first, then the alternatives and the recipes' models.
    choices: Vec<PathBuf>,
    recipes: Arc<[Recipe]>,
    /// The recipe in charge: the last one switched to, at start the first whose model is
    /// `[model] path`.
    recipe: Arc<Mutex<Option<usize>>>,
    /// Where the model in charge was loaded from.
    path: Arc<Mutex<PathBuf>>,
    threads: usize,
    store: Option<Arc<RecordStore>>,
}

impl Settings {
    /// `choices`: the paths an engineer may switch to, the one in charge first (not empty).
    pub fn new(
        models: ModelSwitch,
        choices: Vec<PathBuf>,
        recipes: Vec<Recipe>,
        threads: usize,
        store: Option<Arc<RecordStore>>,
    ) -> Self {
        let recipe = choices
            .first()
            .and_then(|path| recipes.iter().position(|r| r.model == *path));
        let path = choices.first().cloned().unwrap_or_default();
        let mut choices = choices;
        for recipe in &recipes {
            if !choices.contains(&recipe.model) {
                choices.push(recipe.model.clone());
            }
        }
        Self {
            models,
            choices,
            recipes: recipes.into(),
            recipe: Arc::new(Mutex::new(recipe)),
            path: Arc::new(Mutex::new(path)),
            threads,
            store,
        }
    }

    pub fn recipes(&self) -> &[Recipe] {
        &self.recipes
    }

    /// The recipe in charge, if any.
    pub fn recipe(&self) -> Option<&Recipe> {
        let current = *lock(&self.recipe);
        current.and_then(|n| self.recipes.get(n))
    }

    /// `(running, new)` products when switching to recipe `n` changes the product.
    pub fn product_change(&self, n: usize) -> Option<(String, String)> {
        let to = self.recipes.get(n)?;
        let from = self.recipe()?;
        (from.product != to.product).then(|| (from.product.clone(), to.product.clone()))
    }

    /// Puts recipe `n` in charge: its model, then its thresholds, each in the settings log.
    /// A recipe for another product needs `confirmed`: the wrong model on a line passes
    /// everything it does not know. Loads a model: call it from a worker.
    pub fn switch_recipe(&self, n: usize, who: &str, confirmed: bool) -> anyhow::Result<String> {
        let Some(recipe) = self.recipes.get(n) else {
            bail!("there is no recipe {}", n + 1);
        };
        if let Some((from, to)) = self.product_change(n)
            && !confirmed
        {
            bail!(
                "recipe {} is for {to}, the line runs {from}: confirm the switch",
                recipe.name
            );
        }
        let mut done = vec![self.switch_model(&recipe.model, who)?];
        let rule = self.model().rule();
        let threshold = recipe.threshold.unwrap_or_else(|| rule.defect_threshold());
        let band = recipe
            .uncertain_band
            .unwrap_or_else(|| rule.uncertain_band());
        if recipe.threshold.is_some() || recipe.uncertain_band.is_some() {
            done.push(self.set_thresholds(who, threshold, band)?);
        }
        *lock(&self.recipe) = Some(n);
        tracing::warn!(%who, recipe = %recipe.name, product = %recipe.product, "recipe switched at the station");
        Ok(format!(
            "recipe {} ({}): {}",
            recipe.name,
            recipe.product,
            done.join("; ")
        ))
    }

    /// The model judging the parts now.
    pub fn model(&self) -> Arc<Model> {
        self.models.current()
    }

    /// Where the model in charge was loaded from.
    pub fn model_path(&self) -> PathBuf {
        lock(&self.path).clone()
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
        self.put_in_charge(path, who)
    }

    /// Puts a candidate from the learning loop's folder in charge: the engineer chose that
    /// folder in the config, and a candidate is promoted only with its comparison.
    pub fn promote_candidate(&self, path: &Path, who: &str) -> anyhow::Result<String> {
        self.put_in_charge(path, who)
    }

    fn put_in_charge(&self, path: &Path, who: &str) -> anyhow::Result<String> {
        let model = crate::engine::load_model(path, self.threads)?;
        self.install(path, &model, who)
    }

    /// Puts a model loaded (and checked) elsewhere in charge: a rollout's.
    pub fn install(&self, path: &Path, model: &Arc<Model>, who: &str) -> anyhow::Result<String> {
        let old = self
            .models
            .switch(model)
            .context("preparing the new model")?;
        *lock(&self.path) = path.to_owned();
        let (before, after) = (describe_model(&old), describe_model(model));
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

/// The recipe index and the path are only ever replaced whole, so they stay good after a
/// panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
