//! p-charts with Western Electric run rules.
//!
//! Parts are grouped into consecutive subgroups of `n`; each subgroup's defect proportion
//! is a point. The centre line `p̄` and the 3-sigma limits come from a baseline (the first
//! subgroups of the window, or a configured value), and every later point is checked
//! against the four classic rules. One chart watches all defects; one per class shows
//! which defect is drifting.

use serde::Serialize;

/// The four Western Electric zone rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// One point beyond 3 sigma.
    BeyondLimits,
    /// Two of three consecutive points beyond 2 sigma, on the same side.
    TwoOfThreeBeyond2Sigma,
    /// Four of five consecutive points beyond 1 sigma, on the same side.
    FourOfFiveBeyond1Sigma,
    /// Eight consecutive points on the same side of the centre line.
    EightOnOneSide,
}

impl Rule {
    pub fn describe(self) -> &'static str {
        match self {
            Self::BeyondLimits => "a subgroup beyond the 3-sigma control limit",
            Self::TwoOfThreeBeyond2Sigma => "2 of 3 subgroups beyond 2 sigma",
            Self::FourOfFiveBeyond1Sigma => "4 of 5 subgroups beyond 1 sigma",
            Self::EightOnOneSide => "8 subgroups in a row on one side of the centre line",
        }
    }
}

/// Centre line and sigma of a p-chart for subgroups of `n` parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    pub centre: f64,
    pub sigma: f64,
    pub subgroup: usize,
}

impl Limits {
    pub fn new(centre: f64, subgroup: usize) -> Self {
        let n = subgroup.max(1) as f64;
        Self {
            centre,
            sigma: (centre * (1.0 - centre) / n).sqrt(),
            subgroup,
        }
    }

    pub fn upper(&self) -> f64 {
        (self.centre + 3.0 * self.sigma).min(1.0)
    }

    pub fn lower(&self) -> f64 {
        (self.centre - 3.0 * self.sigma).max(0.0)
    }

    /// Signed distance from the centre line in sigmas; 0 for a chart with no spread.
    fn z(&self, p: f64) -> f64 {
        if self.sigma > 0.0 {
            (p - self.centre) / self.sigma
        } else if p > self.centre {
            f64::INFINITY
        } else {
            0.0
        }
    }
}

/// A rule broken at one point of a chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub rule: Rule,
    /// Index of the point (subgroup) that completed the pattern.
    pub point: usize,
    pub proportion: f64,
    /// +1 above the centre line (more defects), -1 below.
    pub side: i8,
}

/// A p-chart over one stream of pass/fail outcomes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PChart {
    pub limits: Limits,
    /// Defect proportion of each complete subgroup, oldest first.
    pub points: Vec<f64>,
    pub signals: Vec<Signal>,
}

impl PChart {
    /// Charts `defective` (one flag per part, oldest first) in subgroups of `subgroup`
    /// parts. The centre line is `centre` when given, else the mean of the first
    /// `baseline` subgroups. None until there are enough parts for the baseline.
    pub fn build(
        defective: &[bool],
        subgroup: usize,
        baseline: usize,
        centre: Option<f64>,
    ) -> Option<Self> {
        let subgroup = subgroup.max(1);
        let points: Vec<f64> = defective
            .chunks_exact(subgroup)
            .map(|g| g.iter().filter(|d| **d).count() as f64 / subgroup as f64)
            .collect();
        let centre = match centre {
            Some(c) => c,
            None if points.len() >= baseline.max(1) => {
                points[..baseline.max(1)].iter().sum::<f64>() / baseline.max(1) as f64
            }
            None => return None,
        };
        let limits = Limits::new(centre, subgroup);
        let signals = signals(&limits, &points);
        Some(Self {
            limits,
            points,
            signals,
        })
    }

    /// Signals at the newest point: the process is out of control now.
    pub fn current_signals(&self) -> impl Iterator<Item = &Signal> {
        let last = self.points.len().checked_sub(1);
        self.signals.iter().filter(move |s| Some(s.point) == last)
    }
}

