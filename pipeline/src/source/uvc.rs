//! UVC cameras through nokhwa (V4L2 on Linux, Media Foundation on Windows, AVFoundation on
//! macOS), for cameras used without GStreamer. nokhwa's `Camera` is not `Send`, so each camera
//! lives on its own thread, which decodes frames to RGB and leaves only the newest one in a
//! one-slot mailbox: a slow model makes the camera skip frames, never queue them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nokhwa::Camera;
use nokhwa::pixel_format::{FormatDecoder, RgbFormat};
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};

use super::{CapturedFrame, FrameSource, SourceError};
use crate::mailbox::{Mailbox, Take};
use inspecta_vision::frame::Frame;

/// Opening enumerates every mode of the camera, which takes a while on some devices, but a
/// camera that does not answer in this time is not going to.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dropping the source waits for the camera thread; a camera stuck in a read is
/// left to finish on its own rather than hang the station.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Corrupt MJPEG frames happen on busy USB buses and are skipped; this many in a row means
/// the stream itself is broken.
const MAX_BAD_FRAMES_IN_A_ROW: u32 = 30;
/// The mode asked for when the config names none: enough for a 224x224 model, and cheap to
/// decode on a small CPU.
const DEFAULT_SIZE: (u32, u32) = (640, 480);
const DEFAULT_FPS: u32 = 30;

/// The mode a config asks for; each unset field leaves the choice to [`choose_format`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
}

/// A frame from the camera thread, before it gets its sequence number.
#[derive(Debug)]
struct Grabbed {
    frame: Frame,
    captured_at: SystemTime,
    captured: Instant,
}

type Slot = Mailbox<Result<Grabbed, SourceError>>;

#[derive(Debug)]
pub struct UvcSource {
    index: u32,
    description: String,
    frames: Arc<Slot>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    sequence: u64,
}

impl UvcSource {
    /// Opens camera `index` (`/dev/video<index>` on Linux) in the mode closest to `wanted`
    /// and starts streaming. Fails with [`SourceError::Camera`] if the camera is missing,
    /// busy, or has no mode that can be decoded to RGB.
    pub fn open(index: u32, wanted: Wanted) -> Result<Self, SourceError> {
        let frames = Arc::new(Slot::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (opened, on_open) = sync_channel(1);
        let thread = {
            let frames = Arc::clone(&frames);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("uvc{index}"))
                .spawn(move || run_camera(index, wanted, &opened, &frames, &stop))
                .map_err(|e| camera_error(index, format!("cannot start its thread: {e}")))?
        };
        let format = match on_open.recv_timeout(OPEN_TIMEOUT) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(camera_error(
                index,
                format!("did not open within {OPEN_TIMEOUT:?}"),
            )),
            Err(RecvTimeoutError::Disconnected) => Err(camera_error(
                index,
                "its thread stopped while opening it".into(),
            )),
        };
        let mut source = Self {
            index,
            description: format!("uvc camera {index}"),
            frames,
            stop,
            thread: Some(thread),
            sequence: 0,
        };
        let format = format?;
        source.description = format!(
            "uvc camera {index} ({}x{} {} at {} fps)",
            format.width(),
            format.height(),
            format.format(),
            format.frame_rate()
        );
        Ok(source)
    }
}

impl FrameSource for UvcSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedFrame>, SourceError> {
        match self.frames.take(timeout) {
            Take::Item(Ok(grabbed)) => {
                let sequence = self.sequence;
                self.sequence += 1;
                Ok(Some(CapturedFrame {
                    frame: grabbed.frame,
                    sequence,
                    captured_at: grabbed.captured_at,
                    captured: grabbed.captured,
                    origin: None,
                }))
            }
            Take::Item(Err(error)) => Err(error),
            Take::Timeout => Err(SourceError::Timeout(timeout)),
            // The thread reports its error before closing; a camera never simply ends.
            Take::Closed => Err(camera_error(self.index, "capture stopped".into())),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl Drop for UvcSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let until = Instant::now() + CLOSE_TIMEOUT;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            if thread.join().is_err() {
                tracing::error!(camera = self.index, "the camera thread panicked");
            }
        } else {
            tracing::warn!(
                camera = self.index,
                "camera still reading after {CLOSE_TIMEOUT:?}; leaving its thread to finish"
            );
        }
    }
}

fn camera_error(index: u32, message: String) -> SourceError {
    SourceError::Camera { index, message }
}

/// Closes the mailbox when the camera thread ends, by return or by panic, so the reader
/// learns at once instead of waiting for a stall timeout.
struct CloseOnExit<'a>(&'a Slot);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The camera thread: opens the camera, reports how that went, then grabs and decodes
/// frames until told to stop or the camera fails.
fn run_camera(
    index: u32,
    wanted: Wanted,
    opened: &SyncSender<Result<CameraFormat, SourceError>>,
    frames: &Slot,
    stop: &AtomicBool,
) {
    let _close = CloseOnExit(frames);
    let mut camera = match open_camera(index, wanted) {
        Ok(camera) => camera,
        Err(error) => {
            // Nobody may be waiting any more (open timed out); nothing else to do then.
            let _ = opened.send(Err(error));
            return;
        }
    };
    if opened.send(Ok(camera.camera_format())).is_err() {
        return;
    }
    let mut bad_in_a_row = 0;
    while !stop.load(Ordering::Relaxed) {
        let buffer = match camera.frame() {
            Ok(buffer) => buffer,
            Err(e) => {
                frames.put(Err(camera_error(index, e.to_string())));
                return;
            }
        };
        let (captured, captured_at) = (Instant::now(), SystemTime::now());
        let decoded = buffer
            .decode_image::<RgbFormat>()
            .map_err(|e| e.to_string())
            .and_then(|image| {
                let (width, height) = image.dimensions();
                Frame::from_rgb8(width, height, image.into_raw()).map_err(|e| e.to_string())
            });
        match decoded {
            Ok(frame) => {
                bad_in_a_row = 0;
                frames.put(Ok(Grabbed {
                    frame,
                    captured_at,
                    captured,
                }));
            }
            Err(reason) if bad_in_a_row < MAX_BAD_FRAMES_IN_A_ROW => {
                bad_in_a_row += 1;
                tracing::debug!(camera = index, "corrupt frame skipped: {reason}");
            }
            Err(reason) => {
                frames.put(Err(SourceError::Frame(format!(
                    "camera {index}: {bad_in_a_row} undecodable frames in a row, last: {reason}"
                ))));
                return;
            }
        }
    }
}

