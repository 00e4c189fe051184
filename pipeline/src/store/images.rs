//! Images of the parts someone may want to see again (defects, uncertain parts), as JPEG
//! files in one folder per UTC day, pruned by age and total size so an edge box with a
//! small disk never fills up; beside them a short ring of the latest parts whose image the
//! policy would not keep, so a passed part found defective later still has its picture.
//!
//! One scan at open indexes every file, oldest first; from then on pruning pops the oldest
//! entries, so an insert costs what it deletes, not what the archive holds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::{StoreError, unix_ms};
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use inspecta_vision::frame::Frame;

const JPEG_QUALITY: u8 = 90;
/// The ring's folder; not a day, and not counted in the archive's bytes.
pub const RING_DIR: &str = "recent";
const PARTIAL_EXTENSION: &str = "jpg.partial";
/// A `.partial` this old is a crash's leftover; a younger one may be a write in flight in
/// another process (`export-dataset` opens the store of a running station).
const STALE_PARTIAL: Duration = Duration::from_secs(3600);

/// Names the file in an I/O error.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| StoreError::Io { path, source }
}

/// How much image history a station keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: u64,
    pub max_days: u32,
    /// Ring images beyond this many parts are deleted, oldest first.
    pub ring_parts: u32,
    /// Ring images of parts captured longer ago than this are deleted.
    pub ring_minutes: u32,
}

/// Where an image is written: the kept archive, or the ring of recent parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    Kept,
    Ring,
}

/// An image on disk that is not indexed yet. It joins the index ([`ImageArchive::admit`])
/// once its record is committed, so pruning never deletes an image before the record that
/// names it exists, which would leave that record pointing at nothing.
#[derive(Debug)]
#[must_use]
pub struct Written {
    pub relative: String,
    shelf: Shelf,
    bytes: u64,
}

/// What one [`ImageArchive::prune`] did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Relative paths deleted, for the records to forget.
    pub deleted: Vec<String>,
    /// The file that could not be deleted; it stays indexed and pruning stopped there.
    pub failed: Option<StoreError>,
}

/// One shelf's files by relative path. Names start with the capture time, zero-padded, and
/// day folders sort by date, so the first entry is the oldest.
#[derive(Debug, Default)]
struct Index {
    files: BTreeMap<String, u64>,
    bytes: u64,
}

impl Index {
    fn insert(&mut self, relative: String, bytes: u64) {
        if let Some(replaced) = self.files.insert(relative, bytes) {
            self.bytes -= replaced;
        }
        self.bytes += bytes;
    }

    fn remove(&mut self, relative: &str) -> Option<u64> {
        let bytes = self.files.remove(relative)?;
        self.bytes -= bytes;
        Some(bytes)
    }
}

#[derive(Debug, Default)]
struct Shelves {
    kept: Index,
    ring: Index,
}

impl Shelves {
    fn index(&mut self, shelf: Shelf) -> &mut Index {
        match shelf {
            Shelf::Kept => &mut self.kept,
            Shelf::Ring => &mut self.ring,
        }
    }
}

/// The image folders and their index. One lock guards the index and every deletion, so
/// threads inserting at once (the line and the API share a store) never prune the same file
/// twice or count it wrong. Lock order: the store's connection, then this.
#[derive(Debug)]
pub struct ImageArchive {
    root: PathBuf,
    retention: Retention,
    /// Makes file names unique when two frames share a capture millisecond.
    counter: AtomicU64,
    shelves: Mutex<Shelves>,
}

impl ImageArchive {
    /// Indexes the archive with one scan. The ring is rebuilt from its folder, not dropped:
    /// a restarted station keeps the pictures of the parts just made, the likeliest to be
    /// reviewed next, and a reader opening a running station's store deletes nothing.
    pub fn open(root: PathBuf, retention: Retention) -> Result<Self, StoreError> {
        // The ring's folder is made by its first image: a read-only images folder must still
        // open, so every record is kept without its image.
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let mut shelves = Shelves::default();
        for day in std::fs::read_dir(&root).map_err(io(&root))? {
            let day = day.map_err(io(&root))?;
            let name = day.file_name().to_string_lossy().into_owned();
            if name != RING_DIR && day.file_type().map_err(io(&root))?.is_dir() {
                scan_folder(&root, &name, &mut shelves.kept)?;
            }
        }
        if root.join(RING_DIR).is_dir() {
            scan_folder(&root, RING_DIR, &mut shelves.ring)?;
        }
        Ok(Self {
            root,
            retention,
            counter: AtomicU64::new(0),
            shelves: Mutex::new(shelves),
        })
    }

