//! The binary's door to the vision engine, shared by the commands and the live service:
//! loading a model with an error a person can act on, and the default worker count.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use inspecta_vision::model::{Model, RunnerOptions};

pub fn load_model(path: &Path, intra_op_threads: usize) -> anyhow::Result<Arc<Model>> {
    let model = Model::load(path, RunnerOptions { intra_op_threads })
        .with_context(|| format!("cannot load model {}", path.display()))?;
    Ok(Arc::new(model))
}

/// Logical CPUs, the default worker count.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
