#![allow(dead_code, clippy::unwrap_used)]
//! The engine's test helpers (paths, sample models), plus what only live-line tests need.

#[path = "../../../vision/tests/common/mod.rs"]
mod engine;
pub mod judged;

use std::path::Path;

pub use engine::*;

/// Writes a real MJPEG/AVI clip of `frames` test-pattern frames with GStreamer itself.
pub fn write_clip(path: &Path, frames: u32) {
    use inspecta_pipeline::source::FrameSource;
    let mut writer = inspecta_pipeline::source::gstreamer::GstSource::open(&format!(
        "videotestsrc num-buffers={frames} ! video/x-raw,width=160,height=120,framerate=30/1 ! tee name=t \
         t. ! queue ! jpegenc ! avimux ! filesink location={} \
         t. ! queue ! videoconvert ! appsink name=sink sync=false",
        path.display()
    ))
    .unwrap();
    while writer
        .next_frame(std::time::Duration::from_secs(10))
        .unwrap()
        .is_some()
    {}
}
