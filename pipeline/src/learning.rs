//! Which parts to ask the operator about, so each review teaches the next model the most.
//!
//! A part the model was sure of teaches it little; a part it hesitated over (two labels
//! close in probability) sits where the next model must move its boundary. The active
//! policy asks for those first and spreads its picks over the labels the model gave, so a
//! rare class gets reviews too instead of the budget going to the commonest confusion.
//! Uncertain parts, which the operator has to judge anyway, always come first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{MAX_PAGE, Query, Record, RecordStore, StoreError};

/// Newest unreviewed records a ranking looks at: a shift of a fast line, bounded so a
/// request stays a fraction of a second.
pub const POOL: usize = 5_000;

/// How a station picks the parts it asks the operator to review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Uncertain parts only, most hesitant first.
    Uncertain,
    /// Uncertain parts, then the most hesitant of the rest, spread over the given labels.
    #[default]
    Active,
    /// An even random sample: an audit whose error rates are unbiased estimates.
    Random,
}

/// A part the station asks an operator to review, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewRequest {
    pub record: Record,
    /// 1 minus the gap between the two likeliest labels: 1 is a coin toss, 0 certainty.
    pub hesitation: f64,
    pub why: Why,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// The model left the part to the operator.
    Uncertain,
    /// The model judged it, but barely: its review helps the next model.
    Hesitant,
    /// Picked at random for an audit.
    Audit,
}

/// 1 minus the gap between the two likeliest labels of a record.
pub fn hesitation(record: &Record) -> f64 {
    let mut p: Vec<f64> = record
        .probabilities
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    p.sort_by(|a, b| b.total_cmp(a));
    match p.as_slice() {
        [first, second, ..] => (1.0 - (first - second)).clamp(0.0, 1.0),
        _ => 0.0,
    }
}

/// Whether a part judged good or defect is worth an operator's look for the next model:
/// its hesitation reaches `ask_above` (uncertain parts are asked for anyway).
pub fn worth_asking(record: &Record, ask_above: f64) -> bool {
    record.verdict != "uncertain" && hesitation(record) >= ask_above
}

/// Up to `limit` unreviewed parts with an image (a review without one cannot become
/// training data), in the order `policy` asks for them, from the newest [`POOL`].
pub fn review_requests(
    store: &RecordStore,
    policy: Policy,
    limit: usize,
) -> Result<Vec<ReviewRequest>, StoreError> {
    let pool = unreviewed(store)?;
    let ranked = match policy {
        Policy::Uncertain => by_hesitation(pool.into_iter().filter(is_uncertain), Why::Uncertain),
        Policy::Active => {
            let (uncertain, judged): (Vec<_>, Vec<_>) = pool.into_iter().partition(is_uncertain);
            let mut ranked = by_hesitation(uncertain.into_iter(), Why::Uncertain);
            ranked.extend(spread_over_labels(by_hesitation(
                judged.into_iter(),
                Why::Hesitant,
            )));
            ranked
        }
        Policy::Random => {
            let mut sampled: Vec<ReviewRequest> =
                pool.into_iter().map(|r| request(r, Why::Audit)).collect();
            sampled.sort_by_key(|r| scramble(r.record.id));
            sampled
        }
    };
    Ok(ranked.into_iter().take(limit).collect())
}

fn is_uncertain(record: &Record) -> bool {
    record.verdict == "uncertain"
}

fn unreviewed(store: &RecordStore) -> Result<Vec<Record>, StoreError> {
    let mut pool = Vec::new();
    let mut query = Query {
        reviewed: Some(false),
        limit: Some(MAX_PAGE),
        ..Query::default()
    };
    while pool.len() < POOL {
        let page = store.list(&query)?;
        pool.extend(page.items.into_iter().filter(|r| r.has_image));
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    pool.truncate(POOL);
    Ok(pool)
}

fn request(record: Record, why: Why) -> ReviewRequest {
    ReviewRequest {
        hesitation: hesitation(&record),
        record,
        why,
    }
}

/// Most hesitant first; equal ones newest first.
fn by_hesitation(records: impl Iterator<Item = Record>, why: Why) -> Vec<ReviewRequest> {
    let mut ranked: Vec<ReviewRequest> = records.map(|r| request(r, why)).collect();
    ranked.sort_by(|a, b| {
        b.hesitation
            .total_cmp(&a.hesitation)
            .then(b.record.id.cmp(&a.record.id))
    });
    ranked
}

/// Takes the most hesitant part of each label the model gave in turn (round robin), each
/// label's parts in their ranked order.
fn spread_over_labels(ranked: Vec<ReviewRequest>) -> Vec<ReviewRequest> {
    let mut by_label: BTreeMap<String, std::collections::VecDeque<ReviewRequest>> = BTreeMap::new();
    for r in ranked {
        by_label
            .entry(r.record.top_label.clone())
            .or_default()
            .push_back(r);
    }
    let mut spread = Vec::new();
    loop {
        let mut round: Vec<ReviewRequest> = by_label
            .values_mut()
            .filter_map(|q| q.pop_front())
            .collect();
        if round.is_empty() {
            return spread;
        }
        round.sort_by(|a, b| b.hesitation.total_cmp(&a.hesitation));
        spread.append(&mut round);
    }
}

/// A fixed shuffle of record ids (SplitMix64), so an audit's sample does not change
/// between two requests.
fn scramble(id: i64) -> u64 {
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
