//! One module per subcommand; what several of them take lives here.

pub mod cameras;
pub mod eval;
pub mod export_dataset;
pub mod familiarize;
#[cfg(feature = "fleet")]
pub mod fleet;
pub mod predict;
pub mod run;
pub mod train;
pub mod users;

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
    /// The model named, or the bundled one.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        match &self.model {
            Some(path) => Ok(path.clone()),
            None => bundled(
                Path::new(DEFAULT_MODEL),
                "--model DIR (or set INSPECTA_MODEL)",
            ),
        }
    }
}

/// A file of the bundled `models/` folder: from a checkout (the working directory) first,
/// then from the install; an error that says where it looked and what to pass instead.
pub fn bundled(relative: &Path, instead: &str) -> anyhow::Result<PathBuf> {
    let candidates = [
        Some(Path::new("models").join(relative)),
        installed_models().map(|dir| dir.join(relative)),
    ];
    let candidates: Vec<PathBuf> = candidates.into_iter().flatten().collect();
    if let Some(found) = candidates.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "nothing named and no bundled {} at {}; pass {instead}",
        relative.display(),
        tried.join(" or ")
    )
}

/// `<prefix>/share/inspecta/models` beside the binary's `<prefix>/bin`, where the package
/// puts the bundled models.
fn installed_models() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let prefix = exe.parent()?.parent()?;
    Some(prefix.join("share/inspecta/models"))
}
