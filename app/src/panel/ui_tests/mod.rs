//! The panel driven like an inspector drives it (keys, clicks) through egui_kittest, with a
//! real record store and review desk behind it: every action must land in the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use inspecta_pipeline::station::ModelSwitch;
use inspecta_pipeline::station::status::SourceState;
use inspecta_pipeline::store::{
    Change, ChangeKind, NewAlarm, NewRecord, RecordStore, Review, StoreConfig,
};
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::{HeatMap, UncertainReason, Verdict};
use inspecta_vision::model::{Model, RunnerOptions};

use super::app::{Panel, PanelSetup};
use super::commands::SHORTCUTS;
use super::desk::Desk;
use super::events::{self, Event, Events, LineState, Part, Waker};
use super::pictures::heat_overlay;
use crate::config::Recipe;
use crate::service::Settings;
use crate::service::candidates::Candidates;
use crate::users::{Role as UserRole, Users};

mod engineer;
mod learning;

struct Rig {
    store: Arc<RecordStore>,
    model: Arc<Model>,
    settings: Settings,
    events: Events,
    /// The learning loop's candidates folder the desk reads.
    candidates: std::path::PathBuf,
    _desk: Desk,
    _dir: tempfile::TempDir,
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A panel over a fresh store with the review desk running, operator not signed in.
fn rig(setup_uncertain: bool) -> (Harness<'static, Panel>, Rig) {
    rig_with(setup_uncertain, None, Vec::new())
}

fn rig_with(
    setup_uncertain: bool,
    users: Option<Users>,
    recipes: Vec<Recipe>,
) -> (Harness<'static, Panel>, Rig) {
    let named_users = users.is_some();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap());
    let model =
        Arc::new(Model::load(&repo().join("models/casting"), RunnerOptions::default()).unwrap());
    let shift_start = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5);
    if setup_uncertain {
        judge_and_store(&store, &model, "good", true);
    }
    let (events, inbox) = events::channel(Waker::default());
    let models = ModelSwitch::new(&model);
    let settings = Settings::new(
        models,
        vec![repo().join("models/casting"), repo().join("models/xsdd")],
        recipes,
        1,
        Some(Arc::clone(&store)),
    );
    let (desk, requests) = Desk::start(
        Arc::clone(&store),
        settings.clone(),
        shift_start,
        users.map(Arc::new),
        Some(Candidates::new(
            dir.path().join("candidates"),
            settings.clone(),
            inspecta_pipeline::station::shadow::ShadowSlot::default(),
        )),
        events.clone(),
    )
    .unwrap();
    let setup = PanelSetup {
        station: "kittest".into(),
        reasons: vec!["flash".into(), "dirt".into()],
        history: 8,
        high_contrast: false,
        shift: "06:00".into(),
        screenshots: dir.path().join("screenshots"),
        engineer_pin: (!named_users).then(|| "4711".into()),
        settings: settings.clone(),
        ui_scale: 1.0,
        remembered_scale: None,
        named_users,
        ask_above: Some(0.6),
    };
    let panel = Panel::new(setup, inbox, requests);
    let harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, panel: &mut Panel| panel.ui(ui), panel);
    let rig = Rig {
        store,
        model,
        settings,
        events,
        _desk: desk,
        candidates: dir.path().join("candidates"),
        _dir: dir,
    };
    (harness, rig)
}

/// Judges the first sample of `class` with the real model and stores it; `uncertain`
/// stores it as a part the model left to the operator.
fn judge_and_store(store: &RecordStore, model: &Arc<Model>, class: &str, uncertain: bool) -> Part {
    let dir = repo().join("samples/casting").join(class);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let frame = Frame::open(&files[0]).unwrap();
    let mut inspection = model.session().unwrap().inspect(&frame).unwrap();
    if uncertain {
        inspection.verdict = Verdict::Uncertain {
            reason: UncertainReason::LowConfidence,
        };
    }
    let id = store
        .insert(&NewRecord {
            station: "kittest",
            part_id: None,
            sequence: Some(0),
            origin: None,
            captured_at: SystemTime::now(),
            model: model.manifest(),
            inspection: &inspection,
            latency: None,
            frame: Some(&frame),
        })
        .unwrap();
    Part::new(store.get(id).unwrap(), Some(&frame), None)
}

/// A real part judged by the real model and kept in a fresh store (for the event queue's
/// tests); the store's folder lives as long as the first value.
pub(super) fn stored_part() -> (tempfile::TempDir, Part) {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let model =
        Arc::new(Model::load(&repo().join("models/casting"), RunnerOptions::default()).unwrap());
    let part = judge_and_store(&store, &model, "defect", false);
    (dir, part)
}