/// Every rule broken, at each point that completes its pattern.
fn signals(limits: &Limits, points: &[f64]) -> Vec<Signal> {
    let z: Vec<f64> = points.iter().map(|p| limits.z(*p)).collect();
    let mut found = Vec::new();
    for i in 0..z.len() {
        let side = if z[i] > 0.0 { 1 } else { -1 };
        let beyond = |k: f64, from: usize, want: usize| {
            let window = &z[from..=i];
            window.len() == i + 1 - from
                && window.iter().filter(|v| *v * f64::from(side) > k).count() >= want
        };
        let mut flag = |rule| {
            found.push(Signal {
                rule,
                point: i,
                proportion: points[i],
                side,
            });
        };
        if z[i].abs() > 3.0 {
            flag(Rule::BeyondLimits);
        }
        if z[i] * f64::from(side) > 2.0 && i >= 2 && beyond(2.0, i - 2, 2) {
            flag(Rule::TwoOfThreeBeyond2Sigma);
        }
        if z[i] * f64::from(side) > 1.0 && i >= 4 && beyond(1.0, i - 4, 4) {
            flag(Rule::FourOfFiveBeyond1Sigma);
        }
        if i >= 7 && z[i - 7..=i].iter().all(|v| *v * f64::from(side) > 0.0) {
            flag(Rule::EightOnOneSide);
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Subgroups of 50 with the given defect counts.
    fn parts(counts: &[usize]) -> Vec<bool> {
        counts
            .iter()
            .flat_map(|c| (0..50).map(move |i| i < *c))
            .collect()
    }

    fn rules(chart: &PChart) -> Vec<(usize, Rule)> {
        chart.signals.iter().map(|s| (s.point, s.rule)).collect()
    }

    #[test]
    fn limits_are_three_binomial_sigmas() {
        let l = Limits::new(0.1, 100);
        assert!((l.sigma - 0.03).abs() < 1e-12);
        assert!((l.upper() - 0.19).abs() < 1e-12);
        assert!((l.lower() - 0.01).abs() < 1e-12);
        assert_eq!(Limits::new(0.02, 50).lower(), 0.0, "never below zero");
    }

    #[test]
    fn a_stable_line_raises_nothing() {
        // p̄ = 0.1 with n = 50: sigma ≈ 0.042; 3..7 defects stay within 1 sigma.
        let counts = [5, 4, 6, 5, 7, 3, 5, 6, 4, 5, 6, 4, 5, 3, 7, 5, 4, 6, 5, 5];
        let chart = PChart::build(&parts(&counts), 50, 20, None).unwrap();
        assert!((chart.limits.centre - 0.1).abs() < 1e-9);
        assert!(chart.signals.is_empty(), "{:?}", chart.signals);
    }

    #[test]
    fn a_recorded_drift_trips_the_run_rules_before_the_limit() {
        // 20 stable subgroups at 10 %, then the line drifts up by about 1.5 sigma.
        let mut counts = vec![5, 4, 6, 5, 7, 3, 5, 6, 4, 5, 6, 4, 5, 3, 7, 5, 4, 6, 5, 5];
        counts.extend([8, 8, 7, 8, 8, 9, 8, 8]);
        let chart = PChart::build(&parts(&counts), 50, 20, None).unwrap();
        let found = rules(&chart);
        assert!(
            found.contains(&(23, Rule::FourOfFiveBeyond1Sigma))
                || found.contains(&(24, Rule::FourOfFiveBeyond1Sigma)),
            "{found:?}"
        );
        assert!(found.contains(&(27, Rule::EightOnOneSide)), "{found:?}");
        assert!(
            !found.iter().any(|(_, r)| *r == Rule::BeyondLimits),
            "no single subgroup is beyond 3 sigma: only the run rules see this drift"
        );
        assert!(found.iter().all(|(point, _)| *point >= 20));
        assert!(
            chart
                .current_signals()
                .any(|s| s.rule == Rule::EightOnOneSide)
        );
    }

    #[test]
    fn a_spike_is_beyond_the_limits() {
        let counts = [5, 5, 5, 5, 5, 16];
        let chart = PChart::build(&parts(&counts), 50, 5, Some(0.1)).unwrap();
        assert_eq!(rules(&chart), [(5, Rule::BeyondLimits)]);
        assert_eq!(chart.signals[0].side, 1);
    }

    #[test]
    fn two_of_three_beyond_two_sigma_on_the_same_side() {
        // sigma ≈ 0.042 at p̄ = 0.1, n = 50: 10 defects (z ≈ 2.4) is beyond 2 sigma.
        let counts = [5, 10, 5, 10];
        let chart = PChart::build(&parts(&counts), 50, 1, Some(0.1)).unwrap();
        assert_eq!(rules(&chart), [(3, Rule::TwoOfThreeBeyond2Sigma)]);
    }

    #[test]
    fn no_chart_before_the_baseline_is_complete() {
        assert!(PChart::build(&parts(&[5, 5]), 50, 20, None).is_none());
        // An incomplete subgroup is not a point.
        let chart = PChart::build(&[false; 120], 50, 1, None).unwrap();
        assert_eq!(chart.points.len(), 2);
    }
}
