//! The review desk: a worker thread between the panel and the record store. Reviews are
//! written here, KPIs computed here, settings changed here, so the UI thread never touches
//! SQLite or waits for a model to load.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inspecta_pipeline::frame::Frame;
use inspecta_pipeline::store::{Alarm, Kpis, NewReview, Query, Record, RecordStore, Review};
use inspecta_pipeline::verdict::HeatMap;

use crate::service::Settings;

/// Something for the panel to show.
#[derive(Debug)]
pub enum Event {
    /// A new part, live or from the review queue.
    Part(Box<Part>),
    Kpis(Kpis),
    Reviewed {
        id: i64,
        result: Result<Review, String>,
    },
    /// The source has ended (a folder or file played to its end).
    Ended,
    Failed(String),
    /// The shift's latest process alarm (control charts, `[spc]`).
    Alarm(Alarm),
    /// A threshold change or model switch took effect (what changed), or why not.
    SettingsChanged(Result<String, String>),
}

/// What the panel asks of the desk.
#[derive(Debug)]
pub enum Request {
    Review {
        id: i64,
        review: NewReview,
    },
    SetThresholds {
        who: String,
        threshold: f32,
        band: [f32; 2],
    },
    /// Loads the model (a second or two) here, not on the UI thread.
    SwitchModel {
        who: String,
        path: PathBuf,
    },
    Stop,
}

/// A stored part with its picture.
#[derive(Debug)]
pub struct Part {
    pub record: Record,
    pub image: egui::ColorImage,
    /// The model's heat map, coloured for the overlay, when it gave one.
    pub heat_map: Option<egui::ColorImage>,
}

/// Largest side of the picture kept for the panel: sharp on a 1080p screen, small in memory.
const DISPLAY_SIDE: u32 = 720;
/// Uncertain parts from earlier in the shift loaded into the queue at start.
const QUEUE_BACKLOG: u32 = 200;
const KPI_EVERY: Duration = Duration::from_secs(2);

/// Wakes the UI after an event was sent.
pub type Repaint = Arc<dyn Fn() + Send + Sync>;

pub fn display_image(frame: &Frame) -> egui::ColorImage {
    let (w, h) = (frame.width(), frame.height());
    let rgb = image::RgbImage::from_raw(w, h, frame.rgb().to_vec());
    let scaled = match rgb {
        Some(rgb) if w.max(h) > DISPLAY_SIDE => {
            let scale = DISPLAY_SIDE as f32 / w.max(h) as f32;
            let (nw, nh) = (
                ((w as f32 * scale) as u32).max(1),
                ((h as f32 * scale) as u32).max(1),
            );
            image::imageops::thumbnail(&rgb, nw, nh)
        }
        Some(rgb) => rgb,
        None => return egui::ColorImage::example(),
    };
    let size = [scaled.width() as usize, scaled.height() as usize];
    egui::ColorImage::from_rgb(size, scaled.as_raw())
}

/// The heat map as an overlay: clear where the part looks normal, from yellow to opaque
/// red as a cell nears and passes the defect threshold.
pub fn heat_image(heat: &HeatMap) -> egui::ColorImage {
    let pixels = heat
        .values()
        .iter()
        .map(|v| {
            let v = v.clamp(0.0, 1.0);
            let alpha = ((v - 0.25) / 0.75).clamp(0.0, 1.0) * 200.0;
            let green = (1.0 - v) * 2.0 * 220.0;
            egui::Color32::from_rgba_unmultiplied(
                255,
                green.clamp(0.0, 220.0) as u8,
                0,
                alpha as u8,
            )
        })
        .collect();
    egui::ColorImage::new(heat.size(), pixels)
}

#[derive(Debug)]
pub struct Desk {
    thread: Option<JoinHandle<()>>,
    requests: Sender<Request>,
}

