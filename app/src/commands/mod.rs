pub mod eval;
pub mod export_dataset;
pub mod predict;
pub mod run;
pub mod train;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use inspecta_pipeline::model::{Model, RunnerOptions};

pub fn load_model(path: &Path, intra_op_threads: usize) -> anyhow::Result<Arc<Model>> {
    let model = Model::load(path, RunnerOptions { intra_op_threads })
        .with_context(|| format!("cannot load model {}", path.display()))?;
    Ok(Arc::new(model))
}

/// Logical CPUs, the default worker count.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
