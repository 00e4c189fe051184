//! The station's control charts, drawn from the record store: one p-chart for all defects
//! and one per defect class, over the latest subgroups. New signals become alarms in the
//! store, from where the log, the API, the panel and the plant links pick them up.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::spc::PChart;
use crate::store::{Alarm, NewAlarm, RecordStore, StoreError};

/// `[spc]`: how parts are grouped and what counts as the process's normal.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpcConfig {
    /// Parts per subgroup (one point on the chart).
    #[serde(default = "default_subgroup")]
    pub subgroup: usize,
    /// Subgroups whose mean sets the centre line when `centre` is not given.
    #[serde(default = "default_baseline")]
    pub baseline: usize,
    /// Subgroups on the chart (the newest).
    #[serde(default = "default_window")]
    pub window: usize,
    /// A known defect rate to hold the line to, instead of the baseline's.
    #[serde(default)]
    pub centre: Option<f64>,
}

fn default_subgroup() -> usize {
    50
}
fn default_baseline() -> usize {
    20
}
fn default_window() -> usize {
    50
}

impl Default for SpcConfig {
    fn default() -> Self {
        Self {
            subgroup: default_subgroup(),
            baseline: default_baseline(),
            window: default_window(),
            centre: None,
        }
    }
}

/// One chart, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    /// `all`, or the defect class.
    pub name: String,
    /// Index of the chart's first subgroup in the station's whole sequence.
    pub first_subgroup: u64,
    #[serde(flatten)]
    pub chart: PChart,
}

#[derive(Debug, Clone)]
pub struct ProcessWatch {
    config: SpcConfig,
}

impl ProcessWatch {
    pub fn new(config: SpcConfig) -> Self {
        Self { config }
    }

    /// The charts over the latest subgroups; empty until the baseline is complete.
    pub fn charts(&self, store: &RecordStore) -> Result<Vec<Chart>, StoreError> {
        let n = self.config.subgroup.max(1);
        let wanted = u32::try_from(self.config.window.max(1) * n).unwrap_or(u32::MAX);
        let (first, outcomes) = store.recent_outcomes(wanted)?;
        // Start at a subgroup boundary of the whole sequence, so points never shift.
        let skip = ((n as u64 - first % n as u64) % n as u64) as usize;
        let outcomes = outcomes.get(skip..).unwrap_or_default();
        let first_subgroup = (first + skip as u64) / n as u64;
        let classes: BTreeSet<&str> = outcomes
            .iter()
            .map(|o| o.label.as_str())
            .filter(|l| *l != "good")
            .collect();
        let chart = |name: &str, defective: Vec<bool>| {
            PChart::build(&defective, n, self.config.baseline, self.config.centre).map(|chart| {
                Chart {
                    name: name.to_owned(),
                    first_subgroup,
                    chart,
                }
            })
        };
        let mut charts: Vec<Chart> = Vec::new();
        charts.extend(chart(
            "all",
            outcomes.iter().map(|o| o.label != "good").collect(),
        ));
        for class in classes {
            charts.extend(chart(
                class,
                outcomes.iter().map(|o| o.label == class).collect(),
            ));
        }
        Ok(charts)
    }

    /// Raises an alarm for each rule the newest subgroup breaks (once per chart, rule and
    /// subgroup); returns the new ones.
    pub fn check(&self, store: &RecordStore) -> Result<Vec<Alarm>, StoreError> {
        let mut raised = Vec::new();
        for chart in self.charts(store)? {
            let limits = chart.chart.limits;
            for signal in chart.chart.current_signals() {
                if signal.side < 0 {
                    // Fewer defects than usual is good news, not an alarm.
                    continue;
                }
                let subgroup = chart.first_subgroup + signal.point as u64;
                let message = format!(
                    "{}: {} (defect rate {:.1} % against a centre line of {:.1} %)",
                    chart.name,
                    signal.rule.describe(),
                    signal.proportion * 100.0,
                    limits.centre * 100.0
                );
                let alarm = NewAlarm {
                    chart: chart.name.clone(),
                    rule: serde_json::to_value(signal.rule)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    subgroup: i64::try_from(subgroup).unwrap_or(i64::MAX),
                    proportion: signal.proportion,
                    centre: limits.centre,
                    upper: limits.upper(),
                    message,
                };
                raised.extend(store.raise(&alarm)?);
            }
        }
        Ok(raised)
    }
}
