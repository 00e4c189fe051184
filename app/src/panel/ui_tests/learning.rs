//! The learning loop at the panel: parts the review policy asks for, and candidate models
//! an engineer promotes.

use super::*;

/// A live defect part the model judged with P(defect) 0.6: hesitation 0.8.
fn hesitant_part(harness: &mut Harness<'static, Panel>, rig: &Rig) -> i64 {
    let mut part = judge_and_store(&rig.store, &rig.model, "defect", false);
    part.record.probabilities = serde_json::json!({"defect": 0.6, "good": 0.4});
    let id = part.record.id;
    assert!(rig.events.send(Event::Part(Box::new(part))));
    harness.run_steps(3);
    id
}

#[test]
fn a_hesitant_part_is_asked_for_until_it_is_reviewed() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "ida");
    let sure = live_part(&mut harness, &rig, "defect");
    assert!(harness.query_by_label_contains("Please review").is_none());
    let asked = hesitant_part(&mut harness, &rig);
    harness.get_by_label_contains("Please review: helps the next model");
    harness.get_by_label("Please review: 1");

    // Away from it and back with U, then confirmed: no longer asked for.
    harness.key_press(egui::Key::ArrowLeft);
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label_contains("helps the next model")
            .is_none()
    );
    harness.key_press(egui::Key::U);
    harness.run_steps(2);
    harness.get_by_label_contains("helps the next model");
    harness.key_press(egui::Key::Enter);
    let review = stored_review(&mut harness, &rig, asked);
    assert_eq!(review.reviewer, "ida");
    assert!(harness.query_by_label_contains("Please review").is_none());
    assert!(rig.store.reviews(sure).unwrap().is_empty());
}

/// A copy of the bundled X-SDD model as candidate `id`, compared against the running
/// casting model and found better.
fn candidate(rig: &Rig, id: &str) -> std::path::PathBuf {
    let dir = rig.candidates.join(id);
    std::fs::create_dir_all(dir.join("compare")).unwrap();
    for entry in std::fs::read_dir(repo().join("models/xsdd")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let running = rig.model.manifest();
    let comparison = serde_json::json!({
        "a": format!("{} {}", running.name, running.version),
        "b": "xsdd-steel 1.0.0",
        "better": "B",
        "reason": "B is better on verdict accuracy: A 0.9000, B 0.9500",
        "mcnemar_p": 0.0123,
        "criteria": [],
    });
    std::fs::write(dir.join("compare/compare.json"), comparison.to_string()).unwrap();
    dir
}

#[test]
fn an_engineer_promotes_a_candidate_with_its_comparison_in_view() {
    let (mut harness, rig) = rig(false);
    let dir = candidate(&rig, "c1");
    sign_in(&mut harness, "eve");
    harness.key_press(egui::Key::P);
    harness.run_steps(2);
    harness.get_by_label_contains("candidate models need the engineer role");

    engineer_sign_in(&mut harness, "4711");
    harness.key_press(egui::Key::P);
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.query_by_label_contains("c1: xsdd-steel").is_none() {
        assert!(Instant::now() < deadline, "the candidates never showed");
        harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.get_by_label_contains("McNemar p 0.012");
    harness.key_press(egui::Key::Enter);
    let change = stored_change(&mut harness, &rig, 1);
    assert_eq!(change.kind, ChangeKind::Model);
    assert_eq!(change.who, "eve");
    assert_eq!(rig.settings.model().manifest().name, "xsdd-steel");
    let promoted = std::fs::read_to_string(dir.join("promoted.json")).unwrap();
    assert!(promoted.contains("\"who\": \"eve\""), "{promoted}");
}
