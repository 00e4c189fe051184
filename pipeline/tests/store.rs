//! The record store with real verdicts from the bundled model on sample parts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use inspecta_pipeline::frame::Frame;
use inspecta_pipeline::model::{Inspection, Model};
use inspecta_pipeline::store::{
    ChangeKind, ImagePolicy, NewChange, NewRecord, NewReview, Query, RecordStore, ReviewAction,
    StoreConfig, StoreError, Stream,
};
use inspecta_pipeline::verdict::Verdict;

#[derive(Clone)]
struct Part {
    frame: Frame,
    inspection: Inspection,
    origin: String,
}

/// Every sample casting part, judged once by the bundled model and shared by the tests.
fn judged() -> &'static (Arc<Model>, Vec<Part>) {
    static JUDGED: OnceLock<(Arc<Model>, Vec<Part>)> = OnceLock::new();
    JUDGED.get_or_init(|| {
        let model = common::load("casting");
        let parts = judge(&model);
        (model, parts)
    })
}

fn judge(model: &Arc<Model>) -> Vec<Part> {
    let mut session = model.session().unwrap();
    ["good", "defect"]
        .iter()
        .flat_map(|class| common::images_in(&common::samples().join("casting").join(class)))
        .map(|path| {
            let frame = Frame::open(&path).unwrap();
            let inspection = session.inspect(&frame).unwrap();
            Part {
                frame,
                inspection,
                origin: path.display().to_string(),
            }
        })
        .collect()
}

fn record<'a>(model: &'a Model, part: &'a Part, sequence: u64) -> NewRecord<'a> {
    NewRecord {
        station: "test-station",
        part_id: None,
        sequence: Some(sequence),
        origin: Some(&part.origin),
        captured_at: SystemTime::now(),
        model: model.manifest(),
        inspection: &part.inspection,
        latency: Some(Duration::from_millis(25)),
        frame: Some(&part.frame),
    }
}

fn images_on_disk(dir: &Path) -> usize {
    let images = dir.join("images");
    std::fs::read_dir(images)
        .map(|days| {
            days.flatten()
                .map(|d| std::fs::read_dir(d.path()).map_or(0, Iterator::count))
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn verdicts_round_trip_with_images_of_non_good_parts_only() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let ids: Vec<i64> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| store.insert(&record(model, p, i as u64)).unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert_eq!(store.count().unwrap(), parts.len() as u64);

    let not_good = parts
        .iter()
        .filter(|p| p.inspection.verdict != Verdict::Good)
        .count();
    assert!(not_good >= 10, "the samples hold defects: {not_good}");
    assert_eq!(images_on_disk(dir.path()), not_good);

    for (id, part) in ids.iter().zip(parts) {
        let r = store.get(*id).unwrap();
        assert_eq!(r.station, "test-station");
        assert_eq!(r.origin.as_deref(), Some(part.origin.as_str()));
        assert_eq!(r.model.name, model.manifest().name);
        assert_eq!(r.label, part.inspection.verdict.name());
        let defect_score = f64::from(part.inspection.scores.defect_score);
        assert!((r.defect_score - defect_score).abs() < 1e-6);
        assert_eq!(r.probabilities.as_object().unwrap().len(), 2);
        assert_eq!(r.timings.latency_ms, Some(25.0));
        let image = store.image_path(*id).unwrap();
        assert_eq!(image.is_some(), part.inspection.verdict != Verdict::Good);
        assert_eq!(r.has_image, image.is_some());
        if let Some(path) = image {
            // The kept image is a real JPEG of the part as it was inspected.
            let kept = Frame::open(&path).unwrap();
            assert_eq!(
                (kept.width(), kept.height()),
                (part.frame.width(), part.frame.height())
            );
        }
    }
}

#[test]
fn listing_filters_and_pages_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    for (i, part) in parts.iter().enumerate() {
        let part_id = format!("P-{i:03}");
        let mut new = record(model, part, i as u64);
        new.part_id = Some(&part_id);
        store.insert(&new).unwrap();
    }
    let mut seen = Vec::new();
    let mut query = Query {
        limit: Some(5),
        ..Query::default()
    };
    loop {
        let page = store.list(&query).unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(page.items.iter().map(|r| r.id));
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), parts.len());
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    let defects = store
        .list(&Query {
            verdict: Some("defect".into()),
            limit: Some(500),
            ..Query::default()
        })
        .unwrap();
    let expected = parts
        .iter()
        .filter(|p| matches!(p.inspection.verdict, Verdict::Defect { .. }))
        .count();
    assert_eq!(defects.items.len(), expected);
    assert!(defects.items.iter().all(|r| r.verdict == "defect"));

    let one = store
        .list(&Query {
            part_id: Some("P-007".into()),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].sequence, Some(7));

    let future = store
        .list(&Query {
            since: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)),
            ..Query::default()
        })
        .unwrap();
    assert!(future.items.is_empty());
}

