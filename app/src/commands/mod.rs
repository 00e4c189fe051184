//! One module per subcommand; what several of them take lives here.

pub mod eval;
pub mod export_dataset;
pub mod familiarize;
pub mod predict;
pub mod run;
pub mod train;

use std::path::PathBuf;

/// Where a model is read from: a model directory (with model.toml), a manifest, or an .onnx.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArg {
    #[arg(long, short, env = "INSPECTA_MODEL", default_value = "models/casting")]
    pub model: PathBuf,
}