impl Desk {
    /// Starts the desk: it first sends the shift's KPIs and the parts still waiting for
    /// review, then serves review requests.
    pub fn start(
        store: Arc<RecordStore>,
        settings: Settings,
        shift_start: jiff::Timestamp,
        events: Sender<Event>,
        repaint: Repaint,
    ) -> std::io::Result<(Self, Sender<Request>)> {
        let (requests, inbox) = std::sync::mpsc::channel();
        let worker = Worker {
            store,
            settings,
            shift_start,
            events,
            repaint,
        };
        let thread = std::thread::Builder::new()
            .name("review-desk".into())
            .spawn(move || worker.run(&inbox))?;
        Ok((
            Self {
                thread: Some(thread),
                requests: requests.clone(),
            },
            requests,
        ))
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the review desk panicked");
        }
    }
}

fn log_review(id: i64, result: &Result<Review, String>) {
    if let Ok(r) = result {
        tracing::info!(id, reviewer = %r.reviewer, before = %r.before, after = %r.after, "review (panel)");
    } else if let Err(e) = result {
        tracing::warn!(id, "review refused: {e}");
    }
}

struct Worker {
    store: Arc<RecordStore>,
    settings: Settings,
    shift_start: jiff::Timestamp,
    events: Sender<Event>,
    repaint: Repaint,
}

impl Worker {
    fn run(&self, inbox: &Receiver<Request>) {
        self.send_backlog();
        self.send_kpis();
        let mut last_kpis = Instant::now();
        loop {
            match inbox.recv_timeout(KPI_EVERY) {
                Ok(Request::Review { id, review }) => {
                    let result = self.store.review(id, &review).map_err(|e| e.to_string());
                    log_review(id, &result);
                    if !self.send(Event::Reviewed { id, result }) {
                        return;
                    }
                    self.send_kpis();
                    last_kpis = Instant::now();
                }
                Ok(Request::SetThresholds {
                    who,
                    threshold,
                    band,
                }) => {
                    let result = self.settings.set_thresholds(&who, threshold, band);
                    if !self.send(Event::SettingsChanged(result.map_err(|e| format!("{e:#}")))) {
                        return;
                    }
                }
                Ok(Request::SwitchModel { who, path }) => {
                    let result = self.settings.switch_model(&path, &who);
                    if !self.send(Event::SettingsChanged(result.map_err(|e| format!("{e:#}")))) {
                        return;
                    }
                }
                Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Live parts and API reviews change the figures too.
            if last_kpis.elapsed() >= KPI_EVERY {
                if !self.send_kpis() {
                    return;
                }
                last_kpis = Instant::now();
            }
        }
    }

    /// Uncertain parts of this shift nobody has labelled yet, oldest first.
    fn send_backlog(&self) {
        let query = Query {
            verdict: Some("uncertain".into()),
            reviewed: Some(false),
            since: Some(self.shift_start),
            limit: Some(QUEUE_BACKLOG),
            ..Query::default()
        };
        let page = match self.store.list(&query) {
            Ok(page) => page,
            Err(e) => {
                self.send(Event::Failed(format!("cannot load the review queue: {e}")));
                return;
            }
        };
        for record in page.items.into_iter().rev() {
            let image = self
                .store
                .image_path(record.id)
                .ok()
                .flatten()
                .and_then(|path| Frame::open(&path).ok())
                .map_or_else(egui::ColorImage::example, |f| display_image(&f));
            let part = Part {
                record,
                image,
                heat_map: None,
            };
            if !self.send(Event::Part(Box::new(part))) {
                return;
            }
        }
    }

    fn send_kpis(&self) -> bool {
        let sent = match self.store.kpis(self.shift_start) {
            Ok(kpis) => self.send(Event::Kpis(kpis)),
            Err(e) => self.send(Event::Failed(format!("cannot compute KPIs: {e}"))),
        };
        match self.store.recent_alarms(1) {
            Ok(alarms) => match alarms.into_iter().next() {
                Some(alarm) if alarm.raised_at >= self.shift_start => {
                    sent && self.send(Event::Alarm(alarm))
                }
                _ => sent,
            },
            Err(e) => self.send(Event::Failed(format!("cannot read the alarms: {e}"))),
        }
    }

    /// False once the panel is gone.
    fn send(&self, event: Event) -> bool {
        let sent = self.events.send(event).is_ok();
        (self.repaint)();
        sent
    }
}
