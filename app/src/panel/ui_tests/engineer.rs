//! The engineer's side of the panel: thresholds, named users, recipes and model switches.

use super::*;

#[test]
fn only_an_engineer_changes_thresholds() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "gus");
    harness.key_press(egui::Key::T);
    harness.run_steps(2);
    harness.get_by_label_contains("needs the engineer role");
    assert!(harness.query_by_label("Decision thresholds").is_none());

    harness.key_press(egui::Key::E);
    harness.run_steps(2);
    harness.get_by_label("Engineer sign-in");
    harness.get_by_role(Role::PasswordInput).type_text("1234");
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    harness.get_by_label("wrong engineer PIN");

    engineer_sign_in(&mut harness, "4711");
    harness.get_by_label("ENGINEER");

    // From the keyboard: Shift+Right twice moves the threshold 0.1; Esc drops it.
    harness.key_press(egui::Key::T);
    harness.run_steps(2);
    let shift = egui::Modifiers::SHIFT;
    harness.key_press_modifiers(shift, egui::Key::ArrowRight);
    harness.key_press_modifiers(shift, egui::Key::ArrowRight);
    harness.run_steps(1);
    harness.key_press(egui::Key::Escape);
    harness.run_steps(2);
    assert!(harness.query_by_label("Decision thresholds").is_none());
    harness.key_press(egui::Key::T);
    harness.run_steps(2);
    harness.key_press(egui::Key::ArrowDown);
    harness.key_press(egui::Key::ArrowDown);
    harness.key_press(egui::Key::ArrowRight);
    harness.run_steps(1);
    harness.key_press(egui::Key::Enter);
    let change = stored_change(&mut harness, &rig, 1);
    let band_end = rig.model.rule().uncertain_band()[1];
    assert_eq!(change.who, "gus");
    assert!(
        change.after.contains(&format!("{band_end:.2}")),
        "{change:?}"
    );
    assert!(
        (rig.model.rule().defect_threshold() - 0.5).abs() < 1e-6,
        "Esc kept nothing"
    );

    harness.key_press(egui::Key::T);
    harness.run_steps(2);
    harness.get_by_label("Decision thresholds");
    harness
        .get_by_role_and_label(Role::Slider, "uncertain to")
        .set_value_accesskit(0.95);
    harness.run_steps(1);
    harness
        .get_by_role_and_label(Role::Slider, "reject threshold")
        .set_value_accesskit(0.9);
    harness.run_steps(1);
    harness.get_by_label("Apply").click();
    let change = stored_change(&mut harness, &rig, 2);
    let rule = rig.model.rule();
    assert!((rule.defect_threshold() - 0.9).abs() < 1e-6);
    assert!((rule.uncertain_band()[1] - 0.95).abs() < 1e-6);
    assert_eq!(change.who, "gus");
    assert_eq!(change.kind, ChangeKind::Thresholds);
    assert!(change.before.starts_with("reject >= 0.500"), "{change:?}");
    assert!(change.after.starts_with("reject >= 0.900"), "{change:?}");
    harness.get_by_label_contains("reject >= 0.500");
}

