//! Two models on the same folder: which one to run. The figures are compared in the order a
//! plant cares about them (what it costs to keep escapes at the target, then ranking, then
//! plain accuracy) and the first one that differs by more than noise decides.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use statrs::distribution::{Binomial, DiscreteCDF as _};

use super::EvalReport;

/// Below this p-value, the two models' different right answers are more than chance.
pub const NOISE_P: f64 = 0.05;

#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    pub name: &'static str,
    pub a: f64,
    pub b: f64,
    pub higher_is_better: bool,
    /// Differences at or below this are noise.
    pub tolerance: f64,
}

impl Criterion {
    /// 'A', 'B', or None within tolerance.
    fn winner(&self) -> Option<char> {
        let gain = if self.higher_is_better {
            self.b - self.a
        } else {
            self.a - self.b
        };
        if gain.abs() <= self.tolerance {
            None
        } else if gain > 0.0 {
            Some('B')
        } else {
            Some('A')
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub criteria: Vec<Criterion>,
    /// 'A' or 'B'; None when no figure differs by more than its tolerance.
    pub better: Option<char>,
    pub reason: String,
    /// Images judged right by one model only (paired, same image).
    pub only_a_right: Vec<PathBuf>,
    pub only_b_right: Vec<PathBuf>,
    /// Exact McNemar test on those images: the chance of a split at least this uneven if
    /// both models were equally good. Below [`NOISE_P`], the accuracy gap is not noise.
    pub mcnemar_p: f64,
}

impl Comparison {
    /// B judges more images right than A, and by more than chance (McNemar, [`NOISE_P`]).
    pub fn b_wins_beyond_noise(&self) -> bool {
        self.only_b_right.len() > self.only_a_right.len() && self.mcnemar_p < NOISE_P
    }
}

/// Two-sided exact McNemar p-value for `a` and `b` discordant pairs.
pub fn mcnemar_p(a: usize, b: usize) -> f64 {
    let n = a + b;
    if n == 0 {
        return 1.0;
    }
    let Ok(split) = Binomial::new(0.5, n as u64) else {
        return 1.0;
    };
    (2.0 * split.cdf(a.min(b) as u64)).min(1.0)
}

pub fn compare(a: &EvalReport, b: &EvalReport) -> Comparison {
    let mut criteria = Vec::new();
    if let (Some(x), Some(y)) = (&a.binary, &b.binary) {
        criteria.push(Criterion {
            name: "false-reject rate at the target escape rate",
            a: x.recommended.point.false_reject_rate,
            b: y.recommended.point.false_reject_rate,
            higher_is_better: false,
            tolerance: 0.005,
        });
        criteria.push(Criterion {
            name: "ROC AUC",
            a: x.auroc,
            b: y.auroc,
            higher_is_better: true,
            tolerance: 0.002,
        });
    }
    if let (Some(x), Some(y)) = (a.pixel_auroc, b.pixel_auroc) {
        criteria.push(Criterion {
            name: "pixel ROC AUC",
            a: x,
            b: y,
            higher_is_better: true,
            tolerance: 0.002,
        });
    }
    criteria.push(Criterion {
        name: "verdict accuracy",
        a: a.accuracy,
        b: b.accuracy,
        higher_is_better: true,
        tolerance: 0.002,
    });
    let decisive = criteria.iter().find_map(|c| c.winner().map(|w| (w, c)));
    let (better, reason) = match decisive {
        Some((w, c)) => (
            Some(w),
            format!("{w} is better on {}: A {:.4}, B {:.4}", c.name, c.a, c.b),
        ),
        None => (None, "no figure differs by more than its tolerance".into()),
    };
    let right: BTreeMap<&PathBuf, bool> = a.samples.iter().map(|s| (&s.path, s.correct)).collect();
    let (mut only_a_right, mut only_b_right) = (Vec::new(), Vec::new());
    for s in &b.samples {
        match right.get(&s.path) {
            Some(true) if !s.correct => only_a_right.push(s.path.clone()),
            Some(false) if s.correct => only_b_right.push(s.path.clone()),
            _ => {}
        }
    }
    Comparison {
        a: format!("{} {}", a.model.name, a.model.version),
        b: format!("{} {}", b.model.name, b.model.version),
        criteria,
        better,
        reason,
        mcnemar_p: mcnemar_p(only_a_right.len(), only_b_right.len()),
        only_a_right,
        only_b_right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criterion(a: f64, b: f64, higher_is_better: bool) -> Criterion {
        Criterion {
            name: "x",
            a,
            b,
            higher_is_better,
            tolerance: 0.01,
        }
    }

    #[test]
    fn the_winner_respects_direction_and_tolerance() {
        assert_eq!(criterion(0.90, 0.95, true).winner(), Some('B'));
        assert_eq!(criterion(0.90, 0.95, false).winner(), Some('A'));
        assert_eq!(criterion(0.90, 0.905, true).winner(), None);
    }

    #[test]
    fn mcnemar_matches_the_binomial_tail() {
        // 1 vs 9 discordant pairs: 2 * (1 + 10) / 1024.
        assert!((mcnemar_p(1, 9) - 22.0 / 1024.0).abs() < 1e-9);
        assert!((mcnemar_p(9, 1) - 22.0 / 1024.0).abs() < 1e-9);
        assert_eq!(mcnemar_p(0, 0), 1.0);
        assert_eq!(mcnemar_p(5, 5), 1.0);
    }
}
