//! Model rollout between the plant and a station. An engineer publishes a *package* (the
//! model's files, each with its size and SHA-256, served over HTTP) and sends each station
//! an *order* that names the package's digest; the station reports what became of it on
//! `<base>/rollout` (retained). The digest in the order is the root of trust: the package
//! list and the files may come from any server, and a station runs nothing that does not
//! hash to it.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The package list's name under the order's `package_url`; files are under `files/`.
pub const PACKAGE_FILE: &str = "package.json";
/// A package list is a few hundred bytes; more is not one.
pub const PACKAGE_LIMIT: u64 = 1 << 20;

/// One file of a model directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFile {
    /// A plain file name in the model directory (no folders).
    pub name: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// A model directory as it travels: what it is and the files it is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub model: String,
    pub version: String,
    pub files: Vec<PackageFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} is no plain file name: a package holds the files of one folder")]
    Name(String),
    #[error("{0} is listed twice")]
    Twice(String),
    #[error("the package has no model.toml")]
    NoManifest,
    #[error("{name} should have SHA-256 {expected}, it has {found}")]
    Mismatch {
        name: String,
        expected: String,
        found: String,
    },
    #[error("{name} should be {expected} bytes, it is {found}")]
    Size {
        name: String,
        expected: u64,
        found: u64,
    },
    #[error("the package list hashes to {found}, the order names {expected}")]
    Digest { expected: String, found: String },
}

impl Package {
    /// The package of the files `names` in `dir`, in that order.
    pub fn of_files(
        dir: &Path,
        model: &str,
        version: &str,
        names: &[String],
    ) -> Result<Self, PackageError> {
        let files = names
            .iter()
            .map(|name| {
                let path = dir.join(name);
                let (size, sha256) = hash_file(&path)?;
                Ok(PackageFile {
                    name: name.clone(),
                    size,
                    sha256,
                })
            })
            .collect::<Result<_, PackageError>>()?;
        let package = Self {
            model: model.to_owned(),
            version: version.to_owned(),
            files,
        };
        package.check()?;
        Ok(package)
    }

    /// SHA-256 over the model, its version and each file's hash, size and name in name
    /// order: the same for the same files whatever the JSON looked like.
    pub fn digest(&self) -> String {
        let mut hasher = sha2::Sha256::new();
        hasher.update(format!("{}\n{}\n", self.model, self.version));
        let mut files: Vec<&PackageFile> = self.files.iter().collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        for file in files {
            hasher.update(format!("{}  {}  {}\n", file.sha256, file.size, file.name));
        }
        hex(&hasher.finalize())
    }

