//! The station behind the panel, on a worker thread of its own: it drives the service
//! exactly as a headless station does (store, sinks, API). Parts reach the panel through
//! the service's panel sink; this reports the line's state (source, model) when it changes,
//! and the station's failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::events::{Event, Events, LineState};
use crate::error_text::describe;
use crate::service::{Service, Step};

#[derive(Debug)]
pub struct LiveWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveWorker {
    pub fn start(service: Service, events: Events) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("station".into())
            .spawn(move || run(service, &flag, &events))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LiveWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the station worker panicked");
        }
    }
}

fn run(mut service: Service, stop: &AtomicBool, events: &Events) {
    let status = Arc::clone(&service.door_view().handles.status);
    let mut shown = None;
    let mut ended = false;
    while !stop.load(Ordering::Relaxed) {
        let line = LineState {
            source: status.source(),
            model_failing: status.model_failing(),
        };
        // Offered, not sent: a full queue means the panel is not drawing; the next turn
        // offers it again.
        if shown.as_ref() != Some(&line) && events.offer(Event::Line(line.clone())) {
            shown = Some(line);
        }
        if ended {
            service.flush();
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match service.step(Duration::from_millis(100)) {
            Ok(Step::Recorded | Step::Idle) => {}
            Ok(Step::Ended) => ended = true,
            Err(e) => {
                events.send(Event::Failed(describe(&e)));
                ended = true;
            }
        }
    }
    if let Err(e) = service.stop() {
        tracing::error!("stopping the station: {}", describe(&e));
    }
}
