//! GStreamer sources: a pipeline that ends in an `appsink` named `sink`, which hands us
//! RGB frames. The sink keeps only the newest buffer (`max-buffers=1`, `drop=true`), so a
//! camera faster than inference never builds a backlog here. Closing sends end-of-stream
//! first, so pipelines that also record (`tee ! ... ! mux ! filesink`) leave a finished file.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use gstreamer::prelude::*;
use gstreamer_app::AppSink;
use gstreamer_video::{VideoFormat, VideoFrameExt, VideoFrameRef, VideoInfo};

use super::{CapturedFrame, FrameSource, SourceError, SourceSpec};
use inspecta_vision::frame::Frame;

const SINK_NAME: &str = "sink";
/// How long closing waits for end-of-stream to reach every sink: enough for muxers to write
/// their index, short enough that a stuck pipeline cannot hold up a reconnect for long.
const EOS_TIMEOUT: Duration = Duration::from_secs(2);

/// The pipeline text for a spec; `None` for sources GStreamer does not serve.
pub fn pipeline_description(spec: &SourceSpec) -> Option<String> {
    let sink = format!("videoconvert ! appsink name={SINK_NAME}");
    Some(match spec {
        SourceSpec::Pipeline { pipeline } if pipeline.contains("appsink") => pipeline.clone(),
        SourceSpec::Pipeline { pipeline } => format!("{pipeline} ! {sink}"),
        SourceSpec::V4l2 { device } => format!("v4l2src device={} ! {sink}", quote_path(device)),
        SourceSpec::Rtsp { url, latency_ms } => {
            format!(
                "rtspsrc location={} latency={latency_ms} ! decodebin ! {sink}",
                quote(url)
            )
        }
        SourceSpec::File { path, realtime } => {
            format!(
                "filesrc location={} ! decodebin ! {sink} sync={realtime}",
                quote_path(path)
            )
        }
        SourceSpec::TestPattern {
            pattern,
            width,
            height,
            fps,
        } => format!(
            "videotestsrc is-live=true pattern={} ! video/x-raw,width={width},height={height},framerate={fps}/1 ! {sink}",
            quote(pattern)
        ),
        SourceSpec::Folder { .. } | SourceSpec::Uvc { .. } => return None,
    })
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

#[derive(Debug)]
pub struct GstSource {
    description: String,
    pipeline: gstreamer::Pipeline,
    sink: AppSink,
    sequence: u64,
    /// Set once the pipeline runs: only then can end-of-stream flow through it.
    playing: bool,
    /// End-of-stream reached every sink (read off the bus, which forgets it afterwards).
    ended: bool,
    /// The pipeline posted an error; its streaming threads have stopped.
    failed: bool,
    /// End-of-stream is an error, not the end ([`GstSource::without_end`]).
    endless: bool,
}

impl GstSource {
    /// Parses and starts `description`, which must hold an `appsink name=sink`.
    pub fn open(description: &str) -> Result<Self, SourceError> {
        gstreamer::init().map_err(|e| SourceError::Init(e.to_string()))?;
        let invalid = |reason: String| SourceError::Pipeline {
            pipeline: description.to_owned(),
            reason,
        };
        let pipeline = gstreamer::parse::launch(description)
            .map_err(|e| invalid(e.to_string()))?
            .downcast::<gstreamer::Pipeline>()
            .map_err(|_| invalid("not a pipeline of several elements".into()))?;
        let sink = pipeline
            .by_name(SINK_NAME)
            .and_then(|e| e.downcast::<AppSink>().ok())
            .ok_or_else(|| invalid(format!("no appsink named {SINK_NAME:?}")))?;
        sink.set_caps(Some(
            &gstreamer_video::VideoCapsBuilder::new()
                .format(VideoFormat::Rgb)
                .build(),
        ));
        sink.set_max_buffers(1);
        sink.set_drop(true);
        let mut source = Self {
            description: description.to_owned(),
            pipeline,
            sink,
            sequence: 0,
            playing: false,
            ended: false,
            failed: false,
            endless: false,
        };
        if source
            .pipeline
            .set_state(gstreamer::State::Playing)
            .is_err()
        {
            // The bus says why (missing file, unknown device...).
            return Err(source
                .bus_error()
                .unwrap_or_else(|| invalid("cannot start".into())));
        }
        source.playing = true;
        Ok(source)
    }

    /// For cameras and streams: a server that stops or a camera unplugged may end the stream
    /// cleanly, and that must read as a lost source (reconnected), never as the line's end.
    #[must_use]
    pub fn without_end(mut self) -> Self {
        self.endless = true;
        self
    }

    /// The first error message waiting on the bus, if any. Notes end-of-stream on the way,
    /// as popping discards every message it passes.
    fn bus_error(&mut self) -> Option<SourceError> {
        let bus = self.pipeline.bus()?;
        while let Some(message) =
            bus.pop_filtered(&[gstreamer::MessageType::Error, gstreamer::MessageType::Eos])
        {
            match message.view() {
                gstreamer::MessageView::Error(err) => {
                    self.failed = true;
                    return Some(stream_error(err));
                }
                gstreamer::MessageView::Eos(_) => self.ended = true,
                _ => {}
            }
        }
        None
    }

    /// Sends end-of-stream and waits, up to [`EOS_TIMEOUT`], until every sink has it, so
    /// that muxers finish their files before the pipeline is torn down.
    fn finish(&mut self) {
        if !self.playing || self.failed || self.ended {
            return;
        }
        let Some(bus) = self.pipeline.bus() else {
            return;
        };
        if !self.pipeline.send_event(gstreamer::event::Eos::new()) {
            tracing::debug!(pipeline = %self.description, "end-of-stream not accepted");
        }
        let until = Instant::now() + EOS_TIMEOUT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let wait = gstreamer::ClockTime::from_nseconds(
                u64::try_from(left.as_nanos()).unwrap_or(u64::MAX),
            );
            let Some(message) = bus.timed_pop_filtered(
                wait,
                &[gstreamer::MessageType::Eos, gstreamer::MessageType::Error],
            ) else {
                tracing::warn!(
                    pipeline = %self.description,
                    "no end-of-stream within {EOS_TIMEOUT:?}; recordings may be unfinished"
                );
                return;
            };
            match message.view() {
                gstreamer::MessageView::Eos(_) => return,
                gstreamer::MessageView::Error(err) => {
                    let error = stream_error(err);
                    tracing::warn!(pipeline = %self.description, "while closing: {error}");
                    return;
                }
                _ => {}
            }
        }
    }

    fn convert(&mut self, sample: &gstreamer::Sample) -> Result<CapturedFrame, SourceError> {
        let bad = |what: &str| SourceError::Frame(what.to_owned());
        let caps = sample.caps().ok_or_else(|| bad("sample without caps"))?;
        let info = VideoInfo::from_caps(caps).map_err(|e| bad(&e.to_string()))?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| bad("sample without buffer"))?;
        let video = VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| bad(&e.to_string()))?;
        let (width, height) = (video.width(), video.height());
        let stride =
            usize::try_from(video.plane_stride()[0]).map_err(|_| bad("negative stride"))?;
        let data = video.plane_data(0).map_err(|e| bad(&e.to_string()))?;
        let row = width as usize * 3;
        if stride < row || data.len() < stride * (height as usize - 1) + row {
            return Err(bad("buffer smaller than its caps"));
        }
        // Rows are padded to `stride`; frames downstream are packed.
        let mut rgb = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            rgb.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        let frame = Frame::from_rgb8(width, height, rgb).map_err(|e| bad(&e.to_string()))?;
        let sequence = self.sequence;
        self.sequence += 1;
        Ok(CapturedFrame {
            frame,
            sequence,
            captured_at: SystemTime::now(),
            captured: Instant::now(),
            origin: None,
        })
    }
}

fn stream_error(err: &gstreamer::message::Error) -> SourceError {
    SourceError::Stream {
        element: err
            .src()
            .map_or_else(|| "pipeline".into(), |s| s.name().to_string()),
        message: match err.debug() {
            Some(debug) => format!("{} ({debug})", err.error()),
            None => err.error().to_string(),
        },
    }
}

impl FrameSource for GstSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedFrame>, SourceError> {
        if let Some(error) = self.bus_error() {
            return Err(error);
        }
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        match self
            .sink
            .try_pull_sample(gstreamer::ClockTime::from_nseconds(nanos))
        {
            Some(sample) => self.convert(&sample).map(Some),
            None if self.sink.is_eos() && self.endless => Err(SourceError::Lost),
            None if self.sink.is_eos() => Ok(None),
            None => Err(self.bus_error().unwrap_or(SourceError::Timeout(timeout))),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        self.finish();
        // Releases the camera or connection; an error here has nowhere useful to go.
        let _ = self.pipeline.set_state(gstreamer::State::Null);
    }
}
