//! The cameras this machine has, with the modes they offer, through GStreamer's device
//! monitor (V4L2, and libcamera or PipeWire where their plugins are installed): what
//! `inspecta cameras` prints so an engineer can write the `[source]` section.

use gstreamer::prelude::*;
use serde::Serialize;

use super::SourceError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Camera {
    pub name: String,
    /// The V4L2 device node, when the camera has one (`[source] kind = "v4l2"`).
    pub device: Option<String>,
    /// The GStreamer device provider's class, e.g. `Video/Source`.
    pub class: String,
    pub modes: Vec<Mode>,
}

/// One picture format the camera delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mode {
    /// `MJPEG`, or the raw pixel format (`YUY2`, `NV12`, ...).
    pub format: String,
    /// Pixels; None when the camera takes any size in a range.
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// Frame rates offered, as `30/1`; empty when any rate in a range is.
    pub rates: Vec<String>,
}

/// Lists the video sources GStreamer can open now.
pub fn cameras() -> Result<Vec<Camera>, SourceError> {
    gstreamer::init().map_err(|e| SourceError::Init(e.to_string()))?;
    let monitor = gstreamer::DeviceMonitor::new();
    monitor.add_filter(Some("Video/Source"), None);
    monitor
        .start()
        .map_err(|e| SourceError::Init(format!("the device monitor did not start: {e}")))?;
    let cameras = monitor
        .devices()
        .into_iter()
        .map(|d| describe(&d))
        .collect();
    monitor.stop();
    Ok(cameras)
}

fn describe(device: &gstreamer::Device) -> Camera {
    let properties = device.properties();
    let device_node = properties.as_ref().and_then(|p| {
        ["device.path", "api.v4l2.path"]
            .iter()
            .find_map(|key| p.get::<String>(*key).ok())
    });
    Camera {
        name: device.display_name().to_string(),
        device: device_node,
        class: device.device_class().to_string(),
        modes: device.caps().map_or_else(Vec::new, |caps| modes(&caps)),
    }
}

/// The modes in a camera's caps, once each, in the order the camera gives them.
pub fn modes(caps: &gstreamer::CapsRef) -> Vec<Mode> {
    let mut modes: Vec<Mode> = Vec::new();
    for s in caps.iter() {
        let format = match s.name().as_str() {
            "image/jpeg" => "MJPEG".to_owned(),
            "video/x-raw" => s.get::<String>("format").unwrap_or_else(|_| "raw".into()),
            other => other.to_owned(),
        };
        let mode = Mode {
            format,
            width: s.get::<i32>("width").ok(),
            height: s.get::<i32>("height").ok(),
            rates: rates(s),
        };
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    modes
}

fn rates(s: &gstreamer::StructureRef) -> Vec<String> {
    let show = |f: gstreamer::Fraction| format!("{}/{}", f.numer(), f.denom());
    if let Ok(rate) = s.get::<gstreamer::Fraction>("framerate") {
        return vec![show(rate)];
    }
    if let Ok(list) = s.get::<gstreamer::List>("framerate") {
        return list
            .iter()
            .filter_map(|v| v.get::<gstreamer::Fraction>().ok())
            .map(show)
            .collect();
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::str::FromStr as _;

    use super::*;

    /// Caps as a UVC camera's V4L2 driver reports them: MJPEG at two sizes, raw YUY2.
    #[test]
    fn modes_are_read_from_a_cameras_caps() {
        gstreamer::init().unwrap();
        let caps = gstreamer::Caps::from_str(
            "image/jpeg, width=(int)1280, height=(int)720, framerate=(fraction){ 30/1, 15/1 }; \
             image/jpeg, width=(int)640, height=(int)480, framerate=(fraction)30/1; \
             video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, \
             framerate=(fraction)30/1; \
             video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, \
             framerate=(fraction)30/1; \
             video/x-raw, format=(string)NV12, width=(int)[ 16, 4096 ], height=(int)[ 16, 4096 ], \
             framerate=(fraction)[ 0/1, 60/1 ]",
        )
        .unwrap();
        let modes = modes(&caps);
        assert_eq!(modes.len(), 4, "the repeated YUY2 mode once: {modes:?}");
        assert_eq!(
            modes[0],
            Mode {
                format: "MJPEG".into(),
                width: Some(1280),
                height: Some(720),
                rates: vec!["30/1".into(), "15/1".into()],
            }
        );
        assert_eq!(modes[2].format, "YUY2");
        assert_eq!((modes[3].width, modes[3].rates.len()), (None, 0), "a range");
    }

    /// On a machine without cameras (CI) the monitor still starts and lists none or some.
    #[test]
    fn the_device_monitor_runs_here() {
        let cameras = cameras().unwrap();
        for camera in &cameras {
            assert!(!camera.name.is_empty());
        }
    }
}
