//! The record store with real verdicts from the bundled model on sample parts: records,
//! reviews, retention and the database file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::judged::{Part, images_on_disk, judged, record, ring_images_on_disk};
use inspecta_pipeline::store::{
    ImagePolicy, NewReview, Query, Record, RecordStore, ReviewAction, StoreConfig, StoreError,
};
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::{UncertainReason, Verdict};

#[test]
fn verdicts_round_trip_with_non_good_images_kept_and_passed_ones_in_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let returned: Vec<Record> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| store.insert_returning(&record(model, p, i as u64)).unwrap())
        .collect();
    let ids: Vec<i64> = returned.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert_eq!(store.count().unwrap(), parts.len() as u64);

    let not_good = parts
        .iter()
        .filter(|p| p.inspection.verdict != Verdict::Good)
        .count();
    assert!(not_good >= 10, "the samples hold defects: {not_good}");
    assert!(parts.len() - not_good >= 5, "and passed parts");
    assert_eq!(images_on_disk(dir.path()), not_good);
    assert_eq!(ring_images_on_disk(dir.path()), parts.len() - not_good);

    let ring = dir.path().join("images").join("recent");
    for ((id, part), at_insert) in ids.iter().zip(parts).zip(&returned) {
        let r = store.get(*id).unwrap();
        // What the insert answered (with no read-back) is what the store keeps.
        assert_eq!(&r, at_insert);
        assert_eq!(r.station, "test-station");
        assert_eq!(r.origin.as_deref(), Some(part.origin.as_str()));
        assert_eq!(r.model.name, model.manifest().name);
        assert_eq!(r.label, part.inspection.verdict.name());
        let defect_score = f64::from(part.inspection.scores.defect_score);
        assert!((r.defect_score - defect_score).abs() < 1e-6);
        assert_eq!(r.probabilities.as_object().unwrap().len(), 2);
        assert_eq!(r.timings.latency_ms, Some(25.0));
        // Every part has its image for now; the passed ones only while in the ring.
        assert!(r.has_image);
        let path = store.image_path(*id).unwrap().unwrap();
        assert_eq!(
            path.starts_with(&ring),
            part.inspection.verdict == Verdict::Good,
            "{}",
            path.display()
        );
        // The image is a real JPEG of the part as it was inspected.
        let kept = Frame::open(&path).unwrap();
        assert_eq!(
            (kept.width(), kept.height()),
            (part.frame.width(), part.frame.height())
        );
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
    let mut old = record(model, defect, 0);
    old.captured_at = SystemTime::now() - Duration::from_secs(40 * 86_400);
    // Kept by a station that kept more days...
    let (old, recent) = {
        let longer = StoreConfig {
            max_image_days: 60,
            ..config.clone()
        };
        let store = RecordStore::open(&longer).unwrap();
        (
            store.insert(&old).unwrap(),
            store.insert(&record(model, defect, 1)).unwrap(),
        )
    };
    assert_eq!(images_on_disk(dir.path()), 2);
    // ...and opening the store applies retention, as a restarted station does.
    let store = RecordStore::open(&config).unwrap();
    assert!(store.image_path(old).unwrap().is_none());
    assert!(store.image_path(recent).unwrap().is_some());
    assert_eq!(images_on_disk(dir.path()), 1);
    assert!(!store.get(old).unwrap().has_image);

    // While it runs, an expired image goes at the next insert with an image.
    let mut expired = record(model, defect, 2);
    expired.captured_at = SystemTime::now() - Duration::from_secs(31 * 86_400);
    let expired = store.insert(&expired).unwrap();
    assert!(!store.get(expired).unwrap().has_image);
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
        assert_eq!(ring_images_on_disk(dir.path()), 0, "{policy:?}: no ring");
    }
}

/// A passed part with its image in the ring; it and the parts after it are all `good`.
fn passed(parts: &[Part]) -> &Part {
    parts
        .iter()
        .find(|p| p.inspection.verdict == Verdict::Good)
        .unwrap()
}