    /// The package list read from its JSON, checked to be the one `digest` names.
    pub fn from_json(bytes: &[u8], digest: &str) -> Result<Self, PackageError> {
        let package: Self = serde_json::from_slice(bytes).map_err(|e| PackageError::Io {
            path: PACKAGE_FILE.into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let found = package.digest();
        if !found.eq_ignore_ascii_case(digest) {
            return Err(PackageError::Digest {
                expected: digest.to_owned(),
                found,
            });
        }
        package.check()?;
        Ok(package)
    }

    /// Names that stay inside one folder, each once, and a manifest among them.
    pub fn check(&self) -> Result<(), PackageError> {
        let mut seen = std::collections::BTreeSet::new();
        for file in &self.files {
            if !plain_name(&file.name) {
                return Err(PackageError::Name(file.name.clone()));
            }
            if !seen.insert(file.name.as_str()) {
                return Err(PackageError::Twice(file.name.clone()));
            }
        }
        if !seen.contains("model.toml") {
            return Err(PackageError::NoManifest);
        }
        Ok(())
    }

    /// Every file in `dir` has the size and hash the package lists.
    pub fn verify(&self, dir: &Path) -> Result<(), PackageError> {
        self.files
            .iter()
            .try_for_each(|file| file.verify(&dir.join(&file.name)))
    }
}

impl PackageFile {
    /// The file at `path` is this one.
    pub fn verify(&self, path: &Path) -> Result<(), PackageError> {
        let (size, sha256) = hash_file(path)?;
        if size != self.size {
            return Err(PackageError::Size {
                name: self.name.clone(),
                expected: self.size,
                found: size,
            });
        }
        if !sha256.eq_ignore_ascii_case(&self.sha256) {
            return Err(PackageError::Mismatch {
                name: self.name.clone(),
                expected: self.sha256.clone(),
                found: sha256,
            });
        }
        Ok(())
    }
}

/// A name that is one path component, visible, and safe in a URL and on any file system.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Size and SHA-256 (hex) of a file, read in pieces.
pub fn hash_file(path: &Path) -> Result<(u64, String), PackageError> {
    let io = |source| PackageError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// SHA-256 (hex) of bytes in memory.
pub fn sha256_of(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an engineer sends a station (the `rollout` command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutOrder {
    /// Names the rollout in every report; one folder and one topic segment.
    pub rollout: String,
    /// Where the package is: `<package_url>/package.json` and `<package_url>/files/<name>`.
    pub package_url: String,
    /// [`Package::digest`] of the package to run.
    pub digest: String,
    /// Parts the model judges as a shadow before its figures decide.
    #[serde(default = "default_shadow_parts")]
    pub shadow_parts: u64,
    #[serde(default)]
    pub promote: Promote,
    #[serde(default)]
    pub who: Option<String>,
}

impl RolloutOrder {
    /// An id fit for a folder name and a report, and a package URL the station can fetch.
    pub fn check(&self) -> Result<(), String> {
        if !plain_name(&self.rollout) {
            return Err(format!(
                "rollout id {:?} must be letters, digits, '.', '_' or '-'",
                self.rollout
            ));
        }
        if self.digest.len() != 64 || !self.digest.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("digest {:?} is no SHA-256", self.digest));
        }
        if !self.package_url.starts_with("http://") && !self.package_url.starts_with("https://") {
            return Err(format!("package_url {:?} is no HTTP URL", self.package_url));
        }
        if self.shadow_parts == 0 {
            return Err("shadow_parts must be at least 1".into());
        }
        if let Promote::Auto { min_agreement } = self.promote
            && !(0.0..=1.0).contains(&min_agreement)
        {
            return Err(format!(
                "min_agreement {min_agreement} must be between 0 and 1"
            ));
        }
        Ok(())
    }
}

fn default_shadow_parts() -> u64 {
    200
}

/// When a rolled-out model takes charge after its shadow parts.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Promote {
    /// On its own when its verdicts agreed with the running model's on at least this share
    /// of the parts; otherwise it waits for an engineer.
    Auto { min_agreement: f64 },
    /// Only on an engineer's approval.
    #[default]
    Approval,
}

/// Where a rollout stands at one station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Fetching and checking the package.
    Downloading,
    /// Judging parts beside the running model.
    Shadow,
    /// Its shadow parts are judged; an engineer decides.
    AwaitingApproval,
    /// In charge.
    Promoted,
    /// The package did not match its digest, or is no model: nothing of it ran.
    Rejected,
    /// The package could not be fetched or the model not started.
    Failed,
    /// Another rollout came before it finished.
    Superseded,
    /// Rolled back before it took charge.
    Cancelled,
    /// It was in charge; the model before it is again.
    RolledBack,
}

impl Phase {
    /// Nothing more happens without an engineer.
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Downloading | Self::Shadow)
    }
}

/// What a station reports on `<base>/rollout`, retained, at every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    pub rollout: String,
    pub digest: String,
    /// Empty until the package list is read.
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub version: String,
    pub phase: Phase,
    pub promote: Promote,
    pub shadow_parts: u64,
    /// Parts the shadow judged, and on how many its verdict differed from the running
    /// model's.
    pub judged: u64,
    pub disagreements: u64,
    /// Parts the shadow had no time for (the line never waits for it).
    #[serde(default)]
    pub skipped: u64,
    /// `1 - disagreements / judged`.
    #[serde(default)]
    pub agreement: Option<f64>,
    /// Disagreements by "running -> rolled out" verdict.
    #[serde(default)]
    pub pairs: BTreeMap<String, u64>,
    /// The model it replaced, once promoted ("name version").
    #[serde(default)]
    pub replaced: Option<String>,
    /// Why it was rejected, failed, or waits.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who ordered it, or who took the last step (approval, rollback).
    #[serde(default)]
    pub who: Option<String>,
    pub at: jiff::Timestamp,
}

