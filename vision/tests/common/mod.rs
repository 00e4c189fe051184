#![allow(dead_code, clippy::unwrap_used)]
//! Paths and helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inspecta_vision::model::{Model, RunnerOptions};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn samples() -> PathBuf {
    repo().join("samples")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The public defect datasets laid beside the checkout (see ../shared/datasets/README.md).
pub fn datasets() -> PathBuf {
    let dir = std::env::var_os("INSPECTA_DATASETS")
        .map_or_else(|| repo().join("../shared/datasets"), PathBuf::from);
    assert!(
        dir.is_dir(),
        "datasets not found at {}; set INSPECTA_DATASETS",
        dir.display()
    );
    dir
}

pub fn load(model: &str) -> Arc<Model> {
    Arc::new(Model::load(&repo().join("models").join(model), RunnerOptions::default()).unwrap())
}

pub fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}
