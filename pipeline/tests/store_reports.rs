//! What the record store reports from real verdicts: shift KPIs, the settings log, plant
//! link cursors and the reviewed parts that become a data set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::judged::{judged, record};
use inspecta_pipeline::store::{
    ChangeKind, NewChange, NewReview, RecordStore, ReviewAction, StoreConfig, StoreError, Stream,
};
use inspecta_vision::inspection::{UncertainReason, Verdict};

#[test]
fn shift_kpis_count_labels_reviews_and_the_pareto() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let before = jiff::Timestamp::now();
    let mut ids = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        ids.push(store.insert(&record(model, part, i as u64)).unwrap());
    }
    let mut unsure = parts[0].clone();
    unsure.inspection.verdict = Verdict::Uncertain {
        reason: UncertainReason::LowConfidence,
    };
    let unsure_id = store.insert(&record(model, &unsure, 99)).unwrap();
    let review = |id, action, label: Option<&str>| {
        store
            .review(
                id,
                &NewReview {
                    reviewer: "anna".into(),
                    action,
                    label: label.map(str::to_owned),
                    reason: None,
                },
            )
            .unwrap()
    };
    let confirm_uncertain = store.review(
        unsure_id,
        &NewReview {
            reviewer: "anna".into(),
            action: ReviewAction::Confirm,
            label: None,
            reason: None,
        },
    );
    assert!(matches!(confirm_uncertain, Err(StoreError::Invalid(_))));

    let kpis = store.kpis(before).unwrap();
    let model_good = parts
        .iter()
        .filter(|p| p.inspection.verdict == Verdict::Good)
        .count() as u64;
    assert_eq!(kpis.parts, 25);
    assert_eq!(kpis.good, model_good);
    assert_eq!((kpis.uncertain, kpis.awaiting_review), (1, 1));
    assert_eq!(kpis.defects, vec![("defect".to_owned(), 24 - model_good)]);

    // The uncertain part turns out good; one defect call is overridden, one confirmed.
    review(unsure_id, ReviewAction::Override, Some("good"));
    let defect_ids: Vec<i64> = ids
        .iter()
        .zip(parts)
        .filter(|(_, p)| p.inspection.verdict != Verdict::Good)
        .map(|(id, _)| *id)
        .collect();
    review(defect_ids[0], ReviewAction::Override, Some("good"));
    review(defect_ids[1], ReviewAction::Confirm, None);
    let kpis = store.kpis(before).unwrap();
    assert_eq!(kpis.good, model_good + 2);
    assert_eq!(kpis.awaiting_review, 0);
    // Labelling an uncertain part is no override: the model made no call.
    assert_eq!((kpis.reviewed, kpis.overridden), (2, 1));
    assert!((kpis.override_rate().unwrap() - 0.5).abs() < 1e-9);
    assert!((kpis.first_pass_yield().unwrap() - (model_good + 2) as f64 / 25.0).abs() < 1e-9);
    // One of the two reviewed rejects was a good part.
    assert_eq!((kpis.reviewed_defects, kpis.false_rejects), (2, 1));
    assert!((kpis.false_reject_rate().unwrap() - 0.5).abs() < 1e-9);
    assert_eq!(kpis.escape_estimate(), None, "no passed part audited yet");

    // An audit of a passed part finds a defect: an escape the model let through.
    let passed = ids
        .iter()
        .zip(parts)
        .find(|(_, p)| p.inspection.verdict == Verdict::Good)
        .map(|(id, _)| *id)
        .unwrap();
    review(passed, ReviewAction::Override, Some("defect"));
    let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    let (total, hours) = store.kpis_by_hour(before, now).unwrap();
    assert_eq!((total.reviewed_good, total.escapes_found), (1, 1));
    assert!((total.escape_estimate().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(hours.iter().map(|(_, k)| k.parts).sum::<u64>(), 25);
    assert!(
        hours
            .iter()
            .all(|(start, _)| start.as_millisecond() % 3_600_000 == 0)
    );
    assert!(hours.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(store.kpis_by_hour(now, now).unwrap().0.parts, 0);

    let later = store
        .kpis(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1))
        .unwrap();
    assert_eq!(later.parts, 0);
    assert_eq!(later.first_pass_yield(), None);
}

#[test]
fn the_settings_log_keeps_who_changed_what_and_survives_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    // A store written by the first schema (before the settings log existed).
    drop(RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap());
    {
        let conn = rusqlite::Connection::open(dir.path().join("records.sqlite")).unwrap();
        conn.execute_batch(
            "DROP TABLE changes; DROP TABLE forwarded; DROP TABLE alarms;
             ALTER TABLE verdicts DROP COLUMN reason; ALTER TABLE verdicts DROP COLUMN familiarity;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let change = |who: &str, kind, before: &str, after: &str| NewChange {
        who: who.into(),
        kind,
        before: before.into(),
        after: after.into(),
    };
    let first = store
        .log_change(&change(
            "eve",
            ChangeKind::Thresholds,
            "reject >= 0.500",
            "reject >= 0.700",
        ))
        .unwrap();
    store
        .log_change(&change(
            "eve",
            ChangeKind::Model,
            "casting-defect 1.0.0",
            "xsdd-steel 1.0.0",
        ))
        .unwrap();
    drop(store);

    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let changes = store.changes(10).unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1], first, "kept exactly as returned");
    assert_eq!(
        (
            changes[0].kind,
            changes[0].who.as_str(),
            changes[0].after.as_str()
        ),
        (ChangeKind::Model, "eve", "xsdd-steel 1.0.0"),
        "newest first"
    );
    assert_eq!(store.changes(1).unwrap().len(), 1);
}

