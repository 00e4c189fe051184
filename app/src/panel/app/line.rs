//! The line's state where an inspector cannot miss it: a word in the top bar, and a banner
//! over the part while the camera is not delivering or the model cannot judge.

use egui::{Color32, RichText, Ui};
use inspecta_pipeline::station::status::SourceState;

use crate::panel::events::LineState;

const AMBER: Color32 = Color32::from_rgb(255, 170, 0);
const RED: Color32 = Color32::from_rgb(200, 0, 0);

/// The top bar's word for the line.
pub(super) fn mode(line: &LineState, paused: bool) -> RichText {
    let text = match (&line.source, paused) {
        (_, true) => RichText::new("PAUSED").color(Color32::YELLOW),
        (SourceState::Online, false) if line.model_failing.is_some() => {
            RichText::new("MODEL FAILING").color(Color32::LIGHT_RED)
        }
        (SourceState::Online, false) => RichText::new("LIVE").color(Color32::LIGHT_GREEN),
        (SourceState::Connecting, false) => RichText::new("CONNECTING").color(AMBER),
        (SourceState::Reconnecting { attempt, .. }, false) => {
            RichText::new(format!("NO SOURCE (retry {attempt})")).color(Color32::LIGHT_RED)
        }
        (SourceState::Ended, false) => RichText::new("SOURCE ENDED"),
    };
    text.strong()
}

/// Headline, detail and colour of the banner, or None while parts flow and are judged.
fn banner(line: &LineState) -> Option<(String, Option<String>, Color32)> {
    match &line.source {
        SourceState::Connecting => Some((
            "CONNECTING TO THE CAMERA...".into(),
            Some("no frame yet; parts are not being inspected".into()),
            AMBER,
        )),
        SourceState::Reconnecting { attempt, error } => Some((
            "CAMERA LOST: PARTS ARE NOT INSPECTED".into(),
            Some(format!("reconnecting, attempt {attempt}: {error}")),
            RED,
        )),
        SourceState::Ended => Some((
            "SOURCE ENDED".into(),
            Some("every part from it is judged and stored; no new parts will come".into()),
            Color32::from_gray(90),
        )),
        SourceState::Online => line.model_failing.as_ref().map(|why| {
            (
                "MODEL CANNOT JUDGE THE PARTS".into(),
                Some(why.clone()),
                RED,
            )
        }),
    }
}

/// Draws the banner across the whole width when the line needs attention.
pub(super) fn line_banner(ui: &mut Ui, line: &LineState) {
    let Some((headline, detail, colour)) = banner(line) else {
        return;
    };
    egui::Frame::new()
        .fill(colour)
        .inner_margin(10.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.vertical_centered(|ui| {
                ui.label(
                    RichText::new(headline)
                        .size(40.0)
                        .strong()
                        .color(Color32::WHITE),
                );
                if let Some(detail) = detail {
                    ui.label(RichText::new(detail).size(20.0).color(Color32::WHITE));
                }
            });
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_line_that_delivers_and_judges_has_no_banner() {
        let online = LineState {
            source: SourceState::Online,
            model_failing: None,
        };
        assert!(banner(&online).is_none());
        for source in [
            SourceState::Connecting,
            SourceState::Reconnecting {
                attempt: 3,
                error: "no such device".into(),
            },
            SourceState::Ended,
        ] {
            let line = LineState {
                source,
                model_failing: None,
            };
            assert!(banner(&line).is_some(), "{line:?}");
        }
        let failing = LineState {
            model_failing: Some("inference failed".into()),
            ..online
        };
        assert!(banner(&failing).is_some());
    }
}
