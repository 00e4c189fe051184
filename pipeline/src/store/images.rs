//! Images of the parts someone may want to see again (defects, uncertain parts), as JPEG
//! files in one folder per UTC day, pruned by age and total size so an edge box with a
//! small disk never fills up.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::{StoreError, unix_ms};
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use inspecta_vision::frame::Frame;

const JPEG_QUALITY: u8 = 90;

/// Names the file in an I/O error.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| StoreError::Io { path, source }
}
/// Without new images a station still drops expired days about this often.
const AGE_CHECK_EVERY: Duration = Duration::from_secs(3600);

/// How much image history a station keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: u64,
    pub max_days: u32,
}

#[derive(Debug)]
pub struct ImageArchive {
    root: PathBuf,
    retention: Retention,
    bytes: AtomicU64,
    /// Makes file names unique when two frames share a capture millisecond.
    counter: AtomicU64,
    last_age_check: std::sync::Mutex<Instant>,
}

impl ImageArchive {
    pub fn open(root: PathBuf, retention: Retention) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            path: root.clone(),
            source,
        })?;
        let bytes = stored_files(&root)?.iter().map(|f| f.bytes).sum();
        Ok(Self {
            root,
            retention,
            bytes: AtomicU64::new(bytes),
            counter: AtomicU64::new(0),
            last_age_check: std::sync::Mutex::new(Instant::now()),
        })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Writes `frame` as JPEG and returns its path relative to the archive. The file is
    /// complete on disk (synced, then renamed into place) before any record points to it.
    pub fn write(&self, frame: &Frame, captured_ms: i64) -> Result<String, StoreError> {
        let day = utc_day(captured_ms);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let relative = format!("{day}/{captured_ms:013}-{}-{n}.jpg", std::process::id());
        let path = self.root.join(&relative);
        let dir = self.root.join(&day);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let partial = path.with_extension("jpg.partial");
        let written = self.write_partial(frame, &partial).and_then(|size| {
            std::fs::rename(&partial, &path).map_err(io(&path))?;
            Ok(size)
        });
        match written {
            Ok(size) => {
                self.bytes.fetch_add(size, Ordering::Relaxed);
                Ok(relative)
            }
            Err(e) => {
                // A half-written file would only take the room a full disk lacks.
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    /// Encodes `frame` into `partial` and syncs it; returns its size.
    fn write_partial(&self, frame: &Frame, partial: &Path) -> Result<u64, StoreError> {
        let file = File::create(partial).map_err(io(partial))?;
        let mut out = BufWriter::new(file);
        JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
            .encode(
                frame.rgb(),
                frame.width(),
                frame.height(),
                ExtendedColorType::Rgb8,
            )
            .map_err(StoreError::Image)?;
        let file = out.into_inner().map_err(|e| StoreError::Io {
            path: partial.to_owned(),
            source: e.into_error(),
        })?;
        file.sync_data().map_err(io(partial))?;
        Ok(file.metadata().map_err(io(partial))?.len())
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Whether [`Self::prune`] has work to do now.
    pub fn needs_pruning(&self) -> bool {
        let age_due = self
            .last_age_check
            .lock()
            .map(|t| t.elapsed() >= AGE_CHECK_EVERY)
            .unwrap_or(true);
        age_due || self.bytes() > self.retention.max_bytes
    }

    /// Deletes images beyond the retention limits, oldest first; returns the relative
    /// paths deleted so the records can forget them.
    pub fn prune(&self, now: SystemTime) -> Result<Vec<String>, StoreError> {
        if let Ok(mut last) = self.last_age_check.lock() {
            *last = Instant::now();
        }
        let max_age_ms = i64::from(self.retention.max_days) * 86_400_000;
        let oldest_day_kept = utc_day(unix_ms(now).saturating_sub(max_age_ms));
        let files = stored_files(&self.root)?;
        let mut total: u64 = files.iter().map(|f| f.bytes).sum();
        let mut deleted = Vec::new();
        for file in files {
            let expired = file.day.as_str() < oldest_day_kept.as_str();
            if !expired && total <= self.retention.max_bytes {
                break;
            }
            let path = self.root.join(&file.relative);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { path, source }),
            }
            total -= file.bytes;
            deleted.push(file.relative);
        }
        self.bytes.store(total, Ordering::Relaxed);
        remove_empty_days(&self.root);
        Ok(deleted)
    }
}

struct StoredFile {
    day: String,
    relative: String,
    bytes: u64,
}

/// Every image, oldest first: day folders and file names both sort by time.
fn stored_files(root: &Path) -> Result<Vec<StoredFile>, StoreError> {
    let mut files = Vec::new();
    for day in std::fs::read_dir(root).map_err(io(root))? {
        let day = day.map_err(io(root))?;
        if !day.file_type().map_err(io(root))?.is_dir() {
            continue;
        }
        let day_name = day.file_name().to_string_lossy().into_owned();
        for entry in std::fs::read_dir(day.path()).map_err(io(&day.path()))? {
            let entry = entry.map_err(io(&day.path()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = entry.metadata().map_err(io(&entry.path()))?.len();
            files.push(StoredFile {
                relative: format!("{day_name}/{name}"),
                day: day_name.clone(),
                bytes,
            });
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

fn remove_empty_days(root: &Path) {
    let Ok(days) = std::fs::read_dir(root) else {
        return;
    };
    for day in days.flatten() {
        // Only succeeds on empty folders, which is the point.
        let _ = std::fs::remove_dir(day.path());
    }
}

fn utc_day(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_764_115_200_000), "2025-11-26");
    }
}
