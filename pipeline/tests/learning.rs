//! Which parts a station asks its operator to review, ranked from records as the store
//! keeps them (real sample parts, their scores set so the expected order is known).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::judged::{Part, judged, record};
use inspecta_pipeline::learning::{self, Policy, Why};
use inspecta_pipeline::store::{NewReview, RecordStore, ReviewAction, StoreConfig};
use inspecta_vision::inspection::{UncertainReason, Verdict};

/// A part judged `defect` (label 0) or `good` (label 1) with P(defect) = `p`, or uncertain.
fn part(base: &Part, p_defect: f32, uncertain: bool) -> Part {
    let mut part = base.clone();
    let scores = &mut part.inspection.scores;
    scores.probabilities = vec![p_defect, 1.0 - p_defect];
    scores.defect_score = p_defect;
    scores.top = usize::from(p_defect < 0.5);
    part.inspection.verdict = if uncertain {
        Verdict::Uncertain {
            reason: UncertainReason::LowConfidence,
        }
    } else if p_defect >= 0.5 {
        Verdict::Defect {
            class: "defect".into(),
        }
    } else {
        Verdict::Good
    };
    part
}

#[test]
fn uncertain_parts_come_first_then_the_most_hesitant_spread_over_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (model, parts) = judged();
    let store = RecordStore::open(&StoreConfig::in_dir(dir.path())).unwrap();
    // (P(defect), uncertain): ids 1..=8 in this order.
    let plan = [
        (0.02, false), // 1: sure good
        (0.45, true),  // 2: uncertain, hesitation 0.9
        (0.40, false), // 3: good, hesitation 0.8
        (0.30, false), // 4: good, 0.6
        (0.90, false), // 5: defect, 0.2
        (0.55, true),  // 6: uncertain, 0.9 (newer than 2)
        (0.35, false), // 7: good, 0.7
        (0.99, false), // 8: sure defect, 0.02
    ];
    let made: Vec<Part> = plan.iter().map(|&(p, u)| part(&parts[0], p, u)).collect();
    let ids: Vec<i64> = made
        .iter()
        .enumerate()
        .map(|(i, p)| store.insert(&record(model, p, i as u64)).unwrap())
        .collect();
    let order = |policy, limit| -> Vec<(i64, Why)> {
        learning::review_requests(&store, policy, limit)
            .unwrap()
            .into_iter()
            .map(|r| (r.record.id, r.why))
            .collect()
    };

    // Uncertain first (equal hesitation: newest first); then the hesitant, one per label
    // in turn: the most hesitant good (3), the most hesitant defect (5), then good 7, 4, 1.
    let id = |n: usize| ids[n - 1];
    assert_eq!(
        order(Policy::Active, 10),
        vec![
            (id(6), Why::Uncertain),
            (id(2), Why::Uncertain),
            (id(3), Why::Hesitant),
            (id(5), Why::Hesitant),
            (id(7), Why::Hesitant),
            (id(8), Why::Hesitant),
            (id(4), Why::Hesitant),
            (id(1), Why::Hesitant),
        ]
    );
    assert_eq!(order(Policy::Active, 3).len(), 3, "the limit holds");
    assert_eq!(
        order(Policy::Uncertain, 10),
        vec![(id(6), Why::Uncertain), (id(2), Why::Uncertain)]
    );

    // A random audit takes every part once, in an order that stays the same.
    let audit = order(Policy::Random, 10);
    let mut taken: Vec<i64> = audit.iter().map(|(i, _)| *i).collect();
    assert_eq!(audit, order(Policy::Random, 10));
    taken.sort_unstable();
    assert_eq!(taken, ids);

    // A reviewed part is not asked for again.
    let review = NewReview {
        reviewer: "ana".into(),
        action: ReviewAction::Override,
        label: Some("defect".into()),
        reason: None,
    };
    store.review(id(6), &review).unwrap();
    assert_eq!(order(Policy::Uncertain, 10), vec![(id(2), Why::Uncertain)]);

    let stored = store.get(id(3)).unwrap();
    assert!((learning::hesitation(&stored) - 0.8).abs() < 1e-6);
    assert!(learning::worth_asking(&stored, 0.7));
    assert!(!learning::worth_asking(&stored, 0.9));
    assert!(!learning::worth_asking(&store.get(id(2)).unwrap(), 0.0));
}
