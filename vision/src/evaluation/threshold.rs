//! Which threshold to run, and how far the figures behind it can be trusted. A threshold on a
//! measured score has no margin: the next defect a hair below it passes. A rate measured on a
//! few parts says little: none of 12 defects escaping is consistent with a true escape rate of
//! 22 %. So the threshold sits in the gap between scores, each rate comes with its exact
//! binomial upper bound, and where good and defect scores overlap, an uncertain band sends
//! that overlap to the operator instead of guessing.

use serde::Serialize;
use statrs::distribution::{Beta, ContinuousCDF as _};

use super::metrics::{BinaryScores, OperatingPoint};

/// Confidence of every bound the reports state.
pub const CONFIDENCE: f64 = 0.95;

/// Clopper-Pearson upper bound: the highest rate at which `failures` or fewer out of `trials`
/// would still be seen with probability `1 - confidence`.
pub fn upper_bound(failures: usize, trials: usize, confidence: f64) -> f64 {
    if failures >= trials {
        return 1.0;
    }
    Beta::new((failures + 1) as f64, (trials - failures) as f64)
        .ok()
        .and_then(|beta| beta.try_inverse_cdf(confidence).ok())
        .unwrap_or(1.0)
}

/// The fewest trials, none failing, whose upper bound is within `rate`; `None` for a rate of 0
/// (no finite sample shows it) or 1 and above (any sample does).
pub fn trials_needed(rate: f64, confidence: f64) -> Option<usize> {
    if !(rate > 0.0 && rate < 1.0) {
        return None;
    }
    let exact = (1.0 - confidence).ln() / (1.0 - rate).ln();
    // The bound of `ceil(exact)` trials can miss `rate` by rounding; step until it holds.
    (exact.ceil() as usize..).find(|&n| upper_bound(0, n, confidence) <= rate)
}

/// A rate as measured, with the bound that says how high it may really be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoundedRate {
    pub count: usize,
    pub of: usize,
    pub rate: f64,
    /// Upper bound at [`CONFIDENCE`].
    pub upper_bound: f64,
}

impl BoundedRate {
    pub fn new(count: usize, of: usize) -> Self {
        Self {
            count,
            of,
            rate: if of == 0 {
                0.0
            } else {
                count as f64 / of as f64
            },
            upper_bound: upper_bound(count, of, CONFIDENCE),
        }
    }
}

/// Scores from `low` (inclusive) to `high` (exclusive) go to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UncertainBand {
    pub low: f32,
    pub high: f32,
    /// Share of all parts inside the band: the operator's load.
    pub uncertain_rate: f64,
    pub good_inside: usize,
    pub defect_inside: usize,
    /// Good parts at or above the band, rejected without a person.
    pub false_rejects: BoundedRate,
}

/// The threshold a report recommends, why, and how sure it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Rates at the recommended threshold, band ignored; flattened in JSON, so
    /// `recommended.threshold` reads as it did before the bounds came.
    #[serde(flatten)]
    pub point: OperatingPoint,
    pub escapes: BoundedRate,
    pub false_rejects: BoundedRate,
    /// Distance from the threshold to the nearest score on either side: how far a new part's
    /// score may drift before a verdict on this data changes.
    pub margin: f32,
    pub target_escape_rate: f64,
    /// Defects needed, none escaping, to show the target escape rate at [`CONFIDENCE`].
    pub defects_needed: Option<usize>,
    /// Present when good and defect scores overlap at the targets.
    pub band: Option<UncertainBand>,
    pub target_false_reject_rate: f64,
    /// What the data cannot support, in words a quality engineer can act on.
    pub warnings: Vec<String>,
}