#[test]
fn reviews_keep_who_what_and_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let defect = parts
        .iter()
        .find(|p| matches!(p.inspection.verdict, Verdict::Defect { .. }))
        .unwrap();
    let id = store.insert(&record(model, defect, 0)).unwrap();
    let other = store.insert(&record(model, defect, 1)).unwrap();

    let confirm = NewReview {
        reviewer: "anna".into(),
        action: ReviewAction::Confirm,
        label: None,
        reason: None,
    };
    let first = store.review(id, &confirm).unwrap();
    assert_eq!(
        (first.before.as_str(), first.after.as_str()),
        ("defect", "defect")
    );

    let missing_label = NewReview {
        action: ReviewAction::Override,
        ..confirm.clone()
    };
    assert!(matches!(
        store.review(id, &missing_label),
        Err(StoreError::Invalid(_))
    ));
    let nobody = NewReview {
        reviewer: "  ".into(),
        ..confirm.clone()
    };
    assert!(matches!(
        store.review(id, &nobody),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.review(9999, &confirm),
        Err(StoreError::NotFound(9999))
    ));

    let same = NewReview {
        action: ReviewAction::Override,
        label: Some("defect".into()),
        ..confirm
    };
    let err = store.review(id, &same).unwrap_err().to_string();
    assert!(err.contains("confirm it instead"), "{err}");

    let overridden = store
        .review(
            id,
            &NewReview {
                reviewer: "bert".into(),
                action: ReviewAction::Override,
                label: Some("good".into()),
                reason: Some("flash, not a defect".into()),
            },
        )
        .unwrap();
    assert_eq!(overridden.before, "defect");
    assert_eq!(overridden.after, "good");

    let r = store.get(id).unwrap();
    assert_eq!(r.label, "good");
    assert_eq!(r.verdict, "defect", "the model's verdict is kept as it was");
    let latest = r.review.unwrap();
    assert_eq!(latest.reviewer, "bert");
    assert_eq!(latest.reason.as_deref(), Some("flash, not a defect"));
    let trail = store.reviews(id).unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].reviewer, "anna");

    let reviewed = store
        .list(&Query {
            reviewed: Some(true),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(
        reviewed.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        [id]
    );
    let open = store
        .list(&Query {
            reviewed: Some(false),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(open.items.iter().map(|r| r.id).collect::<Vec<_>>(), [other]);
}

#[test]
fn records_survive_reopening_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let config = StoreConfig::in_dir(dir.path());
    let last = {
        let store = RecordStore::open(&config).unwrap();
        store.insert(&record(model, &parts[0], 0)).unwrap();
        store.insert(&record(model, &parts[1], 1)).unwrap()
    };
    // Delete the newest record behind the store's back: its id must still not come back.
    let conn = rusqlite::Connection::open(dir.path().join("records.sqlite")).unwrap();
    conn.execute("DELETE FROM verdicts WHERE id = ?1", [last])
        .unwrap();
    drop(conn);
    let store = RecordStore::open(&config).unwrap();
    assert_eq!(store.count().unwrap(), 1);
    let next = store.insert(&record(model, &parts[2], 2)).unwrap();
    assert!(next > last, "{next} > {last}");
}

#[test]
fn retention_deletes_oldest_images_first_and_keeps_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let defects: Vec<&Part> = parts
        .iter()
        .filter(|p| p.inspection.verdict != Verdict::Good)
        .take(8)
        .collect();
    // Room for about three of these images.
    let mean_size = {
        let sizing = tempfile::tempdir().unwrap();
        let store = RecordStore::open(&StoreConfig::in_dir(sizing.path())).unwrap();
        for (i, p) in defects.iter().enumerate() {
            store.insert(&record(model, p, i as u64)).unwrap();
        }
        store.image_bytes() / defects.len() as u64
    };
    let limit = mean_size * 7 / 2;
    let config = StoreConfig {
        max_image_bytes: limit,
        ..StoreConfig::in_dir(dir.path())
    };
    let store = RecordStore::open(&config).unwrap();
    let ids: Vec<i64> = defects
        .iter()
        .enumerate()
        .map(|(i, p)| store.insert(&record(model, p, i as u64)).unwrap())
        .collect();
    assert!(
        store.image_bytes() <= limit,
        "{} > {limit}",
        store.image_bytes()
    );
    let kept: Vec<bool> = ids
        .iter()
        .map(|id| store.image_path(*id).unwrap().is_some())
        .collect();
    assert!(kept.last().copied().unwrap(), "the newest image is kept");
    assert!(!kept[0], "the oldest image is gone");
    let first_kept = kept.iter().position(|k| *k).unwrap();
    assert!(
        kept[first_kept..].iter().all(|k| *k),
        "oldest go first: {kept:?}"
    );
    assert_eq!(
        images_on_disk(dir.path()),
        kept.iter().filter(|k| **k).count()
    );
    assert_eq!(store.count().unwrap(), ids.len() as u64, "records stay");
    assert!(!store.get(ids[0]).unwrap().has_image);
}

#[test]
fn retention_deletes_images_older_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let defect = parts
        .iter()
        .find(|p| p.inspection.verdict != Verdict::Good)
        .unwrap();
    let config = StoreConfig {
        max_image_days: 30,
        ..StoreConfig::in_dir(dir.path())
    };
    let (old, recent) = {
        let store = RecordStore::open(&config).unwrap();
        let mut old = record(model, defect, 0);
        old.captured_at = SystemTime::now() - Duration::from_secs(40 * 86_400);
        (
            store.insert(&old).unwrap(),
            store.insert(&record(model, defect, 1)).unwrap(),
        )
    };
    assert_eq!(images_on_disk(dir.path()), 2);
    // Opening the store applies retention, as a restarted station does.
    let store = RecordStore::open(&config).unwrap();
    assert!(store.image_path(old).unwrap().is_none());
    assert!(store.image_path(recent).unwrap().is_some());
    assert_eq!(images_on_disk(dir.path()), 1);
}