/// With a users file, each person signs in with their own PIN, which gives their role; the
/// engineer's name is on the settings change.
#[test]
fn named_users_sign_in_with_their_pin_and_get_their_role() {
    let mut users = Users::default();
    users.set("anna", UserRole::Engineer, "4711").unwrap();
    users.set("bert", UserRole::Operator, "0815").unwrap();
    let (mut harness, rig) = rig_with(false, Some(users), Vec::new());
    harness.run_steps(2);
    let enter = |harness: &mut Harness<'static, Panel>, name: &str, pin: &str, ok: bool| {
        // As at the panel: the name, Enter (on to the PIN), the PIN, Enter.
        if !name.is_empty() {
            harness.get_by_role(Role::TextInput).type_text(name);
            harness.key_press(egui::Key::Enter);
            harness.run_steps(2);
        }
        harness.get_by_role(Role::PasswordInput).type_text(pin);
        harness.key_press(egui::Key::Enter);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            harness.run_steps(1);
            let refused = harness
                .query_by_label("unknown name or wrong PIN")
                .is_some();
            if harness.state().operator().is_some() || (refused && !ok) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no answer to the sign-in of {name:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    enter(&mut harness, "bert", "4711", false);
    assert_eq!(harness.state().operator(), None, "another's PIN");
    harness.get_by_label("unknown name or wrong PIN");
    enter(&mut harness, "", "0815", true);
    assert_eq!(harness.state().operator(), Some("bert"));
    harness.key_press(egui::Key::T);
    harness.run_steps(2);
    harness.get_by_label_contains("needs the engineer role");

    harness.key_press_modifiers(egui::Modifiers::CTRL, egui::Key::L);
    harness.run_steps(2);
    enter(&mut harness, "anna", "4711", true);
    assert_eq!(harness.state().operator(), Some("anna"));
    harness.get_by_label("ENGINEER");
    harness.key_press(egui::Key::T);
    harness.run_steps(2);
    harness.key_press(egui::Key::ArrowRight);
    harness.run_steps(1);
    harness.key_press(egui::Key::Enter);
    let change = stored_change(&mut harness, &rig, 1);
    assert_eq!(change.who, "anna");
}

/// Recipes by name: one for the same product switches at once and brings its threshold;
/// one for another product says so and takes a second Enter.
#[test]
fn an_engineer_switches_recipes_and_another_product_needs_a_second_enter() {
    let recipe = |name: &str, product: &str, model: &str, threshold: Option<f32>| Recipe {
        name: name.into(),
        product: product.into(),
        model: repo().join(model),
        threshold,
        uncertain_band: threshold.map(|t| [t - 0.2, t + 0.1]),
    };
    let recipes = vec![
        recipe("impeller", "pump impeller", "models/casting", None),
        recipe(
            "impeller-strict",
            "pump impeller",
            "models/casting",
            Some(0.8),
        ),
        recipe("strip", "steel strip", "models/xsdd", None),
    ];
    let (mut harness, rig) = rig_with(false, None, recipes);
    sign_in(&mut harness, "ken");
    engineer_sign_in(&mut harness, "4711");

    harness.key_press(egui::Key::M);
    harness.run_steps(2);
    harness.get_by_label("Switch the recipe");
    harness.get_by_label_contains("recipe impeller (pump impeller)");
    harness.key_press(egui::Key::Num2);
    harness.run_steps(1);
    harness.key_press(egui::Key::Enter);
    stored_change(&mut harness, &rig, 2);
    assert!((rig.settings.model().rule().defect_threshold() - 0.8).abs() < 1e-6);

    harness.key_press(egui::Key::M);
    harness.run_steps(2);
    harness.key_press(egui::Key::Num3);
    harness.run_steps(1);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    harness.get_by_label_contains("is for steel strip; the line runs pump impeller");
    assert_eq!(rig.store.changes(10).unwrap().len(), 2, "not switched yet");
    harness.key_press(egui::Key::Enter);
    let change = stored_change(&mut harness, &rig, 3);
    assert_eq!(change.kind, ChangeKind::Model);
    assert_eq!(change.who, "ken");
    assert_ne!(rig.settings.model().manifest().name, "casting-defect");
    assert_eq!(
        rig.settings.recipe().map(|r| r.name.as_str()),
        Some("strip")
    );
}

#[test]
fn an_engineer_switches_the_model_and_the_labels_follow() {
    let (mut harness, rig) = rig(false);
    sign_in(&mut harness, "hal");
    harness.key_press(egui::Key::M);
    harness.run_steps(2);
    harness.get_by_label_contains("needs the engineer role");

    engineer_sign_in(&mut harness, "4711");
    harness.key_press(egui::Key::M);
    harness.run_steps(2);
    harness.get_by_label("Switch the model");
    harness.key_press(egui::Key::Num2);
    harness.run_steps(1);
    harness.key_press(egui::Key::Enter);
    let change = stored_change(&mut harness, &rig, 1);
    assert_eq!(change.kind, ChangeKind::Model);
    assert_eq!(change.who, "hal");
    assert_eq!(change.before, "casting-defect 2.0.0");
    let now = rig.settings.model();
    assert_eq!(
        change.after,
        format!("{} {}", now.manifest().name, now.manifest().version)
    );
    assert_ne!(now.manifest().name, "casting-defect");
    harness.get_by_label_contains(&format!("model {}", now.manifest().name));
    // The override buttons now offer the new model's defect classes.
    live_part(&mut harness, &rig, "good");
    let class = now
        .manifest()
        .labels
        .iter()
        .find(|l| !now.manifest().is_good(l))
        .unwrap();
    harness.get_by_label_contains(class);
}
