//! The numbers a quality engineer judges a model by, as plain functions over scores.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    pub threshold: f32,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

/// Escape and false-reject rates when parts at or above `threshold` are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    pub threshold: f32,
    /// Defective parts passed as good, over all defective parts.
    pub escape_rate: f64,
    /// Good parts rejected, over all good parts.
    pub false_reject_rate: f64,
}

/// Defect scores split by ground truth.
#[derive(Debug, Clone, Default)]
pub struct BinaryScores {
    good: Vec<f32>,
    defect: Vec<f32>,
}

impl BinaryScores {
    pub fn new(mut good: Vec<f32>, mut defect: Vec<f32>) -> Option<Self> {
        if good.is_empty() || defect.is_empty() {
            return None;
        }
        good.sort_by(f32::total_cmp);
        defect.sort_by(f32::total_cmp);
        Some(Self { good, defect })
    }

    pub fn good(&self) -> &[f32] {
        &self.good
    }

    pub fn defect(&self) -> &[f32] {
        &self.defect
    }

    /// Area under the ROC curve: the probability that a random defective part scores
    /// higher than a random good one (ties count half), the Mann-Whitney statistic.
    pub fn auroc(&self) -> f64 {
        let (mut wins, mut g) = (0.0, 0usize);
        for &d in &self.defect {
            while g < self.good.len() && self.good[g] < d {
                g += 1;
            }
            let ties = self.good[g..].iter().take_while(|&&s| s == d).count();
            wins += g as f64 + ties as f64 / 2.0;
        }
        wins / (self.good.len() as f64 * self.defect.len() as f64)
    }

    pub fn at(&self, threshold: f32) -> OperatingPoint {
        let below = |v: &[f32]| v.partition_point(|&s| s < threshold);
        OperatingPoint {
            threshold,
            escape_rate: below(&self.defect) as f64 / self.defect.len() as f64,
            false_reject_rate: (self.good.len() - below(&self.good)) as f64
                / self.good.len() as f64,
        }
    }

    /// The highest threshold whose escape rate stays within `target`: it lets the fewest
    /// good parts be rejected for that many escapes.
    pub fn threshold_for_escape_rate(&self, target: f64) -> OperatingPoint {
        let allowed = (target.max(0.0) * self.defect.len() as f64).floor() as usize;
        self.at(self.defect[allowed.min(self.defect.len() - 1)])
    }

    /// The operating points at `steps + 1` evenly spaced thresholds in 0..=1.
    pub fn sweep(&self, steps: usize) -> Vec<OperatingPoint> {
        (0..=steps)
            .map(|i| self.at(i as f32 / steps as f32))
            .collect()
    }

    /// ROC curve through every distinct score, from (0, 0) to (1, 1).
    pub fn roc(&self) -> Vec<RocPoint> {
        let mut thresholds: Vec<f32> = self.good.iter().chain(&self.defect).copied().collect();
        thresholds.sort_by(|a, b| b.total_cmp(a));
        thresholds.dedup();
        let mut points = vec![RocPoint {
            threshold: f32::INFINITY,
            false_positive_rate: 0.0,
            true_positive_rate: 0.0,
        }];
        points.extend(thresholds.into_iter().map(|t| {
            let p = self.at(t);
            RocPoint {
                threshold: t,
                false_positive_rate: p.false_reject_rate,
                true_positive_rate: 1.0 - p.escape_rate,
            }
        }));
        points
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` for no values.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank =
            |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Some(Self {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: values[values.len() - 1],
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

impl ClassMetrics {
    pub fn new(true_positives: usize, predicted: usize, support: usize) -> Self {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (
            ratio(true_positives, predicted),
            ratio(true_positives, support),
        );
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self {
            precision,
            recall,
            f1,
            support,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(good: &[f32], defect: &[f32]) -> BinaryScores {
        BinaryScores::new(good.to_vec(), defect.to_vec()).expect("both classes")
    }

    #[test]
    fn auroc_perfect_random_and_ties() {
        assert_eq!(scores(&[0.1, 0.2], &[0.8, 0.9]).auroc(), 1.0);
        assert_eq!(scores(&[0.8, 0.9], &[0.1, 0.2]).auroc(), 0.0);
        assert_eq!(scores(&[0.5], &[0.5]).auroc(), 0.5);
        // One of four pairs is misordered.
        assert_eq!(scores(&[0.1, 0.6], &[0.5, 0.9]).auroc(), 0.75);
    }

    #[test]
    fn operating_point_counts_both_errors() {
        let s = scores(&[0.1, 0.2, 0.6, 0.7], &[0.3, 0.8, 0.9, 0.95]);
        let p = s.at(0.5);
        assert_eq!((p.escape_rate, p.false_reject_rate), (0.25, 0.5));
    }

    #[test]
    fn recommended_threshold_meets_target_with_fewest_rejects() {
        let s = scores(&[0.1, 0.2, 0.6, 0.7], &[0.3, 0.8, 0.9, 0.95]);
        let zero = s.threshold_for_escape_rate(0.0);
        assert_eq!(
            (zero.threshold, zero.escape_rate, zero.false_reject_rate),
            (0.3, 0.0, 0.5)
        );
        let quarter = s.threshold_for_escape_rate(0.25);
        assert_eq!(
            (
                quarter.threshold,
                quarter.escape_rate,
                quarter.false_reject_rate
            ),
            (0.8, 0.25, 0.0)
        );
    }

    #[test]
    fn roc_runs_corner_to_corner() {
        let roc = scores(&[0.1, 0.6], &[0.5, 0.9]).roc();
        let first = roc.first().expect("points");
        let last = roc.last().expect("points");
        assert_eq!(
            (first.false_positive_rate, first.true_positive_rate),
            (0.0, 0.0)
        );
        assert_eq!(
            (last.false_positive_rate, last.true_positive_rate),
            (1.0, 1.0)
        );
    }

    #[test]
    fn percentiles_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect()).expect("values");
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert!(Percentiles::of(vec![]).is_none());
    }

    #[test]
    fn class_metrics_handle_empty_counts() {
        let m = ClassMetrics::new(0, 0, 0);
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
        let m = ClassMetrics::new(8, 10, 16);
        assert_eq!((m.precision, m.recall), (0.8, 0.5));
    }
}
