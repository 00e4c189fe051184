//! One log line per interval for the line, instead of one per part: what a person tailing
//! journald can read at 30 parts/s. Each verdict is still logged at debug level.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use inspecta_pipeline::station::status::{SourceState, StatusSnapshot};

#[derive(Debug)]
pub struct LineSummary {
    every: Duration,
    last: Instant,
    before: Option<StatusSnapshot>,
}

impl LineSummary {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Instant::now(),
            before: None,
        }
    }

    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    /// Logs what changed since the last line: parts by verdict, frames, drops, the source.
    pub fn log(&mut self, now: StatusSnapshot) {
        let before = self.before.take().unwrap_or_else(|| empty(&now));
        let verdicts = difference(&before.verdicts, &now.verdicts);
        let parts: u64 = verdicts.values().sum();
        let by_verdict = verdicts
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let source = match &now.source {
            SourceState::Connecting => "connecting".to_owned(),
            SourceState::Online => "online".to_owned(),
            SourceState::Reconnecting { attempt, error } => {
                format!("reconnecting (attempt {attempt}): {error}")
            }
            SourceState::Ended => "ended".to_owned(),
        };
        tracing::info!(
            parts,
            frames = now.frames_in - before.frames_in,
            dropped = now.frames_dropped - before.frames_dropped,
            unreadable = now.unreadable - before.unreadable,
            total = now.inspected(),
            "last {:.0} s: {parts} parts ({}), source {source}",
            self.last.elapsed().as_secs_f64(),
            if by_verdict.is_empty() {
                "none"
            } else {
                &by_verdict
            },
        );
        self.before = Some(now);
        self.last = Instant::now();
    }
}

fn empty(like: &StatusSnapshot) -> StatusSnapshot {
    StatusSnapshot {
        frames_in: 0,
        frames_dropped: 0,
        unreadable: 0,
        triggers: 0,
        triggers_missed: 0,
        verdicts: BTreeMap::new(),
        uncertain: BTreeMap::new(),
        model_failing: None,
        source: like.source.clone(),
    }
}

/// Counts gained per name; names with none are left out.
fn difference(
    before: &BTreeMap<String, u64>,
    now: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(name, n)| (name.clone(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_counts_only_what_it_saw() {
        let before = BTreeMap::from([("good".to_owned(), 10), ("defect".to_owned(), 2)]);
        let now = BTreeMap::from([
            ("good".to_owned(), 25),
            ("defect".to_owned(), 2),
            ("uncertain".to_owned(), 1),
        ]);
        assert_eq!(
            difference(&before, &now),
            BTreeMap::from([("good".to_owned(), 15), ("uncertain".to_owned(), 1)])
        );
    }
}
