//! Fetching a rollout's package: the list first (checked against the order's digest),
//! then each file (checked against its size and hash) into a folder that becomes the
//! model's only once everything matched.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use inspecta_pipeline::publish::rollout::{
    PACKAGE_FILE, PACKAGE_LIMIT, Package, PackageError, RolloutOrder,
};

/// What went wrong, and whether trying again could help.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The package is not the ordered one, or is no model: never retried.
    #[error("{0}")]
    Rejected(String),
    /// The server or the disk failed: the next order for the same rollout tries again.
    #[error("{0}")]
    Failed(String),
}

impl From<PackageError> for FetchError {
    fn from(e: PackageError) -> Self {
        match e {
            PackageError::Io { .. } => Self::Failed(e.to_string()),
            _ => Self::Rejected(e.to_string()),
        }
    }
}

/// A generous bound for one file: a model of hundreds of megabytes over a slow plant link.
const FILE_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches the package `order` names into `dir/model` (kept when it already matches) and
/// returns its list; `dir/package.json` keeps the list for checks after a restart.
pub fn fetch(order: &RolloutOrder, dir: &Path) -> Result<Package, FetchError> {
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FILE_TIMEOUT)
        .build()
        .map_err(|e| FetchError::Failed(format!("cannot make an HTTP client: {e}")))?;
    let base = order.package_url.trim_end_matches('/');
    let list = get(&client, &format!("{base}/{PACKAGE_FILE}"), PACKAGE_LIMIT)?;
    let package = Package::from_json(&list, &order.digest)?;
    let model = dir.join("model");
    if package.verify(&model).is_ok() {
        tracing::info!(rollout = %order.rollout, "the package is already here and matches");
        return Ok(package);
    }
    let partial = dir.join("model.partial");
    recreate(&partial)?;
    for file in &package.files {
        let path = partial.join(&file.name);
        download(
            &client,
            &format!("{base}/files/{}", file.name),
            file.size,
            &path,
        )?;
        file.verify(&path)?;
    }
    sync_dir(&partial)?;
    remove(&model)?;
    std::fs::rename(&partial, &model)
        .map_err(|e| FetchError::Failed(format!("cannot move the package into place: {e}")))?;
    let text = serde_json::to_vec_pretty(&package)
        .map_err(|e| FetchError::Failed(format!("cannot write the package list: {e}")))?;
    write_synced(&dir.join(PACKAGE_FILE), &text)?;
    Ok(package)
}

/// The package list kept beside a fetched model, checked against `digest` again.
pub fn kept_package(dir: &Path, digest: &str) -> Result<Package, FetchError> {
    let path = dir.join(PACKAGE_FILE);
    let bytes = std::fs::read(&path)
        .map_err(|e| FetchError::Failed(format!("cannot read {}: {e}", path.display())))?;
    Ok(Package::from_json(&bytes, digest)?)
}

fn get(client: &reqwest::blocking::Client, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
    let mut response = request(client, url)?;
    let mut bytes = Vec::new();
    response
        .by_ref()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FetchError::Failed(format!("{url}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(FetchError::Rejected(format!(
            "{url} is over {limit} bytes: no package list"
        )));
    }
    Ok(bytes)
}

/// Streams `url` to `path`, refusing more than `size` bytes; fewer is a broken transfer.
fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    size: u64,
    path: &Path,
) -> Result<(), FetchError> {
    let failed = |e: std::io::Error| FetchError::Failed(format!("{}: {e}", path.display()));
    let response = request(client, url)?;
    let mut file = std::fs::File::create(path).map_err(failed)?;
    let copied = std::io::copy(&mut response.take(size + 1), &mut file)
        .map_err(|e| FetchError::Failed(format!("{url}: {e}")))?;
    if copied > size {
        return Err(FetchError::Rejected(format!(
            "{url} is longer than the {size} bytes the package lists"
        )));
    }
    if copied < size {
        return Err(FetchError::Failed(format!(
            "{url} ended after {copied} of {size} bytes"
        )));
    }
    file.sync_all().map_err(failed)
}

fn request(
    client: &reqwest::blocking::Client,
    url: &str,
) -> Result<reqwest::blocking::Response, FetchError> {
    let response = client
        .get(url)
        .send()
        .map_err(|e| FetchError::Failed(format!("{url}: {e}")))?;
    if !response.status().is_success() {
        return Err(FetchError::Failed(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    Ok(response)
}

fn recreate(dir: &Path) -> Result<(), FetchError> {
    remove(dir)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| FetchError::Failed(format!("cannot create {}: {e}", dir.display())))
}

fn remove(dir: &Path) -> Result<(), FetchError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FetchError::Failed(format!(
            "cannot remove {}: {e}",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), FetchError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FetchError::Failed(format!("cannot sync {}: {e}", dir.display())))
}

/// Writes `bytes` to `path` through a temporary file, so a crash leaves the old or the new.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let failed = |e: std::io::Error| FetchError::Failed(format!("{}: {e}", path.display()));
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}
