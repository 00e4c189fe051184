//! `inspecta run` with a display: the operator panel (eframe, glow renderer). The station
//! runs on a worker exactly as it does headless (store, API, metrics); reviews go through
//! the review desk into the same record store the REST API uses.

mod app;
mod commands;
mod desk;
mod events;
mod live;
mod pictures;
mod prefs;
#[cfg(test)]
mod ui_tests;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use inspecta_vision::model::Model;

use app::{Panel, PanelSetup};
use desk::Desk;
use events::{PanelSink, Waker};

use crate::config::{PanelSection, StationConfig};
use crate::service::Service;
use live::LiveWorker;

struct PanelApp {
    panel: Panel,
    // Dropped after the panel: the station stops first, then the desk.
    _live: LiveWorker,
    _desk: Desk,
}

impl eframe::App for PanelApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.panel.ui(ui);
    }
}

pub fn run(config: &StationConfig) -> anyhow::Result<ExitCode> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        bail!("no display (DISPLAY and WAYLAND_DISPLAY are unset): run with --headless");
    }
    if config.store.is_none() {
        bail!("the operator panel keeps its reviews in the record store: add a [store] section");
    }
    let panel_config = config.panel.clone().unwrap_or_default();
    let shift_start = panel_config.shift_start(&jiff::ZonedDateTime::now())?;
    let waker = Waker::default();
    let (events, inbox) = events::channel(waker.clone());
    let sink = PanelSink::new(events.clone());
    let service = crate::api::open(Service::start(config, vec![Box::new(sink)])?, config)?;
    let store = Arc::clone(service.store().context("no record store")?);
    let screenshots = store
        .path()
        .parent()
        .map_or_else(|| "screenshots".into(), |dir| dir.join("screenshots"));
    let settings = service.settings().clone();
    let users = match &panel_config.users {
        Some(path) => Some(Arc::new(crate::users::Users::load(path)?)),
        None => None,
    };
    let setup = PanelSetup {
        station: service.name().to_owned(),
        reasons: panel_config.reasons.clone(),
        history: panel_config.history,
        high_contrast: panel_config.high_contrast,
        shift: shift_start.strftime("%a %H:%M").to_string(),
        screenshots,
        engineer_pin: panel_config.engineer_pin,
        settings: settings.clone(),
        ui_scale: panel_config.ui_scale,
        remembered_scale: prefs::load(&prefs::path(&store)).ui_scale,
        named_users: users.is_some(),
        ask_above: service.asks_above(),
    };
    let candidates = service.candidates().cloned();
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title(format!("Inspecta: {}", setup.station))
            .with_inner_size([1280.0, 800.0])
            .with_fullscreen(panel_config.fullscreen),
        ..Default::default()
    };
    eframe::run_native(
        "inspecta",
        options,
        Box::new(move |cc| {
            waker.set(cc.egui_ctx.clone());
            // SIGTERM/SIGINT close the window like the operator would, so the station
            // stops cleanly and stores the verdicts still in flight.
            let closer = cc.egui_ctx.clone();
            ctrlc::set_handler(move || {
                closer.send_viewport_cmd(egui::ViewportCommand::Close);
                closer.request_repaint();
            })?;
            let (desk, requests) = Desk::start(
                store,
                settings,
                shift_start.timestamp(),
                users,
                candidates,
                events.clone(),
            )?;
            let live = LiveWorker::start(service, events)?;
            Ok(Box::new(PanelApp {
                panel: Panel::new(setup, inbox, requests).fullscreen(panel_config.fullscreen),
                _live: live,
                _desk: desk,
            }))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the operator panel failed: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// "good" first, then the model's defect classes: what an inspector can say a part is.
pub fn review_labels(model: &Model) -> Vec<String> {
    let manifest = model.manifest();
    std::iter::once("good".to_owned())
        .chain(
            manifest
                .labels
                .iter()
                .filter(|l| !manifest.is_good(l))
                .cloned(),
        )
        .collect()
}

impl PanelSection {
    /// The start of the shift `now` falls in: the latest configured shift start at or
    /// before now (today or yesterday); local midnight when no shifts are configured.
    pub fn shift_start(&self, now: &jiff::ZonedDateTime) -> anyhow::Result<jiff::ZonedDateTime> {
        let today = now.date();
        let zone = now.time_zone().clone();
        if self.shifts.is_empty() {
            return today.to_zoned_datetime(zone).context("local midnight");
        }
        let yesterday = today.yesterday().context("date out of range")?;
        let mut latest = None;
        for start in &self.shifts {
            let time: jiff::civil::Time = start
                .parse()
                .with_context(|| format!("[panel] shifts: {start:?} is not HH:MM"))?;
            for day in [yesterday, today] {
                let candidate = day
                    .to_datetime(time)
                    .to_zoned_datetime(zone.clone())
                    .context("shift start")?;
                if candidate <= *now && latest.as_ref().is_none_or(|l| candidate > *l) {
                    latest = Some(candidate);
                }
            }
        }
        latest.context("no shift start before now")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::ZonedDateTime {
        text.parse().expect("a zoned time")
    }

    #[test]
    fn the_shift_is_the_latest_start_before_now() {
        let shifts = PanelSection {
            shifts: vec!["06:00".into(), "14:00".into(), "22:00".into()],
            ..PanelSection::default()
        };
        let start = |now| shifts.shift_start(&at(now)).expect("a shift").datetime();
        assert_eq!(
            start("2026-11-26T15:30[UTC]").to_string(),
            "2026-11-26T14:00:00"
        );
        assert_eq!(
            start("2026-11-26T06:00[UTC]").to_string(),
            "2026-11-26T06:00:00"
        );
        // The night shift began yesterday.
        assert_eq!(
            start("2026-11-26T03:10[UTC]").to_string(),
            "2026-11-25T22:00:00"
        );
        let none = PanelSection::default();
        let midnight = none
            .shift_start(&at("2026-11-26T15:30[UTC]"))
            .expect("midnight");
        assert_eq!(midnight.datetime().to_string(), "2026-11-26T00:00:00");
        let broken = PanelSection {
            shifts: vec!["6 o'clock".into()],
            ..PanelSection::default()
        };
        let err = broken
            .shift_start(&at("2026-11-26T15:30[UTC]"))
            .expect_err("bad time");
        assert!(format!("{err:#}").contains("6 o'clock"), "{err:#}");
    }
}