fn sign_in(harness: &mut Harness<'static, Panel>, name: &str) {
    harness.run_steps(2);
    harness.get_by_role(Role::TextInput).type_text(name);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(3);
    assert_eq!(harness.state().operator(), Some(name));
}

/// E, the engineer PIN, Enter.
fn engineer_sign_in(harness: &mut Harness<'static, Panel>, pin: &str) {
    harness.key_press(egui::Key::E);
    harness.run_steps(2);
    harness.get_by_role(Role::PasswordInput).type_text(pin);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
}

fn live_part(harness: &mut Harness<'static, Panel>, rig: &Rig, class: &str) -> i64 {
    let part = judge_and_store(&rig.store, &rig.model, class, false);
    let id = part.record.id;
    assert!(rig.events.send(Event::Part(Box::new(part))));
    harness.run_steps(3);
    id
}

/// Steps the UI until the desk has stored a review of `id` (the desk is a real thread).
fn stored_review(harness: &mut Harness<'static, Panel>, rig: &Rig, id: i64) -> Review {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        harness.run_steps(1);
        if let Some(review) = rig.store.reviews(id).unwrap().pop() {
            harness.run_steps(3);
            return review;
        }
        assert!(
            Instant::now() < deadline,
            "no review of part {id} reached the store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Steps the UI until the desk has logged the `nth` settings change; returns it.
fn stored_change(harness: &mut Harness<'static, Panel>, rig: &Rig, nth: u32) -> Change {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        harness.run_steps(1);
        let mut changes = rig.store.changes(nth).unwrap();
        if changes.len() == nth as usize {
            harness.run_steps(3);
            return changes.remove(0);
        }
        assert!(Instant::now() < deadline, "no settings change was logged");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn enter_confirms_the_live_part_in_the_operators_name() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "anna");
    let id = live_part(&mut harness, &rig, "defect");
    harness.get_by_label_contains("DEFECT");
    harness.key_press(egui::Key::Enter);
    let review = stored_review(&mut harness, &rig, id);
    assert_eq!(review.reviewer, "anna");
    assert_eq!(
        (review.before.as_str(), review.after.as_str()),
        ("defect", "defect")
    );
    harness.get_by_label_contains("confirmed by anna");
}

#[test]
fn clicking_a_label_overrides_and_the_banner_follows() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "bert");
    let id = live_part(&mut harness, &rig, "defect");
    harness.get_by_label("1 good").click();
    let review = stored_review(&mut harness, &rig, id);
    assert_eq!(review.after, "good");
    assert_eq!(rig.store.get(id).unwrap().label, "good");
    harness.get_by_label("GOOD");
}

#[test]
fn the_picker_records_the_label_and_the_reason() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "carl");
    let id = live_part(&mut harness, &rig, "good");
    harness.key_press(egui::Key::O);
    harness.run_steps(2);
    harness.get_by_label("Override: the part really is");
    harness
        .get_by_role_and_label(Role::RadioButton, "2 defect")
        .click();
    harness.run_steps(1);
    harness.get_by_label("flash").click();
    harness.run_steps(1);
    harness.get_by_label("Save override").click();
    let review = stored_review(&mut harness, &rig, id);
    assert_eq!(review.after, "defect");
    assert_eq!(review.reason.as_deref(), Some("flash"));
}

/// The issue's own sequence: O, a digit for the label, the start of a reason code, Enter.
/// A busy machine draws seldom, so a fast inspector's keys arrive in one frame: the keys
/// after O still belong to the picker, not to the part view (where 2 would override).
#[test]
fn keys_typed_in_one_frame_after_o_go_to_the_picker() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "cleo");
    let id = live_part(&mut harness, &rig, "good");
    let key = |key| egui::Event::Key {
        key,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: egui::Modifiers::NONE,
    };
    harness.input_mut().events.extend([
        key(egui::Key::O),
        egui::Event::Text("o".into()),
        key(egui::Key::Num2),
        egui::Event::Text("2".into()),
        egui::Event::Text("fla".into()),
        key(egui::Key::Enter),
    ]);
    let review = stored_review(&mut harness, &rig, id);
    assert_eq!(review.after, "defect");
    assert_eq!(review.reason.as_deref(), Some("flash"));
    harness.run_steps(5);
    assert_eq!(
        rig.store.reviews(id).unwrap().len(),
        1,
        "one review, not two"
    );
}

