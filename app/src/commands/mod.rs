//! One module per subcommand; what several of them take lives here.

pub mod eval;
pub mod export_dataset;
pub mod familiarize;
pub mod predict;
pub mod run;
pub mod train;

use std::path::{Path, PathBuf};

/// Where a model is read from: a model directory (with model.toml), a manifest, or an .onnx.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArg {
    /// Model directory (with model.toml), its manifest, or an .onnx file.
    /// [default: models/casting in the working directory, else the installed
    /// <prefix>/share/inspecta/models/casting]
    #[arg(long, short, env = "INSPECTA_MODEL", value_name = "MODEL")]
    model: Option<PathBuf>,
}

/// The bundled model a command uses when none is named.
const DEFAULT_MODEL: &str = "casting";

impl ModelArg {
    /// The model named, or the bundled one: from a checkout first, then from the install.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.model {
            return Ok(path.clone());
        }
        let candidates = [
            Some(Path::new("models").join(DEFAULT_MODEL)),
            installed_models().map(|dir| dir.join(DEFAULT_MODEL)),
        ];
        let candidates: Vec<PathBuf> = candidates.into_iter().flatten().collect();
        if let Some(found) = candidates.iter().find(|p| p.exists()) {
            return Ok(found.clone());
        }
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!(
            "no model named and no bundled one at {}; pass --model DIR (or set INSPECTA_MODEL)",
            tried.join(" or ")
        )
    }
}

/// `<prefix>/share/inspecta/models` beside the binary's `<prefix>/bin`, where the package
/// puts the bundled models.
fn installed_models() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let prefix = exe.parent()?.parent()?;
    Some(prefix.join("share/inspecta/models"))
}