/// The threshold that meets `target_escape` on these scores, moved into the middle of the gap
/// below the lowest defect score it must catch; and a band up to where good parts reach
/// `target_false_reject`, when that is higher.
pub fn recommend(
    scores: &BinaryScores,
    target_escape: f64,
    target_false_reject: f64,
) -> Recommendation {
    let edge = scores.threshold_for_escape_rate(target_escape).threshold;
    let threshold = midpoint_below(scores, edge);
    let escapes = BoundedRate::new(
        count_below(scores.defect(), threshold),
        scores.defect().len(),
    );
    let good = scores.good().len();
    let false_rejects = BoundedRate::new(good - count_below(scores.good(), threshold), good);
    let point = OperatingPoint {
        threshold,
        escape_rate: escapes.rate,
        false_reject_rate: false_rejects.rate,
    };
    let band = band_above(scores, threshold, target_false_reject);
    let reject_side = band.map_or(false_rejects, |b| b.false_rejects);
    let warnings = [
        shortfall(&escapes, target_escape, "defective parts", "an escape rate"),
        shortfall(
            &reject_side,
            target_false_reject,
            "good parts",
            "a false-reject rate",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    Recommendation {
        point,
        escapes,
        false_rejects,
        margin: margin(scores, threshold),
        target_escape_rate: target_escape,
        defects_needed: trials_needed(target_escape, CONFIDENCE),
        band,
        target_false_reject_rate: target_false_reject,
        warnings,
    }
}

/// Why `measured` cannot show `target`, when its bound is above it: e.g. "12 defective parts
/// cannot show an escape rate of 0.50% or less at 95.0% confidence: with 0 misjudged, up to
/// 22.1% is possible; at least 598 defective parts, none misjudged, are needed".
pub fn shortfall(measured: &BoundedRate, target: f64, parts: &str, rate: &str) -> Option<String> {
    if measured.upper_bound <= target {
        return None;
    }
    let needed = trials_needed(target, CONFIDENCE).map_or_else(String::new, |n| {
        format!("; at least {n} {parts}, none misjudged, are needed")
    });
    Some(format!(
        "{} {parts} cannot show {rate} of {} or less at {} confidence: with {} misjudged, up to \
         {} is possible{needed}",
        measured.of,
        percent(target),
        percent(CONFIDENCE),
        measured.count,
        percent(measured.upper_bound),
    ))
}

/// The band from `low` up to the middle of the gap above the good score that only
/// `target_false_reject` of good parts exceed; `None` when good parts already stay below `low`
/// that often.
fn band_above(scores: &BinaryScores, low: f32, target_false_reject: f64) -> Option<UncertainBand> {
    let good = scores.good();
    let allowed = (target_false_reject.max(0.0) * good.len() as f64).floor() as usize;
    let top = good[good.len() - 1 - allowed.min(good.len() - 1)];
    if top < low {
        return None;
    }
    let high = midpoint_above(scores, top);
    let inside = |v: &[f32]| count_below(v, high) - count_below(v, low);
    let (good_inside, defect_inside) = (inside(good), inside(scores.defect()));
    let parts = good.len() + scores.defect().len();
    Some(UncertainBand {
        low,
        high,
        uncertain_rate: (good_inside + defect_inside) as f64 / parts as f64,
        good_inside,
        defect_inside,
        false_rejects: BoundedRate::new(good.len() - count_below(good, high), good.len()),
    })
}

fn count_below(sorted: &[f32], threshold: f32) -> usize {
    sorted.partition_point(|&s| s < threshold)
}

fn all_scores(scores: &BinaryScores) -> impl Iterator<Item = f32> + '_ {
    scores.good().iter().chain(scores.defect()).copied()
}

/// Halfway between `score` and the highest score below it (or 0): the same parts on either
/// side, with the most room for drift.
fn midpoint_below(scores: &BinaryScores, score: f32) -> f32 {
    let below = all_scores(scores)
        .filter(|&s| s < score)
        .fold(0.0_f32.min(score), f32::max);
    below + (score - below) / 2.0
}

/// Halfway between `score` and the lowest score above it (or 1, the top of the score range).
fn midpoint_above(scores: &BinaryScores, score: f32) -> f32 {
    let above = all_scores(scores)
        .filter(|&s| s > score)
        .fold(1.0_f32.max(score), f32::min);
    score + (above - score) / 2.0
}

fn margin(scores: &BinaryScores, threshold: f32) -> f32 {
    all_scores(scores)
        .map(|s| (s - threshold).abs())
        .fold(f32::INFINITY, f32::min)
}

fn percent(rate: f64) -> String {
    let digits = if rate < 0.01 { 2 } else { 1 };
    format!("{:.*}%", digits, rate * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(good: &[f32], defect: &[f32]) -> BinaryScores {
        BinaryScores::new(good.to_vec(), defect.to_vec()).expect("both kinds")
    }

    #[test]
    fn bounds_match_published_values() {
        // Rule of three: none in n gives about 3/n at 95 %; exact for n = 12 is 1 - 0.05^(1/12).
        let none_in_12 = upper_bound(0, 12, 0.95);
        assert!((none_in_12 - (1.0 - 0.05_f64.powf(1.0 / 12.0))).abs() < 1e-9);
        // Clopper-Pearson, 1 in 20 at one-sided 95 %: 0.2161 (binom.test's upper limit at 90 %).
        assert!((upper_bound(1, 20, 0.95) - 0.2161).abs() < 1e-3);
        assert_eq!(upper_bound(5, 5, 0.95), 1.0);
        assert_eq!(trials_needed(0.005, 0.95), Some(598));
        assert_eq!(trials_needed(0.0, 0.95), None);
    }

    #[test]
    fn the_threshold_sits_in_the_gap_not_on_a_score() {
        let s = scores(&[0.1, 0.2, 0.3], &[0.7, 0.8, 0.9]);
        let r = recommend(&s, 0.0, 0.01);
        assert!(
            (r.point.threshold - 0.5).abs() < 1e-6,
            "{}",
            r.point.threshold
        );
        assert!((r.margin - 0.2).abs() < 1e-6);
        assert_eq!((r.escapes.count, r.false_rejects.count), (0, 0));
        assert!(r.band.is_none(), "separated scores need no band");
    }

    #[test]
    fn few_defects_are_said_to_be_too_few() {
        let s = scores(&[0.1; 20], &[0.9; 12]);
        let r = recommend(&s, 0.005, 0.5);
        assert!(r.escapes.upper_bound > 0.2);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("12 defective parts") && r.warnings[0].contains("598"));
    }

    #[test]
    fn overlapping_scores_get_a_band_over_the_overlap() {
        let good: Vec<f32> = (0..100).map(|i| i as f32 / 200.0).collect(); // 0 .. 0.495
        let defect: Vec<f32> = (0..100).map(|i| 0.4 + i as f32 / 200.0).collect(); // 0.4 .. 0.895
        let r = recommend(&scores(&good, &defect), 0.0, 0.0);
        let band = r.band.expect("the scores overlap");
        assert!(band.low < 0.4 && band.high > 0.495, "{band:?}");
        assert_eq!(band.false_rejects.count, 0);
        assert_eq!(r.escapes.count, 0);
        // 20 good parts (0.4 .. 0.495) and 20 defects (0.4 .. 0.495) lie inside.
        assert_eq!((band.good_inside, band.defect_inside), (20, 20));
        assert!((band.uncertain_rate - 0.2).abs() < 1e-9);
    }
}