fn open_camera(index: u32, wanted: Wanted) -> Result<Camera, SourceError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| camera_error(index, format!("{what}: {e}"));
    let any_rgb = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
    let mut camera = Camera::new(CameraIndex::Index(index), any_rgb).map_err(|e| {
        camera_error(
            index,
            format!("cannot open it: {e} (cameras found: {})", list_cameras()),
        )
    })?;
    let formats = camera
        .compatible_camera_formats()
        .map_err(|e| fail("cannot list its modes", &e))?;
    let chosen = choose_format(&formats, wanted).ok_or_else(|| {
        camera_error(
            index,
            format!("no mode that can be decoded to RGB among {formats:?}"),
        )
    })?;
    if chosen != camera.camera_format() {
        camera
            .set_camera_requset(RequestedFormat::new::<RgbFormat>(
                RequestedFormatType::Exact(chosen),
            ))
            .map_err(|e| fail(&format!("cannot set mode {chosen}"), &e))?;
    }
    camera
        .open_stream()
        .map_err(|e| fail("cannot start streaming", &e))?;
    tracing::debug!(camera = index, mode = %chosen, "camera streaming");
    Ok(camera)
}

/// The cameras the platform lists, for error messages that say what is there instead.
fn list_cameras() -> String {
    match nokhwa::query(ApiBackend::Auto) {
        Ok(cameras) if cameras.is_empty() => "none".into(),
        Ok(cameras) => cameras
            .iter()
            .map(|c| format!("{} = {}", c.index(), c.human_name()))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The decodable mode closest to `wanted`: nearest size (640x480 when none is asked for),
/// then nearest frame rate (30 fps by default), then the cheapest to decode (raw formats such as
/// YUYV before MJPEG), then the larger size.
pub fn choose_format(formats: &[CameraFormat], wanted: Wanted) -> Option<CameraFormat> {
    let (width, height) = match (wanted.width, wanted.height) {
        (None, None) => (Some(DEFAULT_SIZE.0), Some(DEFAULT_SIZE.1)),
        size => size,
    };
    let fps = wanted.fps.unwrap_or(DEFAULT_FPS);
    let distance = |want: Option<u32>, have: u32| want.map_or(0, |w| w.abs_diff(have));
    let decode_cost = |format: FrameFormat| u8::from(format == FrameFormat::MJPEG);
    formats
        .iter()
        .filter(|f| RgbFormat::FORMATS.contains(&f.format()))
        .min_by_key(|f| {
            (
                distance(width, f.width()) + distance(height, f.height()),
                fps.abs_diff(f.frame_rate()),
                decode_cost(f.format()),
                std::cmp::Reverse((f.width(), f.height())),
            )
        })
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(width: u32, height: u32, format: FrameFormat, fps: u32) -> CameraFormat {
        CameraFormat::new_from(width, height, format, fps)
    }

    fn webcam() -> Vec<CameraFormat> {
        vec![
            mode(1920, 1080, FrameFormat::MJPEG, 30),
            mode(1920, 1080, FrameFormat::YUYV, 5),
            mode(1280, 720, FrameFormat::MJPEG, 30),
            mode(1280, 720, FrameFormat::YUYV, 10),
            mode(640, 480, FrameFormat::MJPEG, 30),
            mode(640, 480, FrameFormat::YUYV, 30),
            mode(640, 480, FrameFormat::YUYV, 15),
            mode(320, 240, FrameFormat::YUYV, 30),
        ]
    }

    #[test]
    fn no_wish_gives_640x480_at_30_fps_in_the_cheapest_format() {
        assert_eq!(
            choose_format(&webcam(), Wanted::default()),
            Some(mode(640, 480, FrameFormat::YUYV, 30))
        );
    }

    #[test]
    fn size_comes_before_frame_rate_and_format() {
        let wanted = Wanted {
            width: Some(1280),
            height: Some(720),
            fps: Some(30),
        };
        assert_eq!(
            choose_format(&webcam(), wanted),
            Some(mode(1280, 720, FrameFormat::MJPEG, 30))
        );
        let wanted = Wanted {
            width: Some(1920),
            height: None,
            fps: Some(5),
        };
        assert_eq!(
            choose_format(&webcam(), wanted),
            Some(mode(1920, 1080, FrameFormat::YUYV, 5))
        );
    }

    #[test]
    fn a_missing_size_falls_back_to_the_nearest() {
        let wanted = Wanted {
            width: Some(800),
            height: Some(600),
            fps: None,
        };
        assert_eq!(
            choose_format(&webcam(), wanted),
            Some(mode(640, 480, FrameFormat::YUYV, 30))
        );
    }

    #[test]
    fn undecodable_modes_are_never_chosen() {
        assert_eq!(choose_format(&[], Wanted::default()), None);
        let infrared = [mode(640, 480, FrameFormat::GRAY, 30)];
        assert_eq!(choose_format(&infrared, Wanted::default()), None);
    }
}