#[test]
fn a_passed_part_overridden_to_defect_keeps_its_image_after_the_ring_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let good = passed(parts);
    let config = StoreConfig {
        recent_images: 4,
        ..StoreConfig::in_dir(dir.path())
    };
    let store = RecordStore::open(&config).unwrap();
    let escape = store.insert(&record(model, good, 0)).unwrap();
    let in_ring = store.image_path(escape).unwrap().unwrap();
    assert!(in_ring.starts_with(dir.path().join("images").join("recent")));
    assert!(store.get(escape).unwrap().has_image);

    store
        .review(
            escape,
            &NewReview {
                reviewer: "anna".into(),
                action: ReviewAction::Override,
                label: Some("defect".into()),
                reason: Some("crack found at assembly".into()),
            },
        )
        .unwrap();
    let kept = store.image_path(escape).unwrap().unwrap();
    assert!(!kept.starts_with(dir.path().join("images").join("recent")));
    assert!(!in_ring.exists(), "moved, not copied");
    assert_eq!(
        std::fs::read(&kept).unwrap().len() as u64,
        store.image_bytes()
    );

    // Six more passed parts flush the ring of four.
    let later: Vec<i64> = (1..=6)
        .map(|i| store.insert(&record(model, good, i)).unwrap())
        .collect();
    let has_image = |id| store.get(id).unwrap().has_image;
    assert!(
        has_image(escape) && kept.is_file(),
        "the reviewed part keeps it"
    );
    assert!(!has_image(later[0]) && !has_image(later[1]));
    assert!(later[2..].iter().all(|id| has_image(*id)));
    assert!(store.image_path(later[0]).unwrap().is_none());
    assert_eq!(ring_images_on_disk(dir.path()), 4);
    assert_eq!(images_on_disk(dir.path()), 1);

    // What export-dataset reads: the reviewed part, with a file that is there.
    let reviewed = store.reviewed_parts(None, None).unwrap();
    assert_eq!(reviewed.len(), 1);
    assert_eq!(reviewed[0].record.label, "defect");
    assert_eq!(reviewed[0].image.as_deref(), Some(kept.as_path()));

    // A restarted station rebuilds the ring: its parts keep their images, and its count
    // still holds.
    drop(store);
    let store = RecordStore::open(&config).unwrap();
    assert!(
        later[2..]
            .iter()
            .all(|id| store.get(*id).unwrap().has_image)
    );
    store.insert(&record(model, good, 7)).unwrap();
    assert!(!store.get(later[2]).unwrap().has_image);
    assert!(store.get(later[3]).unwrap().has_image);
    assert_eq!(ring_images_on_disk(dir.path()), 4);
}

#[test]
fn the_ring_lets_parts_go_by_age_and_a_confirm_keeps_one_too() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let good = passed(parts);
    let config = StoreConfig {
        recent_image_minutes: 5,
        ..StoreConfig::in_dir(dir.path())
    };
    let store = RecordStore::open(&config).unwrap();
    let mut old = record(model, good, 0);
    old.captured_at = SystemTime::now() - Duration::from_secs(6 * 60);
    let old = store.insert(&old).unwrap();
    let recent = store.insert(&record(model, good, 1)).unwrap();
    assert!(
        !store.get(old).unwrap().has_image,
        "older than the ring keeps"
    );
    assert!(store.get(recent).unwrap().has_image);
    assert_eq!(ring_images_on_disk(dir.path()), 1);

    let confirm = NewReview {
        reviewer: "bert".into(),
        action: ReviewAction::Confirm,
        label: None,
        reason: None,
    };
    store.review(recent, &confirm).unwrap();
    store.review(old, &confirm).unwrap();
    assert_eq!(ring_images_on_disk(dir.path()), 0);
    assert_eq!(images_on_disk(dir.path()), 1);
    assert!(store.image_path(recent).unwrap().unwrap().is_file());
    assert!(store.image_path(old).unwrap().is_none());
}