#[test]
fn the_override_picker_is_complete_from_the_keyboard() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "cleo");
    let id = live_part(&mut harness, &rig, "good");
    harness.key_press(egui::Key::O);
    harness.run_steps(2);
    harness.key_press(egui::Key::ArrowDown);
    harness.key_press(egui::Key::ArrowUp);
    harness.run_steps(1);
    harness.get_by_label_contains("Enter saves: good");
    harness.key_press(egui::Key::Num2);
    harness.run_steps(1);
    harness.get_by_role(Role::TextInput).type_text("FLA");
    harness.run_steps(1);
    harness.get_by_label_contains("Enter saves: defect, reason flash");
    harness.key_press(egui::Key::Enter);
    let review = stored_review(&mut harness, &rig, id);
    assert_eq!(review.after, "defect");
    assert_eq!(review.reason.as_deref(), Some("flash"));
    assert!(
        harness
            .query_by_label("Override: the part really is")
            .is_none()
    );

    // Esc leaves the picker without a review.
    let next = live_part(&mut harness, &rig, "good");
    harness.key_press(egui::Key::O);
    harness.run_steps(2);
    harness.key_press(egui::Key::Escape);
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label("Override: the part really is")
            .is_none()
    );
    assert!(rig.store.reviews(next).unwrap().is_empty());
}

#[test]
fn uncertain_parts_wait_in_a_queue_until_labelled() {
    let (mut harness, rig) = rig(true);
    sign_in(&mut harness, "dora");
    harness.get_by_label("Review queue: 1");
    harness.get_by_label("UNCERTAIN");
    let id = rig.store.list(&Default::default()).unwrap().items[0].id;

    // Confirming an uncertain part is refused: it needs a label.
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    harness.get_by_label_contains("needs a label");
    assert!(rig.store.reviews(id).unwrap().is_empty());

    harness.key_press(egui::Key::Num2);
    let review = stored_review(&mut harness, &rig, id);
    assert_eq!(
        (review.before.as_str(), review.after.as_str()),
        ("uncertain", "defect")
    );
    harness.get_by_label("Review queue: 0");
    harness.key_press(egui::Key::U);
    harness.run_steps(2);
    harness.get_by_label("no part is waiting for review");
}

/// The camera's state is in the top bar and, while parts are not inspected, in a banner.
#[test]
fn a_lost_camera_is_a_banner_not_a_green_live() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "otto");
    harness.get_by_label("CONNECTING");
    let lost = LineState {
        source: SourceState::Reconnecting {
            attempt: 3,
            error: "cannot open /dev/video7".into(),
        },
        model_failing: None,
    };
    assert!(rig.events.send(Event::Line(lost)));
    harness.run_steps(2);
    harness.get_by_label("CAMERA LOST: PARTS ARE NOT INSPECTED");
    harness.get_by_label_contains("attempt 3: cannot open /dev/video7");
    harness.get_by_label("NO SOURCE (retry 3)");
    assert!(harness.query_by_label("LIVE").is_none());

    let online = LineState {
        source: SourceState::Online,
        model_failing: None,
    };
    assert!(rig.events.send(Event::Line(online)));
    harness.run_steps(2);
    harness.get_by_label("LIVE");
    assert!(harness.query_by_label_contains("CAMERA LOST").is_none());
}

/// A two-class part reads DEFECT, with its score placed against the threshold and band.
#[test]
fn every_part_shows_its_score_against_the_thresholds() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "pia");
    live_part(&mut harness, &rig, "defect");
    harness.get_by_label("DEFECT");
    let rule = rig.model.rule();
    harness.get_by_label_contains(&format!("reject at {:.2}", rule.defect_threshold()));
}

#[test]
fn no_review_without_a_signed_in_operator() {
    let (mut harness, rig) = rig(false);
    let id = live_part(&mut harness, &rig, "defect");
    harness.get_by_label("Operator sign-in");
    harness.key_press(egui::Key::Enter);
    harness.run_steps(3);
    std::thread::sleep(Duration::from_millis(200));
    harness.run_steps(2);
    assert!(rig.store.reviews(id).unwrap().is_empty());
}

#[test]
fn f1_lists_every_shortcut_of_the_command_table() {
    let (mut harness, _rig) = rig(false);
    sign_in(&mut harness, "emil");
    harness.key_press(egui::Key::F1);
    harness.run_steps(2);
    harness.get_by_label("Keyboard shortcuts");
    for shortcut in SHORTCUTS {
        harness.get_by_label(shortcut.does);
        harness.get_by_label(shortcut.keys);
    }
}