impl RolloutState {
    /// A rollout just ordered.
    pub fn ordered(order: &RolloutOrder) -> Self {
        Self {
            rollout: order.rollout.clone(),
            digest: order.digest.clone(),
            model: String::new(),
            version: String::new(),
            phase: Phase::Downloading,
            promote: order.promote,
            shadow_parts: order.shadow_parts,
            judged: 0,
            disagreements: 0,
            skipped: 0,
            agreement: None,
            pairs: BTreeMap::new(),
            replaced: None,
            reason: None,
            who: order.who.clone(),
            at: jiff::Timestamp::now(),
        }
    }

    /// Moves to `phase`, saying why.
    pub fn enter(&mut self, phase: Phase, reason: Option<String>) {
        self.phase = phase;
        self.reason = reason;
        self.at = jiff::Timestamp::now();
    }
}

/// The station's last reported rollout state, for its own doors (the API's `/status`).
#[derive(Debug, Clone, Default)]
pub struct RolloutBoard(Arc<Mutex<Option<RolloutState>>>);

impl RolloutBoard {
    pub fn set(&self, state: RolloutState) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
    }

    pub fn get(&self) -> Option<RolloutState> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn package(dir: &Path) -> Package {
        std::fs::write(dir.join("model.toml"), "name = \"m\"\n").unwrap();
        std::fs::write(dir.join("model.onnx"), b"weights").unwrap();
        Package::of_files(dir, "m", "2", &["model.toml".into(), "model.onnx".into()]).unwrap()
    }

    #[test]
    fn the_digest_is_the_files_not_their_order_in_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let a = package(dir.path());
        let mut b = a.clone();
        b.files.reverse();
        assert_eq!(a.digest(), b.digest());
        let json = serde_json::to_vec_pretty(&b).unwrap();
        assert_eq!(Package::from_json(&json, &a.digest()).unwrap(), b);
    }

    #[test]
    fn a_list_that_is_not_the_ordered_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = package(dir.path());
        let digest = a.digest();
        let mut forged = a.clone();
        forged.files[1].sha256 = "0".repeat(64);
        let json = serde_json::to_vec(&forged).unwrap();
        assert!(matches!(
            Package::from_json(&json, &digest),
            Err(PackageError::Digest { .. })
        ));
        let mut renamed = a;
        renamed.version = "3".into();
        let json = serde_json::to_vec(&renamed).unwrap();
        assert!(Package::from_json(&json, &digest).is_err());
    }

    #[test]
    fn a_changed_file_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let a = package(dir.path());
        a.verify(dir.path()).unwrap();
        std::fs::write(dir.path().join("model.onnx"), b"weightz").unwrap();
        assert!(matches!(
            a.verify(dir.path()),
            Err(PackageError::Mismatch { .. })
        ));
        std::fs::write(dir.path().join("model.onnx"), b"weights!").unwrap();
        assert!(matches!(
            a.verify(dir.path()),
            Err(PackageError::Size { .. })
        ));
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        for name in ["../model.toml", "a/b", ".hidden", "", "x y", "C:model"] {
            let package = Package {
                model: "m".into(),
                version: "1".into(),
                files: vec![
                    PackageFile {
                        name: "model.toml".into(),
                        size: 1,
                        sha256: "0".repeat(64),
                    },
                    PackageFile {
                        name: name.into(),
                        size: 1,
                        sha256: "0".repeat(64),
                    },
                ],
            };
            assert!(
                matches!(package.check(), Err(PackageError::Name(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn an_order_is_checked_before_anything_is_fetched() {
        let order = RolloutOrder {
            rollout: "r1".into(),
            package_url: "http://10.0.0.5:8470/rollouts/r1".into(),
            digest: "a".repeat(64),
            shadow_parts: 10,
            promote: Promote::Auto {
                min_agreement: 0.99,
            },
            who: None,
        };
        assert_eq!(order.check(), Ok(()));
        let bad = [
            RolloutOrder {
                rollout: "../x".into(),
                ..order.clone()
            },
            RolloutOrder {
                digest: "abc".into(),
                ..order.clone()
            },
            RolloutOrder {
                package_url: "file:///etc/passwd".into(),
                ..order.clone()
            },
            RolloutOrder {
                promote: Promote::Auto { min_agreement: 1.5 },
                ..order.clone()
            },
            RolloutOrder {
                shadow_parts: 0,
                ..order
            },
        ];
        for order in bad {
            assert!(order.check().is_err(), "{order:?}");
        }
    }
}
