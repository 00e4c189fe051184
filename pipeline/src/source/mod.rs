//! Where frames come from: cameras and streams through GStreamer, UVC cameras through
//! nokhwa, or a folder of images played like a production line. Every source hands out
//! owned [`Frame`]s with a sequence number and capture time; no source type leaks past this
//! module. GStreamer and UVC are cargo features: a build without one says so when a config
//! asks for it.

#[cfg(feature = "gstreamer")]
pub mod cameras;
pub mod folder;
#[cfg(feature = "gstreamer")]
pub mod gstreamer;
#[cfg(feature = "uvc")]
pub mod uvc;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use inspecta_vision::frame::{Frame, FrameError};

/// One frame as captured.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    pub frame: Frame,
    /// Counts frames delivered by this source since it opened, from 0.
    pub sequence: u64,
    pub captured_at: SystemTime,
    /// The same moment on the monotonic clock, for latency measurements.
    pub captured: Instant,
    /// Where the frame came from (a file name for folder sources).
    pub origin: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("GStreamer is not available: {0}")]
    Init(String),
    #[error("invalid pipeline {pipeline:?}: {reason}")]
    Pipeline { pipeline: String, reason: String },
    #[error("stream error from {element}: {message}")]
    Stream { element: String, message: String },
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    #[error("end of stream from a camera or stream, which has no end: it went away")]
    Lost,
    #[error("unusable frame: {0}")]
    Frame(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Image { path: PathBuf, source: FrameError },
    #[error("UVC camera {index}: {message}")]
    Camera { index: u32, message: String },
    #[error("this build of Inspecta has no {0} sources (rebuild with the `{0}` feature)")]
    NotBuilt(&'static str),
}

/// A source of frames. `Ok(None)` means the source has ended (end of file or folder).
pub trait FrameSource: Send {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedFrame>, SourceError>;
    /// What this source reads, for logs and status.
    fn describe(&self) -> String;
    /// Live sources (cameras, streams) may skip frames when inspection is slower; parts
    /// from a non-live source (a folder of part images) are each inspected.
    fn is_live(&self) -> bool {
        true
    }
}

/// A source as written in a station config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// Any GStreamer pipeline. Without an `appsink`, `! videoconvert ! appsink` is appended.
    Pipeline { pipeline: String },
    /// A V4L2 camera, e.g. `/dev/video0`.
    V4l2 { device: PathBuf },
    /// An RTSP stream, e.g. `rtsp://camera.local:554/stream1`.
    Rtsp {
        url: String,
        #[serde(default = "default_rtsp_latency_ms")]
        latency_ms: u32,
    },
    /// A UVC camera through nokhwa, by index (`/dev/video<index>` on Linux), in the mode
    /// closest to the size and rate asked for (640x480 at 30 fps when unset).
    Uvc {
        index: u32,
        width: Option<u32>,
        height: Option<u32>,
        fps: Option<u32>,
    },
    /// A video file, played at its own frame rate (or as fast as possible).
    File {
        path: PathBuf,
        #[serde(default = "yes")]
        realtime: bool,
    },
    /// GStreamer's test pattern: a camera stand-in for trials and tests.
    TestPattern {
        #[serde(default = "default_pattern")]
        pattern: String,
        #[serde(default = "default_width")]
        width: u32,
        #[serde(default = "default_height")]
        height: u32,
        #[serde(default = "default_fps")]
        fps: u32,
    },
    /// Image files played one after another at `parts_per_second`, looping if asked.
    Folder {
        path: PathBuf,
        #[serde(default = "default_parts_per_second")]
        parts_per_second: f64,
        #[serde(default)]
        repeat: bool,
        /// Start after this file (in path order), skipping it and those before. A station
        /// with a store fills it in from the last part it stored from this folder, so a
        /// restart carries on instead of recording the same parts again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_after: Option<PathBuf>,
    },
}

fn default_rtsp_latency_ms() -> u32 {
    200
}
fn yes() -> bool {
    true
}
fn default_pattern() -> String {
    "smpte".into()
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_fps() -> u32 {
    30
}
fn default_parts_per_second() -> f64 {
    2.0
}

impl SourceSpec {
    /// Whether this build can open such a source at all: a station refuses to start rather
    /// than retry a source it will never have.
    pub fn check_built(&self) -> Result<(), SourceError> {
        match self {
            Self::Folder { .. } => Ok(()),
            Self::Uvc { .. } if cfg!(not(feature = "uvc")) => Err(SourceError::NotBuilt("uvc")),
            Self::Uvc { .. } => Ok(()),
            _ if cfg!(not(feature = "gstreamer")) => Err(SourceError::NotBuilt("gstreamer")),
            _ => Ok(()),
        }
    }

    /// Whether the source's end-of-stream is the end of the work (a file, a pipeline the
    /// user wrote) or, for cameras and streams, a connection lost and to be made again.
    pub fn has_end(&self) -> bool {
        match self {
            Self::V4l2 { .. } | Self::Rtsp { .. } | Self::Uvc { .. } | Self::TestPattern { .. } => {
                false
            }
            Self::Folder { repeat, .. } => !repeat,
            Self::File { .. } | Self::Pipeline { .. } => true,
        }
    }

    /// Opens the source this spec describes.
    pub fn open(&self) -> Result<Box<dyn FrameSource>, SourceError> {
        match self {
            Self::Folder {
                path,
                parts_per_second,
                repeat,
                start_after,
            } => {
                let mut source = folder::FolderSource::open(path, *parts_per_second, *repeat)?;
                if let Some(last) = start_after {
                    source.start_after(last);
                }
                Ok(Box::new(source))
            }
            #[cfg(feature = "uvc")]
            Self::Uvc {
                index,
                width,
                height,
                fps,
            } => Ok(Box::new(uvc::UvcSource::open(
                *index,
                uvc::Wanted {
                    width: *width,
                    height: *height,
                    fps: *fps,
                },
            )?)),
            #[cfg(not(feature = "uvc"))]
            Self::Uvc { .. } => Err(SourceError::NotBuilt("uvc")),
            #[cfg(feature = "gstreamer")]
            other => {
                let description = gstreamer::pipeline_description(other).ok_or_else(|| {
                    SourceError::Pipeline {
                        pipeline: format!("{other:?}"),
                        reason: "not a GStreamer source".into(),
                    }
                })?;
                let source = gstreamer::GstSource::open(&description)?;
                Ok(Box::new(if other.has_end() {
                    source
                } else {
                    source.without_end()
                }))
            }
            #[cfg(not(feature = "gstreamer"))]
            _ => Err(SourceError::NotBuilt("gstreamer")),
        }
    }
}
