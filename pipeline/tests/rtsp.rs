//! A live RTSP camera that dies and comes back: the station must notice, retry, and carry
//! on. The camera is a real GStreamer RTSP server in a child process (this same binary run
//! with `--serve PORT`), killed with SIGKILL like a camera losing power.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gstreamer_rtsp_server::prelude::*;
use inspecta_pipeline::source::SourceSpec;
use inspecta_pipeline::station::status::SourceState;
use inspecta_pipeline::station::{Reconnect, Station};

const MOUNT: &str = "/line1";
const CAMERA: &str = "( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 \
                      ! jpegenc ! rtpjpegpay name=pay0 pt=96 )";
/// A camera whose stream ends cleanly after two seconds (end-of-stream, RTCP BYE), as a
/// camera rebooting or a server being stopped does; each client gets its own stream.
const ENDING_MOUNT: &str = "/ends";
const ENDING_CAMERA: &str = "( videotestsrc is-live=true pattern=ball num-buffers=30 ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 \
                      ! jpegenc ! rtpjpegpay name=pay0 pt=96 )";

fn serve(port: &str) {
    gstreamer::init().unwrap();
    let main_loop = gstreamer::glib::MainLoop::new(None, false);
    let server = gstreamer_rtsp_server::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(port);
    let factory = gstreamer_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(CAMERA);
    factory.set_shared(true);
    let ending = gstreamer_rtsp_server::RTSPMediaFactory::new();
    ending.set_launch(ENDING_CAMERA);
    let mounts = server.mount_points().unwrap();
    mounts.add_factory(MOUNT, factory);
    mounts.add_factory(ENDING_MOUNT, ending);
    let _attached = server.attach(None).unwrap();
    main_loop.run();
}

/// The camera process, killed when dropped so a failing test leaves no server behind.
struct Camera(Child);

impl Camera {
    fn start(port: u16) -> Self {
        Self(
            Command::new(std::env::current_exe().unwrap())
                .args(["--serve", &port.to_string()])
                .spawn()
                .unwrap(),
        )
    }

    /// SIGKILL, like pulling the camera's power.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `count` verdicts, failing after `limit`.
fn verdicts(station: &Station, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut seen = 0;
    while seen < count {
        assert!(
            Instant::now() < deadline,
            "only {seen} verdicts in {limit:?}: {:?}",
            station.status().snapshot()
        );
        if station
            .results()
            .recv_timeout(Duration::from_millis(100))
            .is_ok()
        {
            seen += 1;
        }
    }
}

fn camera_lost_and_back() {
    let port = free_port();
    let mut camera = Camera::start(port);
    let source = SourceSpec::Rtsp {
        url: format!("rtsp://127.0.0.1:{port}{MOUNT}"),
        latency_ms: 50,
    };
    let reconnect = Reconnect {
        initial_ms: 200,
        max_ms: 1_000,
        stall_timeout_ms: 2_000,
    };
    let station = Station::start(&common::load("casting"), source, reconnect).unwrap();
    verdicts(&station, 3, Duration::from_secs(60));
    assert_eq!(station.status().snapshot().source, SourceState::Online);

    camera.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(
        station.status().snapshot().source,
        SourceState::Reconnecting { .. }
    ) {
        assert!(
            Instant::now() < deadline,
            "camera loss not noticed: {:?}",
            station.status().snapshot()
        );
        while station.results().try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(50));
    }

    let _camera = Camera::start(port);
    verdicts(&station, 3, Duration::from_secs(60));
    assert_eq!(station.status().snapshot().source, SourceState::Online);
    let (_pending, status) = station.stop();
    assert!(status.inspected() >= 6, "{status:?}");
}

/// A camera has no end: a stream that ends cleanly is a camera gone, so the station must
/// reconnect and carry on, never report its line as finished.
fn a_stream_that_ends_is_reconnected_not_finished() {
    let port = free_port();
    let _camera = Camera::start(port);
    let source = SourceSpec::Rtsp {
        url: format!("rtsp://127.0.0.1:{port}{ENDING_MOUNT}"),
        latency_ms: 50,
    };
    let reconnect = Reconnect {
        initial_ms: 200,
        max_ms: 1_000,
        // Longer than the whole stream: the end must be noticed as such, not as a stall.
        stall_timeout_ms: 30_000,
    };
    let station = Station::start(&common::load("casting"), source, reconnect).unwrap();
    verdicts(&station, 2, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = station.status().snapshot().source;
        assert_ne!(
            state,
            SourceState::Ended,
            "a camera's stream is never the end"
        );
        if let SourceState::Reconnecting { error, .. } = &state {
            assert!(error.contains("end of stream"), "{error}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream's end not noticed: {state:?}"
        );
        while station.results().try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(50));
    }
    // The camera's next stream is judged again.
    verdicts(&station, 2, Duration::from_secs(60));
    let (_pending, status) = station.stop();
    assert!(status.inspected() >= 4, "{status:?}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, port] = args.as_slice()
        && flag == "--serve"
    {
        serve(port);
        return;
    }
    // `cargo test` passes harness flags such as `--list` or a filter; a listing runs nothing.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    camera_lost_and_back();
    eprintln!("rtsp: camera_lost_and_back passed");
    a_stream_that_ends_is_reconnected_not_finished();
    eprintln!("rtsp: a_stream_that_ends_is_reconnected_not_finished passed");
    println!("2 passed, 0 failed");
}
