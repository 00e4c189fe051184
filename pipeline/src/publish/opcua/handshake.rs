//! The trigger/result handshake as a state machine, with the last verdict. The PLC's writes
//! and the station's verdicts move it on under one lock, and every `Handshake/` and
//! `LastVerdict/` variable a client reads is computed from it at that moment: a read right
//! after a write sees the write's effect, and a result is only ever readable together with
//! the `ResultReady` of its own part.

use std::time::{Duration, Instant};

use opcua::types::{StatusCode, UAString, Variant};

use crate::station::{TriggerError, generated_part_id};
use crate::store::Record;

/// Beyond the station's frame timeout, how long a trigger may wait before the handshake
/// gives up on its own. The station reports a missed part itself at the frame timeout (a
/// record with reason `no_frame`), so this only ends a cycle the station lost track of.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// The handshake's variables, as named under `Handshake/`.
pub const VARIABLES: [&str; 10] = [
    "Trigger",
    "PartId",
    "Busy",
    "ResultReady",
    "Ack",
    "Result",
    "ResultClass",
    "ResultScore",
    "ResultRecordId",
    "Fault",
];

/// The last verdict's variables, as named under `LastVerdict/`.
pub const LAST_VERDICT: [&str; 6] = [
    "Verdict", "Class", "Score", "PartId", "Sequence", "RecordId",
];

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Idle,
    Busy { since: Instant },
    ResultReady(Outcome),
}

/// A triggered part's verdict, as the PLC reads it.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    verdict: String,
    class: String,
    score: f64,
    record_id: i64,
}