    /// Bytes of the kept images (the ring is bounded by its count instead).
    pub fn bytes(&self) -> u64 {
        self.lock().kept.bytes
    }

    /// Writes `frame` as JPEG on `shelf`. The file is complete on disk (synced, then renamed
    /// into place) before any record points to it.
    pub fn write(
        &self,
        frame: &Frame,
        captured_ms: i64,
        shelf: Shelf,
    ) -> Result<Written, StoreError> {
        let folder = match shelf {
            Shelf::Kept => utc_day(captured_ms),
            Shelf::Ring => RING_DIR.to_owned(),
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let relative = format!("{folder}/{captured_ms:013}-{}-{n}.jpg", std::process::id());
        let path = self.root.join(&relative);
        let partial = path.with_extension(PARTIAL_EXTENSION);
        let written = self
            .create_partial(&folder, &partial)
            .and_then(|file| encode(file, frame, &partial))
            .and_then(|bytes| {
                std::fs::rename(&partial, &path).map_err(io(&path))?;
                Ok(bytes)
            });
        match written {
            Ok(bytes) => Ok(Written {
                relative,
                shelf,
                bytes,
            }),
            Err(e) => {
                // A half-written file would only take the room a full disk lacks.
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    /// Creates `partial` in `folder` under the lock, so pruning cannot remove the (empty)
    /// folder between the two.
    fn create_partial(&self, folder: &str, partial: &Path) -> Result<File, StoreError> {
        let _shelves = self.lock();
        let dir = self.root.join(folder);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        File::create(partial).map_err(io(partial))
    }

    /// Indexes an image whose record is committed.
    pub fn admit(&self, written: Written) {
        self.lock()
            .index(written.shelf)
            .insert(written.relative, written.bytes);
    }

    /// Deletes an image whose record could not be stored.
    pub fn discard(&self, written: &Written) {
        let path = self.root.join(&written.relative);
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), "cannot delete an image without a record: {e}");
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Deletes kept images beyond the retention limits and ring images beyond its count and
    /// age, oldest first, all under the lock; returns what it deleted so the records can
    /// forget it. When nothing is due this looks at two entries and returns.
    pub fn prune(&self, now: SystemTime) -> Pruned {
        let now_ms = unix_ms(now);
        let Retention {
            max_bytes,
            max_days,
            ring_parts,
            ring_minutes,
        } = self.retention;
        let oldest_day_kept = utc_day(now_ms.saturating_sub(i64::from(max_days) * 86_400_000));
        let oldest_ring_ms = now_ms.saturating_sub(i64::from(ring_minutes) * 60_000);
        let mut pruned = Pruned::default();
        let mut shelves = self.lock();
        self.prune_index(&mut shelves.kept, &mut pruned, |relative, _, bytes| {
            bytes > max_bytes || folder_of(relative) < oldest_day_kept.as_str()
        });
        let mut days: Vec<&str> = pruned.deleted.iter().map(|r| folder_of(r)).collect();
        days.dedup();
        for day in days {
            // Only succeeds on an empty folder, which is the point; writers create their
            // file in it under this same lock.
            let _ = std::fs::remove_dir(self.root.join(day));
        }
        self.prune_index(&mut shelves.ring, &mut pruned, |relative, count, _| {
            count > ring_parts as usize || captured_ms(relative) < oldest_ring_ms
        });
        pruned
    }

    /// Pops and deletes the oldest entries of `index` while `due(relative, count, bytes)`.
    fn prune_index(
        &self,
        index: &mut Index,
        pruned: &mut Pruned,
        due: impl Fn(&str, usize, u64) -> bool,
    ) {
        while pruned.failed.is_none() {
            let (count, bytes) = (index.files.len(), index.bytes);
            let Some(oldest) = index.files.first_entry() else {
                break;
            };
            if !due(oldest.key(), count, bytes) {
                break;
            }
            let path = self.root.join(oldest.key());
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    pruned.failed = Some(StoreError::Io { path, source });
                    break;
                }
            }
            let (relative, size) = oldest.remove_entry();
            index.bytes -= size;
            pruned.deleted.push(relative);
        }
    }

    /// Moves a ring image into its day folder, for a part someone reviewed. `commit` gets
    /// the image's new relative path (None when the ring has let it go already) and stores
    /// it in the record. The day file is a hard link made before, and the ring's name is
    /// removed after, that commit: whenever the process dies, the record names a file.
    pub fn promote<T>(
        &self,
        ring_relative: &str,
        commit: impl FnOnce(Option<&str>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut shelves = self.lock();
        let Some(&bytes) = shelves.ring.files.get(ring_relative) else {
            return commit(None);
        };
        let name = ring_relative
            .strip_prefix(RING_DIR)
            .unwrap_or(ring_relative)
            .trim_start_matches('/');
        let day = utc_day(captured_ms(ring_relative));
        let kept_relative = format!("{day}/{name}");
        let (from, to) = (
            self.root.join(ring_relative),
            self.root.join(&kept_relative),
        );
        let dir = self.root.join(&day);
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::hard_link(&from, &to))
        {
            tracing::error!(image = %from.display(), "cannot keep the image of a reviewed part: {e}");
            return commit(None);
        }
        match commit(Some(&kept_relative)) {
            Ok(done) => {
                shelves.ring.remove(ring_relative);
                shelves.kept.insert(kept_relative, bytes);
                if let Err(e) = std::fs::remove_file(&from) {
                    // Left behind, it is indexed again at open and leaves the ring by age.
                    tracing::warn!(image = %from.display(), "cannot remove a promoted ring image: {e}");
                }
                Ok(done)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&to);
                Err(e)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shelves> {
        // Every change to the index is one insert or remove: a panic cannot leave it torn.
        self.shelves.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a record's image is in the ring.
pub fn in_ring(relative: &str) -> bool {
    folder_of(relative) == RING_DIR
}

/// Indexes the images in `root/folder`, leaving out `.partial` files (writes in flight)
/// and removing those a crash left behind.
fn scan_folder(root: &Path, folder: &str, index: &mut Index) -> Result<(), StoreError> {
    let dir = root.join(folder);
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            // Deleted since the listing, by another process sharing the store.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StoreError::Io {
                    path: entry.path(),
                    source,
                });
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if !metadata.is_file() {
            continue;
        }
        if name.ends_with(PARTIAL_EXTENSION) {
            let stale = metadata
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= STALE_PARTIAL);
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        index.insert(format!("{folder}/{name}"), metadata.len());
    }
    Ok(())
}

/// Encodes `frame` into the `partial` file and syncs it; returns its size.
fn encode(file: File, frame: &Frame, partial: &Path) -> Result<u64, StoreError> {
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

/// The folder part of a relative path: a UTC day, or the ring's.
fn folder_of(relative: &str) -> &str {
    relative
        .split_once('/')
        .map_or(relative, |(folder, _)| folder)
}

/// The capture time a file name starts with; a name that has none sorts first.
fn captured_ms(relative: &str) -> i64 {
    let name = relative.rsplit_once('/').map_or(relative, |(_, name)| name);
    name.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(i64::MIN)
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

    #[test]
    fn names_carry_their_folder_and_capture_time() {
        let relative = "recent/1764115200000-42-7.jpg";
        assert!(in_ring(relative));
        assert!(!in_ring("2025-11-26/1764115200000-42-7.jpg"));
        assert_eq!(captured_ms(relative), 1_764_115_200_000);
        assert_eq!(captured_ms("recent/notes.txt"), i64::MIN);
    }
}