#[test]
fn images_policy_none_and_all() {
    let (model, parts) = judged();
    for (policy, expected) in [(ImagePolicy::None, 0), (ImagePolicy::All, parts.len())] {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            images: policy,
            ..StoreConfig::in_dir(dir.path())
        };
        let store = RecordStore::open(&config).unwrap();
        for (i, part) in parts.iter().enumerate() {
            store.insert(&record(model, part, i as u64)).unwrap();
        }
        assert_eq!(images_on_disk(dir.path()), expected, "{policy:?}");
    }
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("records.sqlite"),
        "these are not the records you are looking for\n".repeat(200),
    )
    .unwrap();
    let err = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("records.sqlite"), "{message}");
    assert!(message.contains("not a database"), "{message}");
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("records.sqlite")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn an_uncertain_part_is_stored_with_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let mut part = parts[0].clone();
    part.inspection.verdict = Verdict::Uncertain;
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let id = store.insert(&record(model, &part, 0)).unwrap();
    let r = store.get(id).unwrap();
    assert_eq!(
        (r.verdict.as_str(), r.label.as_str()),
        ("uncertain", "uncertain")
    );
    assert!(r.has_image);
}

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
    unsure.inspection.verdict = Verdict::Uncertain;
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
            "DROP TABLE changes; DROP TABLE forwarded; DROP TABLE alarms; PRAGMA user_version = 1;",
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
