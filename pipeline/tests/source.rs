//! Frame sources against real GStreamer pipelines and real image folders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use gstreamer::prelude::*;
use inspecta_pipeline::source::gstreamer::GstSource;
use inspecta_pipeline::source::{FrameSource, SourceError, SourceSpec};

use common::*;

const WAIT: Duration = Duration::from_secs(10);

fn drain(source: &mut dyn FrameSource) -> Vec<inspecta_pipeline::source::CapturedFrame> {
    let mut frames = Vec::new();
    while let Some(frame) = source.next_frame(WAIT).unwrap() {
        frames.push(frame);
    }
    frames
}

#[test]
fn test_pattern_frames_are_packed_despite_row_padding() {
    // 101 RGB pixels = 303 bytes a row; GStreamer pads rows to 304.
    let mut source = GstSource::open(
        "videotestsrc num-buffers=4 pattern=smpte ! video/x-raw,width=101,height=60 ! videoconvert ! appsink name=sink sync=false",
    )
    .unwrap();
    let frames = drain(&mut source);
    // The sink keeps only the newest buffer, so a fast producer may skip some.
    assert!(!frames.is_empty() && frames.len() <= 4);
    let sequences: Vec<u64> = frames.iter().map(|f| f.sequence).collect();
    assert_eq!(sequences, (0..frames.len() as u64).collect::<Vec<_>>());
    let frame = &frames[0].frame;
    assert_eq!((frame.width(), frame.height()), (101, 60));
    // SMPTE bars are vertical: in the upper part every row is the same. A wrong stride would
    // shift each row by one more byte.
    let row = |y: usize| &frame.rgb()[y * 303..(y + 1) * 303];
    for y in 1..30 {
        assert_eq!(row(y), row(0), "row {y} differs");
    }
}

#[test]
fn video_file_plays_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.avi");
    write_clip(&clip, 12);
    let spec = SourceSpec::File {
        path: clip,
        realtime: false,
    };
    let mut source = spec.open().unwrap();
    let frames = drain(source.as_mut());
    assert!(!frames.is_empty());
    assert_eq!(
        (frames[0].frame.width(), frames[0].frame.height()),
        (160, 120)
    );
}

#[test]
fn missing_video_file_is_a_clear_error() {
    let spec = SourceSpec::File {
        path: "/nonexistent/clip.mp4".into(),
        realtime: false,
    };
    let err = match spec.open() {
        Err(e) => e,
        Ok(mut source) => source.next_frame(WAIT).unwrap_err(),
    };
    assert!(matches!(err, SourceError::Stream { .. }), "{err}");
    assert!(err.to_string().contains("nonexistent"), "{err}");
}

#[test]
fn malformed_pipeline_is_refused() {
    let err = GstSource::open("videotestsrc ! no-such-element ! appsink name=sink").unwrap_err();
    assert!(matches!(err, SourceError::Pipeline { .. }), "{err}");
    let err = GstSource::open("videotestsrc ! fakesink").unwrap_err();
    assert!(err.to_string().contains("appsink"), "{err}");
}

#[test]
fn folder_plays_at_the_line_rate_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = images_in(&samples().join("casting/good"));
    for image in good.iter().take(3) {
        std::fs::copy(image, dir.path().join(image.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("zz_broken.jpg"), b"\xFF\xD8 not really").unwrap();
    let spec = SourceSpec::Folder {
        path: dir.path().to_owned(),
        parts_per_second: 20.0,
        repeat: false,
        start_after: None,
    };
    let mut source = spec.open().unwrap();
    let started = Instant::now();
    let mut frames = 0;
    let mut errors = Vec::new();
    loop {
        match source.next_frame(WAIT) {
            Ok(Some(f)) => {
                assert_eq!(f.sequence, frames);
                frames += 1;
            }
            Ok(None) => break,
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert_eq!(frames, 3);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("zz_broken.jpg"), "{errors:?}");
    // Four parts at 20 per second: at least three periods between the first and the last.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn source_specs_parse_from_config_and_reject_unknown_keys() {
    let spec: SourceSpec =
        toml::from_str("kind = \"rtsp\"\nurl = \"rtsp://127.0.0.1:8554/line1\"").unwrap();
    assert_eq!(
        spec,
        SourceSpec::Rtsp {
            url: "rtsp://127.0.0.1:8554/line1".into(),
            latency_ms: 200
        }
    );
    let err = toml::from_str::<SourceSpec>("kind = \"v4l2\"\ndevice = \"/dev/video0\"\nfps = 5")
        .unwrap_err();
    assert!(err.to_string().contains("fps"), "{err}");
}

#[test]
fn closing_a_recording_pipeline_leaves_a_finished_file() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("line.mkv");
    let mut source = GstSource::open(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! tee name=t \
         t. ! queue ! videoconvert ! appsink name=sink \
         t. ! queue ! videoconvert ! jpegenc ! matroskamux ! filesink location=\"{}\"",
        recording.display()
    ))
    .unwrap();
    for _ in 0..15 {
        source
            .next_frame(WAIT)
            .unwrap()
            .expect("a live source does not end");
    }
    let closing = Instant::now();
    drop(source);
    assert!(
        closing.elapsed() < Duration::from_secs(3),
        "{:?}",
        closing.elapsed()
    );
    // Matroska writes the duration (and the index) at end-of-stream: torn down without it,
    // the header says the recording is one frame long.
    let (header, played) = durations(&recording).unwrap();
    assert!(played >= Duration::from_millis(400), "played {played:?}");
    assert!(
        header.abs_diff(played) < Duration::from_millis(100),
        "the header gives {header:?} for a recording of {played:?}"
    );
}