#[test]
fn inserts_from_many_threads_prune_without_losing_a_record_or_an_image() {
    const THREADS: usize = 8;
    const EACH: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let largest = {
        let sizing = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            images: ImagePolicy::All,
            ..StoreConfig::in_dir(sizing.path())
        };
        let store = RecordStore::open(&config).unwrap();
        for (i, p) in parts.iter().enumerate() {
            store.insert(&record(model, p, i as u64)).unwrap();
        }
        common::judged::kept_files(sizing.path())
            .iter()
            .map(|(_, bytes)| *bytes)
            .max()
            .unwrap()
    };
    // Room for a few images: nearly every insert prunes, from all threads at once.
    let limit = largest * 3;
    let config = StoreConfig {
        images: ImagePolicy::All,
        max_image_bytes: limit,
        ..StoreConfig::in_dir(dir.path())
    };
    let store = RecordStore::open(&config).unwrap();
    let results: Vec<Result<i64, StoreError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                std::thread::Builder::new()
                    .name(format!("insert-{t}"))
                    .spawn_scoped(scope, move || {
                        (0..EACH)
                            .map(|i| {
                                let part = &parts[(t * EACH + i) % parts.len()];
                                store.insert(&record(model, part, (t * EACH + i) as u64))
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap()
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let ids: Vec<i64> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids.len(), THREADS * EACH);
    assert_eq!(store.count().unwrap(), ids.len() as u64);
    assert_eq!(store.failing(), None);

    let with_image: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| store.get(*id).unwrap().has_image)
        .collect();
    for id in &with_image {
        assert!(
            store.image_path(*id).unwrap().is_some(),
            "record {id} names an image that is gone"
        );
    }
    let on_disk = common::judged::kept_files(dir.path());
    assert_eq!(with_image.len(), on_disk.len(), "no file without a record");
    let disk_bytes: u64 = on_disk.iter().map(|(_, bytes)| bytes).sum();
    assert_eq!(
        store.image_bytes(),
        disk_bytes,
        "the index counts what is on disk"
    );
    assert!(disk_bytes <= limit, "{disk_bytes} > {limit}");
    assert!(!with_image.is_empty());
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
    part.inspection.verdict = Verdict::Uncertain {
        reason: UncertainReason::NoPart,
    };
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let id = store.insert(&record(model, &part, 0)).unwrap();
    let r = store.get(id).unwrap();
    assert_eq!(
        (r.verdict.as_str(), r.label.as_str(), r.reason.as_deref()),
        ("uncertain", "uncertain", Some("no_part"))
    );
    assert!(r.has_image);
}

#[test]
fn a_review_with_an_overlong_reviewer_or_reason_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    let (model, parts) = judged();
    let id = store.insert(&record(model, &parts[0], 0)).unwrap();
    let review = |reviewer: String, reason: Option<String>| NewReview {
        reviewer,
        action: ReviewAction::Confirm,
        label: None,
        reason,
    };
    let err = store
        .review(id, &review("x".repeat(101), None))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("reviewer")),
        "{err}"
    );
    let err = store
        .review(id, &review("anna".into(), Some("y".repeat(1001))))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("reason")),
        "{err}"
    );
    // The limits count characters, not bytes.
    let kept = store
        .review(id, &review("ü".repeat(100), Some("ß".repeat(1000))))
        .unwrap();
    assert_eq!(kept.reviewer.chars().count(), 100);
}

/// Reads and the line's inserts take separate connections. While an insert waits for the
/// database (another connection holds its write lock), the count, a record, a page and the
/// KPIs still answer with what was committed, and the insert completes once the lock goes.
/// With one connection for both, the reads would wait behind the insert until it gave up
/// with "database is locked".
#[test]
fn reads_answer_while_an_insert_waits_for_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let config = StoreConfig {
        images: ImagePolicy::All,
        ..StoreConfig::in_dir(dir.path())
    };
    let store = Arc::new(RecordStore::open(&config).unwrap());
    let first = store.insert(&record(model, &parts[0], 0)).unwrap();
    let blocker = rusqlite::Connection::open(dir.path().join("records.sqlite")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let writer = Arc::clone(&store);
    let inserting = std::thread::Builder::new()
        .name("insert".into())
        .spawn(move || writer.insert(&record(model, &parts[1], 1)))
        .unwrap();
    // The part's image is renamed into place just before the insert takes the writer's
    // connection (a record never points to a half-written image).
    while kept_images(dir.path()) < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store.count().unwrap(), 1);
    assert_eq!(store.get(first).unwrap().id, first);
    assert_eq!(store.list(&Query::default()).unwrap().items.len(), 1);
    assert_eq!(store.kpis(jiff::Timestamp::UNIX_EPOCH).unwrap().parts, 1);
    assert!(store.image_path(first).unwrap().is_some());
    assert!(!inserting.is_finished(), "the insert waits for the lock");

    blocker.execute_batch("COMMIT").unwrap();
    let second = inserting.join().unwrap().expect("the insert completes");
    assert_eq!(store.count().unwrap(), 2);
    assert_eq!(store.get(second).unwrap().id, second);
}

/// Images complete in the archive (renamed into place, not `.partial`).
fn kept_images(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("images"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|day| std::fs::read_dir(day.path()).ok())
        .flatten()
        .flatten()
        .filter(|file| file.path().extension().is_some_and(|e| e == "jpg"))
        .count()
}
