//! The station behind the panel, on a worker thread of its own: it records every verdict
//! (store, metrics, API, like a headless station) and hands each stored part to the panel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;

use super::desk::{Event, Part, Repaint, display_image, heat_image};
use crate::service::{Service, Step};

#[derive(Debug)]
pub struct LiveWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveWorker {
    pub fn start(
        service: Service,
        events: Sender<Event>,
        repaint: Repaint,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("station".into())
            .spawn(move || run(service, &flag, &events, &repaint))?;
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

fn run(mut service: Service, stop: &AtomicBool, events: &Sender<Event>, repaint: &Repaint) {
    let send = |event| {
        let _ = events.send(event);
        repaint();
    };
    let mut ended = false;
    while !stop.load(Ordering::Relaxed) {
        if ended {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match service.step(Duration::from_millis(100)) {
            Ok(Step::Recorded(verdict, Some(id))) => {
                let Some(store) = service.store() else {
                    continue;
                };
                match store.get(id) {
                    Ok(record) => send(Event::Part(Box::new(Part {
                        record,
                        image: display_image(&verdict.frame),
                        heat_map: verdict.inspection.heat_map.as_ref().map(heat_image),
                    }))),
                    Err(e) => send(Event::Failed(format!("cannot read record {id}: {e}"))),
                }
            }
            Ok(Step::Recorded(_, None) | Step::Idle) => {}
            Ok(Step::Ended) => {
                send(Event::Ended);
                ended = true;
            }
            Err(e) => {
                send(Event::Failed(format!("{e:#}")));
                ended = true;
            }
        }
    }
    if let Err(e) = service.stop() {
        tracing::error!("stopping the station: {e:#}");
    }
}