/// The duration in the header of `mkv` and the duration found by playing it to the end.
/// `pushfilesrc` keeps the demuxer from scanning the file for a duration the header lacks.
fn durations(mkv: &Path) -> Result<(Duration, Duration), String> {
    let pipeline = gstreamer::parse::launch(&format!(
        "pushfilesrc location=\"{}\" ! matroskademux ! jpegdec ! fakesink sync=false",
        mkv.display()
    ))
    .map_err(|e| e.to_string())?
    .downcast::<gstreamer::Pipeline>()
    .map_err(|_| "not a pipeline".to_owned())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let wait_for = |kind: gstreamer::MessageType| -> Result<(), String> {
        let message = bus
            .timed_pop_filtered(
                gstreamer::ClockTime::from_seconds(10),
                &[kind, gstreamer::MessageType::Error],
            )
            .ok_or(format!("no {kind:?} within 10 s"))?;
        match message.view() {
            gstreamer::MessageView::Error(err) => {
                Err(format!("{} ({:?})", err.error(), err.debug()))
            }
            _ => Ok(()),
        }
    };
    let duration = || {
        pipeline
            .query_duration::<gstreamer::ClockTime>()
            .map(|d| Duration::from_nanos(d.nseconds()))
            .ok_or("no duration")
    };
    let result = (|| {
        pipeline
            .set_state(gstreamer::State::Paused)
            .map_err(|e| e.to_string())?;
        wait_for(gstreamer::MessageType::AsyncDone)?;
        let header = duration()?;
        pipeline
            .set_state(gstreamer::State::Playing)
            .map_err(|e| e.to_string())?;
        wait_for(gstreamer::MessageType::Eos)?;
        Ok((header, duration()?))
    })();
    let _ = pipeline.set_state(gstreamer::State::Null);
    result
}

#[test]
fn missing_uvc_camera_is_a_clear_error() {
    let spec = SourceSpec::Uvc {
        index: 57,
        width: None,
        height: None,
        fps: None,
    };
    let started = Instant::now();
    let Err(err) = spec.open() else {
        panic!("camera 57 opened");
    };
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, SourceError::Camera { index: 57, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("UVC camera 57: cannot open it"),
        "{err}"
    );
}

#[test]
fn uvc_specs_parse_from_config() {
    let spec: SourceSpec =
        toml::from_str("kind = \"uvc\"\nindex = 0\nwidth = 1280\nheight = 720").unwrap();
    assert_eq!(
        spec,
        SourceSpec::Uvc {
            index: 0,
            width: Some(1280),
            height: Some(720),
            fps: None
        }
    );
    let spec: SourceSpec = toml::from_str("kind = \"uvc\"\nindex = 2\nfps = 15").unwrap();
    assert_eq!(
        spec,
        SourceSpec::Uvc {
            index: 2,
            width: None,
            height: None,
            fps: Some(15)
        }
    );
    let err = toml::from_str::<SourceSpec>("kind = \"uvc\"\nindex = 0\ndevice = \"/dev/video0\"")
        .unwrap_err();
    assert!(err.to_string().contains("device"), "{err}");
    let err = toml::from_str::<SourceSpec>("kind = \"uvc\"").unwrap_err();
    assert!(err.to_string().contains("index"), "{err}");
}