/// Ctrl+Plus grows everything and the station remembers it; Ctrl+0 returns to the config.
#[test]
fn ctrl_plus_makes_the_panel_larger_and_the_station_remembers() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "ulla");
    let remembered = rig.store.path().parent().unwrap().join("panel.toml");
    harness.key_press_modifiers(egui::Modifiers::CTRL, egui::Key::Plus);
    harness.key_press_modifiers(egui::Modifiers::CTRL, egui::Key::Plus);
    harness.run_steps(2);
    harness.get_by_label("size 120 %");
    assert!((harness.ctx.zoom_factor() - 1.2).abs() < 1e-6);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&remembered).is_ok_and(|t| t.contains("ui_scale = 1.2")) {
        assert!(Instant::now() < deadline, "the size was not remembered");
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.key_press_modifiers(egui::Modifiers::CTRL, egui::Key::Num0);
    harness.run_steps(2);
    assert!((harness.ctx.zoom_factor() - 1.0).abs() < 1e-6);
}

#[test]
fn the_kpi_panel_shows_the_shifts_figures() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "fay");
    live_part(&mut harness, &rig, "defect");
    live_part(&mut harness, &rig, "good");
    // The desk recomputes the KPIs every 2 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.query_by_label("50.0 %").is_none() {
        assert!(
            Instant::now() < deadline,
            "first-pass yield never showed 50 %"
        );
        harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(50));
    }
    // The rate says what it is made of: 1 good part of 2.
    harness.get_by_label("1 of 2");
    harness.get_by_label("Defects by class");
}

#[test]
fn a_heat_map_is_laid_over_the_part_and_v_hides_it() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "ida");
    let mut part = judge_and_store(&rig.store, &rig.model, "defect", false);
    // A hot spot in the top-left corner of a 4x4 grid, over the rule's flag level.
    let mut values = vec![0.0; 16];
    values[0] = 1.0;
    values[1] = 0.6;
    part.heat_map = Some(HeatMap::new(4, 4, values).unwrap());
    assert!(rig.events.send(Event::Part(Box::new(part))));
    harness.run_steps(3);
    harness.get_by_label_contains("heat map shown (V hides)");
    let level = rig.model.rule().flag_level();
    harness.get_by_label(&format!("outlined: at or over {level:.2}, where to look"));
    harness.get_by_label("at or over the flag level");
    let overlays = |harness: &Harness<'static, Panel>| {
        harness
            .ctx
            .tex_manager()
            .read()
            .allocated()
            .filter(|(_, meta)| meta.name.starts_with("heat-") && meta.size == [16, 16])
            .count()
    };
    assert_eq!(
        overlays(&harness),
        1,
        "the overlay went to the GPU to be drawn"
    );
    harness.key_press(egui::Key::V);
    harness.run_steps(2);
    harness.get_by_label_contains("heat map hidden (V shows)");
    assert!(
        harness.query_by_label_contains("outlined").is_none(),
        "no legend without the overlay"
    );
    // A part without one says nothing about heat maps.
    live_part(&mut harness, &rig, "good");
    assert!(harness.query_by_label_contains("heat map").is_none());
}

#[test]
fn the_overlay_follows_the_rule_and_outlines_what_is_over_it() {
    let heat = HeatMap::new(3, 1, vec![0.1, 0.45, 0.9]).unwrap();
    let (image, outline) = heat_overlay(&heat, 0.5);
    assert_eq!(image.size, [12, 4]);
    assert_eq!(
        image.pixels[0].a(),
        0,
        "normal cells leave the part visible"
    );
    assert!(!outline.is_empty(), "the cell over 0.5 is outlined");
    assert!(
        outline.iter().flatten().all(|[x, _]| *x >= 0.5),
        "only the right-hand, hot side: {outline:?}"
    );
    let (_, nothing) = heat_overlay(&heat, 0.95);
    assert!(nothing.is_empty(), "nothing over a higher flag level");
    assert!(
        HeatMap::new(3, 2, vec![0.0; 5]).is_none(),
        "a grid it does not fill"
    );
}

#[test]
fn a_process_alarm_of_the_shift_shows_in_the_top_bar() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "jo");
    assert!(harness.query_by_label_contains("PROCESS ALARM").is_none());
    rig.store
        .raise(&NewAlarm {
            chart: "all".into(),
            rule: "eight_on_one_side".into(),
            subgroup: 27,
            proportion: 0.3,
            centre: 0.1,
            upper: 0.227,
            message: "all: 8 subgroups in a row on one side of the centre line".into(),
        })
        .unwrap();
    // The desk looks at the store every 2 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.query_by_label_contains("PROCESS ALARM").is_none() {
        assert!(Instant::now() < deadline, "the alarm never showed");
        harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(50));
    }
    harness.get_by_label_contains("8 subgroups in a row");
}
