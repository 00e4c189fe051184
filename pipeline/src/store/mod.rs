//! The record store: every verdict and every review in one SQLite file, next to the images
//! of the parts people need to see again. This is the station's memory: the API, the panel
//! and the plant links read it, and reviews written here become the next model's labels.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a record is on disk when
//! [`RecordStore::insert`] returns; a process killed at any moment (or a power cut) loses
//! nothing that was committed.

mod alarms;
mod changes;
mod forward;
pub mod images;
mod kpis;
mod records;
mod reviews;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use serde::{Deserialize, Serialize};

pub use alarms::{Alarm, NewAlarm, Outcome};
pub use changes::{Change, ChangeKind, NewChange};
pub use forward::Stream;
use images::ImageArchive;
pub use images::Retention;
pub use kpis::Kpis;
pub use records::{ModelRef, NewRecord, Page, Query, Record, Timings};
pub use reviews::{NewReview, Review, ReviewAction, ReviewedPart};

pub const DATABASE_FILE: &str = "records.sqlite";
pub const IMAGES_DIR: &str = "images";
/// Longest page [`RecordStore::list`] returns, whatever the caller asks for.
pub const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;
const FORGET_IMAGE: &str = "UPDATE verdicts SET image = NULL WHERE image = ?1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the record store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the record store {path} was written by a newer Inspecta (schema {found}, this build \
         knows {supported})"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("record store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the part image: {0}")]
    Image(image::ImageError),
    #[error("no record with id {0}")]
    NotFound(i64),
    #[error("{0}")]
    Invalid(String),
}

/// Which part images are kept with their records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImagePolicy {
    /// Defects and uncertain parts: the ones someone reviews or retrains on.
    #[default]
    NotGood,
    All,
    None,
}

/// The `[store]` section of a station config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Holds records.sqlite and the images folder.
    pub dir: PathBuf,
    #[serde(default)]
    pub images: ImagePolicy,
    /// Oldest images are deleted first once all images together exceed this.
    #[serde(default = "default_max_image_bytes")]
    pub max_image_bytes: u64,
    /// Images from days further back than this are deleted. Records are never pruned.
    #[serde(default = "default_max_image_days")]
    pub max_image_days: u32,
    /// With `images = "not_good"`, the latest this many passed parts keep their image in a
    /// ring, so one an inspector later finds defective still has it (a review keeps it for
    /// good). 0 turns the ring off.
    #[serde(default = "default_recent_images")]
    pub recent_images: u32,
    /// Ring images of parts captured longer ago than this are deleted.
    #[serde(default = "default_recent_image_minutes")]
    pub recent_image_minutes: u32,
}

fn default_max_image_bytes() -> u64 {
    2_000_000_000
}
fn default_max_image_days() -> u32 {
    90
}
/// About 25 MB of typical part images: seconds of a fast line, minutes of a slow one.
fn default_recent_images() -> u32 {
    500
}
/// Long enough to look at the part on the panel and override it.
fn default_recent_image_minutes() -> u32 {
    10
}

impl StoreConfig {
    /// A store in `dir` with the default image policy and retention.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            images: ImagePolicy::default(),
            max_image_bytes: default_max_image_bytes(),
            max_image_days: default_max_image_days(),
            recent_images: default_recent_images(),
            recent_image_minutes: default_recent_image_minutes(),
        }
    }

    fn retention(&self) -> Retention {
        Retention {
            max_bytes: self.max_image_bytes,
            max_days: self.max_image_days,
            ring_parts: self.recent_images,
            ring_minutes: self.recent_image_minutes,
        }
    }
}

#[derive(Debug)]
pub struct RecordStore {
    path: PathBuf,
    /// The writer: the line's inserts, reviews, settings, cursors and pruning.
    conn: Mutex<Connection>,
    /// Pure reads (API, panel, plant links, SPC) go through their own read-only connection:
    /// WAL lets it read the last commit while the writer goes on, so a long query never
    /// holds the line's inserts back, nor a stuck insert the reads.
    reader: Mutex<Connection>,
    images: ImageArchive,
    policy: ImagePolicy,
    /// Whether passed parts go to the ring under `not_good`.
    ring: bool,
    /// Part images that could not be written (disk full, read-only); their records were
    /// stored without them.
    image_errors: AtomicU64,
    /// Why the latest insert failed; None once one succeeds again.
    failing: Mutex<Option<String>>,
}

