//! A folder of images played as a production line: one part every `1 / parts_per_second`.
//! Unreadable files are reported one by one and skipped, so one bad file never stops a run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::{CapturedFrame, FrameSource, SourceError};
use inspecta_vision::frame::Frame;

#[derive(Debug)]
pub struct FolderSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    period: Duration,
    due: Instant,
    repeat: bool,
    sequence: u64,
}

impl FolderSource {
    /// Lists the images under `root` (recursively, sorted by path).
    pub fn open(root: &Path, parts_per_second: f64, repeat: bool) -> Result<Self, SourceError> {
        let mut files = Vec::new();
        collect_images(root, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(SourceError::Io {
                path: root.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no images in folder"),
            });
        }
        let period = if parts_per_second > 0.0 && parts_per_second.is_finite() {
            Duration::from_secs_f64(1.0 / parts_per_second)
        } else {
            Duration::ZERO
        };
        Ok(Self {
            root: root.to_owned(),
            files,
            next: 0,
            period,
            due: Instant::now(),
            repeat,
            sequence: 0,
        })
    }
}

impl FolderSource {
    /// Skips `last` and every file sorted before it. With `repeat`, the next round starts
    /// at the first file again.
    pub fn start_after(&mut self, last: &Path) {
        self.next = self.files.partition_point(|f| f.as_path() <= last);
        tracing::info!(after = %last.display(), skipped = self.next, left = self.files.len() - self.next, "folder source resumes");
    }
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| SourceError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if inspecta_vision::evaluation::dataset::is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedFrame>, SourceError> {
        if self.next == self.files.len() {
            if !self.repeat {
                return Ok(None);
            }
            self.next = 0;
        }
        let wait = self.due.saturating_duration_since(Instant::now());
        if wait > timeout {
            std::thread::sleep(timeout);
            return Err(SourceError::Timeout(timeout));
        }
        std::thread::sleep(wait);
        self.due = self.due.max(Instant::now() - self.period) + self.period;
        let path = self.files[self.next].clone();
        self.next += 1;
        let sequence = self.sequence;
        self.sequence += 1;
        let frame = Frame::open(&path).map_err(|source| SourceError::Image {
            path: path.clone(),
            source,
        })?;
        Ok(Some(CapturedFrame {
            frame,
            sequence,
            captured_at: SystemTime::now(),
            captured: Instant::now(),
            origin: Some(path),
        }))
    }

    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }

    fn is_live(&self) -> bool {
        false
    }
}