#[test]
fn a_link_cursor_only_moves_forward_and_the_backlog_comes_oldest_first() {
    let (model, parts) = judged();
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    for (n, part) in parts.iter().take(5).enumerate() {
        store.insert(&record(model, part, n as u64)).unwrap();
    }
    assert_eq!(store.forwarded("mqtt", Stream::Verdicts).unwrap(), 0);
    let backlog: Vec<i64> = store
        .records_after(2, 2)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(backlog, [3, 4]);
    store.set_forwarded("mqtt", Stream::Verdicts, 4).unwrap();
    store.set_forwarded("mqtt", Stream::Verdicts, 2).unwrap();
    assert_eq!(
        store.forwarded("mqtt", Stream::Verdicts).unwrap(),
        4,
        "never back"
    );
    assert_eq!(
        store.forwarded("opcua", Stream::Verdicts).unwrap(),
        0,
        "per link"
    );
    assert_eq!(
        store.forwarded("mqtt", Stream::Reviews).unwrap(),
        0,
        "per stream"
    );

    let review = NewReview {
        reviewer: "kim".into(),
        action: ReviewAction::Confirm,
        label: None,
        reason: None,
    };
    store.review(5, &review).unwrap();
    let reviews = store.reviews_after(0, 10).unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].verdict_id, 5);
}

#[test]
fn reviewed_parts_are_the_reviewed_records_oldest_first_with_their_latest_review() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let good = parts
        .iter()
        .find(|p| p.inspection.verdict == Verdict::Good)
        .unwrap();
    let defect = parts
        .iter()
        .find(|p| matches!(p.inspection.verdict, Verdict::Defect { .. }))
        .unwrap();
    // Five parts an hour apart, on whole milliseconds as the store keeps time.
    let start_ms = jiff::Timestamp::now().as_millisecond() / 1000 * 1000 - 5 * 3_600_000;
    let ms = |n: i64| start_ms + n * 3_600_000;
    let at = |n: i64| jiff::Timestamp::from_millisecond(ms(n)).unwrap();
    let ids: Vec<i64> = [defect, good, defect, good, defect]
        .into_iter()
        .enumerate()
        .map(|(n, part)| {
            let mut new = record(model, part, n as u64);
            new.captured_at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms(n as i64) as u64);
            store.insert(&new).unwrap()
        })
        .collect();
    let review = |id, reviewer: &str, action, label: Option<&str>| {
        store
            .review(
                id,
                &NewReview {
                    reviewer: reviewer.into(),
                    action,
                    label: label.map(str::to_owned),
                    reason: None,
                },
            )
            .unwrap()
    };
    // 0 confirmed; 1 and 4 never reviewed; 2 overridden, then that override confirmed by
    // someone else; 3, a passed part (no image kept), found defective.
    review(ids[0], "anna", ReviewAction::Confirm, None);
    review(ids[2], "bert", ReviewAction::Override, Some("good"));
    let latest = review(ids[2], "carl", ReviewAction::Confirm, None);
    review(ids[3], "anna", ReviewAction::Override, Some("defect"));

    // The first part's image goes: it is still named, so the export can count it as gone.
    let deleted = store.image_path(ids[0]).unwrap().unwrap();
    std::fs::remove_file(&deleted).unwrap();

    let all = store.reviewed_parts(None, None).unwrap();
    let found: Vec<i64> = all.iter().map(|p| p.record.id).collect();
    assert_eq!(
        found,
        [ids[0], ids[2], ids[3]],
        "reviewed only, oldest first"
    );
    for part in &all {
        assert_eq!(part.record, store.get(part.record.id).unwrap());
    }
    assert_eq!(all[0].image.as_deref(), Some(deleted.as_path()));
    assert!(!deleted.exists());
    assert_eq!(all[0].record.label, "defect");

    let relabelled = &all[1].record;
    assert_eq!(
        relabelled.review.as_ref(),
        Some(&latest),
        "the latest review"
    );
    assert_eq!(latest.reviewer, "carl");
    assert_eq!(latest.action, ReviewAction::Confirm);
    assert_eq!(
        (relabelled.verdict.as_str(), relabelled.label.as_str()),
        ("defect", "good")
    );
    assert_eq!(store.reviews(ids[2]).unwrap().len(), 2);
    let kept = all[1].image.as_deref().unwrap();
    assert!(kept.is_file());
    assert_eq!(store.image_path(ids[2]).unwrap().as_deref(), Some(kept));

    assert_eq!(all[2].image, None, "no image kept of a passed part");
    let escape = all[2].record.review.as_ref().unwrap();
    assert_eq!(
        (escape.before.as_str(), escape.after.as_str()),
        ("good", "defect")
    );

    // `since` is inclusive, `until` exclusive, both on capture time.
    let span = |since: Option<i64>, until: Option<i64>| -> Vec<i64> {
        store
            .reviewed_parts(since.map(at), until.map(at))
            .unwrap()
            .iter()
            .map(|p| p.record.id)
            .collect()
    };
    assert_eq!(span(Some(2), None), [ids[2], ids[3]]);
    assert_eq!(span(None, Some(2)), [ids[0]]);
    assert_eq!(span(Some(1), Some(3)), [ids[2]]);
    assert_eq!(
        span(Some(4), None),
        Vec::<i64>::new(),
        "part 4 was never reviewed"
    );
    assert_eq!(span(Some(5), None), Vec::<i64>::new());
}