impl RecordStore {
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: config.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(io)?;
        let path = config.dir.join(DATABASE_FILE);
        let conn = open_database(&path)?;
        let reader = open_reader(&path)?;
        let images = ImageArchive::open(config.dir.join(IMAGES_DIR), config.retention())?;
        let store = Self {
            path,
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            images,
            policy: config.images,
            ring: config.recent_images > 0,
            image_errors: AtomicU64::new(0),
            failing: Mutex::new(None),
        };
        store.prune_images()?;
        tracing::info!(path = %store.path.display(), records = store.count()?, image_bytes = store.images.bytes(), "record store open");
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image kept with a record, if any and still retained.
    pub fn image_path(&self, id: i64) -> Result<Option<PathBuf>, StoreError> {
        let conn = self.read();
        let image: Option<String> = conn
            .query_row("SELECT image FROM verdicts WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()?
            .ok_or(StoreError::NotFound(id))?;
        Ok(image
            .map(|relative| self.images.path(&relative))
            .filter(|path| path.is_file()))
    }

    pub fn count(&self) -> Result<u64, StoreError> {
        let conn = self.read();
        let n: i64 = conn.query_row("SELECT count(*) FROM verdicts", [], |row| row.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Why the store is failing to keep verdicts (its latest insert failed), for health
    /// checks; None while inserts succeed.
    pub fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Part images that could not be written since the store opened.
    pub fn image_errors(&self) -> u64 {
        self.image_errors.load(Ordering::Relaxed)
    }

    /// Bytes of part images currently kept.
    pub fn image_bytes(&self) -> u64 {
        self.images.bytes()
    }

    /// Applies the retention limits now; records keep their data, only the image goes.
    pub fn prune_images(&self) -> Result<usize, StoreError> {
        let pruned = self.images.prune(SystemTime::now());
        self.forget_images(&pruned.deleted)?;
        if !pruned.deleted.is_empty() {
            tracing::debug!(
                images = pruned.deleted.len(),
                kept_bytes = self.images.bytes(),
                "old part images deleted (retention)"
            );
        }
        match pruned.failed {
            Some(e) => Err(e),
            None => Ok(pruned.deleted.len()),
        }
    }

    /// Points the records of deleted images at nothing (`verdicts_image` makes each a
    /// lookup, not a scan).
    fn forget_images(&self, deleted: &[String]) -> Result<(), StoreError> {
        if deleted.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut forget = tx.prepare_cached(FORGET_IMAGE)?;
            for relative in deleted {
                forget.execute([relative])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: the transaction
        // rolls back, so the connection is still good to use.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The read-only connection, for queries that change nothing.
    fn read(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn open_database(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_error)?;
    // Reading the journal mode is the first real read, so a file that is not a database
    // fails here with SQLite's "file is not a database".
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        .map_err(open_error)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_error)?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_error)?;
    if found > schema::latest() {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            supported: schema::latest(),
        });
    }
    schema::migrate(&mut conn).map_err(open_error)?;
    Ok(conn)
}

/// A read-only connection to the migrated database at `path`; it sees every committed write
/// of the writer's connection.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_error)?;
    Ok(conn)
}

pub(crate) fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn timestamp(unix_ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(unix_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Retention forgets one image per deleted file: a full scan of the verdicts for each
    /// would cost what pruning by the index saves.
    #[test]
    fn forgetting_an_image_uses_the_image_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_database(&dir.path().join(DATABASE_FILE)).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {FORGET_IMAGE}"))
            .unwrap()
            .query_map(["2025-11-26/x.jpg"], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("INDEX verdicts_image")),
            "{plan:?}"
        );
    }
}
