//! The package an engineer publishes: a model directory's files with their hashes, and the
//! HTTP server the stations fetch it from. The files are read once, so what is served is
//! what was hashed, whatever happens to the folder meanwhile.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use inspecta_pipeline::publish::rollout::{PACKAGE_FILE, Package, PackageFile, sha256_of};

use crate::api::serve::{Limits, Server};

/// A package and its files, in memory.
#[derive(Debug)]
pub struct Published {
    pub package: Package,
    pub digest: String,
    files: BTreeMap<String, Bytes>,
}

impl Published {
    /// The model in `dir`, loaded once to prove it is one, and the files it is made of;
    /// every one of them must be in `dir` itself.
    pub fn of_model(dir: &Path) -> anyhow::Result<Self> {
        if !dir.join("model.toml").is_file() {
            bail!("{} is no model directory (no model.toml)", dir.display());
        }
        let model = crate::engine::load_model(dir, 1)?;
        let manifest = model.manifest();
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let mut files = BTreeMap::new();
        let mut listed = Vec::new();
        for path in model.files() {
            let path = path
                .canonicalize()
                .with_context(|| format!("cannot resolve {}", path.display()))?;
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                bail!("{} is no file", path.display());
            };
            if parent != dir {
                bail!(
                    "the model uses {}, outside its directory {}: copy it in and name it in model.toml, so the package carries it",
                    path.display(),
                    dir.display()
                );
            }
            let name = name.to_string_lossy().into_owned();
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            listed.push(PackageFile {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: sha256_of(&bytes),
            });
            files.insert(name, Bytes::from(bytes));
        }
        let package = Package {
            model: manifest.name.clone(),
            version: manifest.version.clone(),
            files: listed,
        };
        package
            .check()
            .context("the model cannot travel as a package")?;
        Ok(Self {
            digest: package.digest(),
            package,
            files,
        })
    }

    /// Serves `/rollouts/<id>/package.json` and `/rollouts/<id>/files/<name>` on `listen`.
    pub fn serve(self: &Arc<Self>, rollout: &str, listen: SocketAddr) -> anyhow::Result<Server> {
        let list = serde_json::to_vec_pretty(&self.package).context("the package list")?;
        let state = Arc::new((Arc::clone(self), Bytes::from(list)));
        let app = Router::new()
            .route(&format!("/rollouts/{rollout}/{PACKAGE_FILE}"), get(list_of))
            .route(&format!("/rollouts/{rollout}/files/{{name}}"), get(file))
            .with_state(state);
        let server = Server::start("rollout-http", listen, app, Limits::scrapes())?;
        tracing::info!(address = %server.address, files = self.files.len(), "serving the package");
        Ok(server)
    }
}

type Served = Arc<(Arc<Published>, Bytes)>;

async fn list_of(State(served): State<Served>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        served.1.clone(),
    )
        .into_response()
}

async fn file(State(served): State<Served>, UrlPath(name): UrlPath<String>) -> Response {
    match served.0.files.get(&name) {
        Some(bytes) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file in the package").into_response(),
    }
}