impl Outcome {
    fn of(record: &Record) -> Self {
        Self {
            verdict: record.verdict.clone(),
            class: record.class.clone().unwrap_or_default(),
            score: record.defect_score,
            record_id: record.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LastVerdict {
    outcome: Outcome,
    part_id: String,
    sequence: u64,
}

#[derive(Debug)]
pub struct Handshake {
    phase: Phase,
    last: Option<LastVerdict>,
    /// Written by the PLC for the next trigger; taken by it.
    next_part_id: String,
    /// The part of the current (or last) cycle.
    part_id: String,
    /// The last Ack the PLC wrote, cleared by the next trigger.
    ack: bool,
    fault: String,
    station: String,
    frame_timeout: Duration,
}

impl Handshake {
    pub fn new(station: &str, frame_timeout: Duration) -> Self {
        Self {
            phase: Phase::Idle,
            last: None,
            next_part_id: String::new(),
            part_id: String::new(),
            ack: false,
            fault: String::new(),
            station: station.to_owned(),
            frame_timeout,
        }
    }

    pub fn write_part_id(&mut self, part_id: String) {
        self.next_part_id = part_id;
    }

    /// `Trigger` = true: only from idle; the part is asked of the station (`fire`) at once.
    pub fn trigger(&mut self, fire: impl FnOnce(String) -> Result<(), TriggerError>) -> StatusCode {
        self.expire();
        if self.phase != Phase::Idle {
            return StatusCode::BadInvalidState;
        }
        let part_id = match std::mem::take(&mut self.next_part_id) {
            id if id.is_empty() => generated_part_id(&self.station),
            id => id,
        };
        if let Err(e) = fire(part_id.clone()) {
            tracing::warn!(%part_id, "OPC UA trigger refused: {e}");
            return StatusCode::BadResourceUnavailable;
        }
        tracing::info!(%part_id, "OPC UA trigger");
        self.part_id = part_id;
        self.ack = false;
        self.fault.clear();
        self.phase = Phase::Busy {
            since: Instant::now(),
        };
        StatusCode::Good
    }

    /// `Ack` = true: only while a result waits; the result is cleared with the flag.
    pub fn acknowledge(&mut self) -> StatusCode {
        if !matches!(self.phase, Phase::ResultReady(_)) {
            return StatusCode::BadInvalidState;
        }
        self.ack = true;
        self.phase = Phase::Idle;
        StatusCode::Good
    }

    /// `Ack` = false: the PLC resets its flag.
    pub fn release_ack(&mut self) {
        self.ack = false;
    }

    /// A stored verdict: the last verdict, and the result if it is the part the PLC is
    /// waiting for. A part the station got no frame for ends the cycle with a fault instead.
    pub fn judged(&mut self, record: &Record) {
        self.expire();
        self.last = Some(LastVerdict {
            outcome: Outcome::of(record),
            part_id: record.part_id.clone().unwrap_or_default(),
            sequence: record.sequence.unwrap_or(0),
        });
        let awaited = matches!(self.phase, Phase::Busy { .. })
            && record.part_id.as_deref() == Some(self.part_id.as_str());
        if !awaited {
            return;
        }
        if record.reason.as_deref() == Some("no_frame") {
            self.fail(format!(
                "no frame for part {} within {} ms (record {})",
                self.part_id,
                self.frame_timeout.as_millis(),
                record.id
            ));
            return;
        }
        self.phase = Phase::ResultReady(Outcome::of(record));
    }

    /// A cycle the station never answered ends with a fault rather than a hang.
    fn expire(&mut self) {
        if let Phase::Busy { since } = self.phase
            && since.elapsed() >= self.frame_timeout + STUCK_AFTER
        {
            self.fail(format!("part {} got no verdict", self.part_id));
        }
    }

    fn fail(&mut self, fault: String) {
        tracing::warn!("OPC UA handshake: {fault}");
        self.fault = fault;
        self.phase = Phase::Idle;
    }

    /// The value of `Handshake/<variable>` now.
    pub fn read(&mut self, variable: &str) -> Option<Variant> {
        self.expire();
        let outcome = match &self.phase {
            Phase::ResultReady(outcome) => Some(outcome),
            _ => None,
        };
        Some(match variable {
            "Trigger" => (self.phase != Phase::Idle).into(),
            "PartId" => {
                let shown = if self.next_part_id.is_empty() {
                    &self.part_id
                } else {
                    &self.next_part_id
                };
                UAString::from(shown.as_str()).into()
            }
            "Busy" => matches!(self.phase, Phase::Busy { .. }).into(),
            "ResultReady" => outcome.is_some().into(),
            "Ack" => self.ack.into(),
            "Result" => UAString::from(outcome.map_or("", |o| o.verdict.as_str())).into(),
            "ResultClass" => UAString::from(outcome.map_or("", |o| o.class.as_str())).into(),
            "ResultScore" => outcome.map_or(0.0, |o| o.score).into(),
            "ResultRecordId" => outcome.map_or(0, |o| o.record_id).into(),
            "Fault" => UAString::from(self.fault.as_str()).into(),
            _ => return None,
        })
    }

    /// The value of `LastVerdict/<variable>` now.
    pub fn read_last(&self, variable: &str) -> Option<Variant> {
        let last = self.last.as_ref();
        let outcome = last.map(|l| &l.outcome);
        Some(match variable {
            "Verdict" => UAString::from(outcome.map_or("", |o| o.verdict.as_str())).into(),
            "Class" => UAString::from(outcome.map_or("", |o| o.class.as_str())).into(),
            "Score" => outcome.map_or(0.0, |o| o.score).into(),
            "PartId" => UAString::from(last.map_or("", |l| l.part_id.as_str())).into(),
            "Sequence" => last.map_or(0, |l| l.sequence).into(),
            "RecordId" => outcome.map_or(0, |o| o.record_id).into(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, part_id: &str, reason: Option<&str>) -> Record {
        Record {
            id,
            captured_at: jiff::Timestamp::UNIX_EPOCH,
            station: "cam".into(),
            part_id: Some(part_id.into()),
            sequence: Some(3),
            origin: None,
            model: crate::store::ModelRef {
                name: "m".into(),
                version: "1".into(),
            },
            verdict: if reason.is_some() {
                "uncertain"
            } else {
                "defect"
            }
            .into(),
            class: reason.is_none().then(|| "crack".into()),
            reason: reason.map(Into::into),
            familiarity: None,
            top_label: String::new(),
            defect_score: 0.9,
            probabilities: serde_json::Value::Null,
            timings: crate::store::Timings {
                preprocess_ms: 0.0,
                inference_ms: 0.0,
                latency_ms: None,
            },
            has_image: false,
            review: None,
            label: "crack".into(),
        }
    }

    fn read(h: &mut Handshake, variable: &str) -> Variant {
        h.read(variable).unwrap_or(Variant::Empty)
    }

    fn text(value: &str) -> Variant {
        UAString::from(value).into()
    }

    #[test]
    fn each_step_shows_in_the_very_next_read_and_no_result_outlives_its_ack() {
        let mut h = Handshake::new("cam", Duration::from_millis(500));
        h.write_part_id("P-1".into());
        assert_eq!(read(&mut h, "PartId"), text("P-1"), "a write reads back");
        let mut fired = Vec::new();
        let code = h.trigger(|p| {
            fired.push(p);
            Ok(())
        });
        assert_eq!(code, StatusCode::Good);
        assert_eq!(fired, ["P-1"]);
        assert_eq!(read(&mut h, "Busy"), true.into());
        assert_eq!(read(&mut h, "ResultReady"), false.into());
        assert_eq!(read(&mut h, "ResultRecordId"), 0i64.into());
        assert_eq!(read(&mut h, "PartId"), text("P-1"));

        // Another part's verdict is no result for this one.
        h.judged(&record(6, "P-0", None));
        assert_eq!(read(&mut h, "Busy"), true.into());
        assert_eq!(h.read_last("RecordId"), Some(6i64.into()));

        h.judged(&record(7, "P-1", None));
        assert_eq!(read(&mut h, "Busy"), false.into());
        assert_eq!(read(&mut h, "ResultReady"), true.into());
        assert_eq!(read(&mut h, "ResultRecordId"), 7i64.into());
        assert_eq!(read(&mut h, "ResultClass"), text("crack"));
        assert_eq!(h.trigger(|_| Ok(())), StatusCode::BadInvalidState);

        assert_eq!(h.acknowledge(), StatusCode::Good);
        assert_eq!(read(&mut h, "ResultReady"), false.into());
        assert_eq!(read(&mut h, "Trigger"), false.into());
        assert_eq!(read(&mut h, "ResultRecordId"), 0i64.into());
        assert_eq!(read(&mut h, "Result"), text(""));
        assert_eq!(read(&mut h, "Ack"), true.into());
        assert_eq!(h.acknowledge(), StatusCode::BadInvalidState);
        h.release_ack();
        assert_eq!(read(&mut h, "Ack"), false.into());
    }

    #[test]
    fn a_part_without_a_frame_ends_its_cycle_with_a_fault() {
        let mut h = Handshake::new("cam", Duration::from_millis(500));
        h.write_part_id("P-9".into());
        assert_eq!(h.trigger(|_| Ok(())), StatusCode::Good);
        h.judged(&record(8, "P-9", Some("no_frame")));
        assert_eq!(read(&mut h, "Busy"), false.into());
        assert_eq!(read(&mut h, "ResultReady"), false.into());
        let Variant::String(fault) = read(&mut h, "Fault") else {
            panic!("no fault text");
        };
        assert!(
            fault
                .as_ref()
                .contains("no frame for part P-9 within 500 ms"),
            "{fault}"
        );
        // The next trigger clears the fault.
        assert_eq!(h.trigger(|_| Ok(())), StatusCode::Good);
        assert_eq!(read(&mut h, "Fault"), text(""));
    }

    #[test]
    fn a_refused_trigger_leaves_the_station_idle() {
        let mut h = Handshake::new("cam", Duration::from_millis(500));
        let code = h.trigger(|_| Err(TriggerError::Busy));
        assert_eq!(code, StatusCode::BadResourceUnavailable);
        assert_eq!(read(&mut h, "Busy"), false.into());
        assert_eq!(read(&mut h, "Trigger"), false.into());
    }
}
