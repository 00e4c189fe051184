//! Process alarms and the outcome sequence the control charts are drawn from.

use std::time::SystemTime;

use rusqlite::{Row, params};
use serde::Serialize;

use super::{RecordStore, StoreError, timestamp, unix_ms};

/// A control-chart rule broken, as kept and sent to the plant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub id: i64,
    pub raised_at: jiff::Timestamp,
    /// `all` (every defect) or the defect class the chart watches.
    pub chart: String,
    pub rule: String,
    /// The subgroup that completed the pattern, counted from the station's first part.
    pub subgroup: i64,
    pub proportion: f64,
    pub centre: f64,
    pub upper: f64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAlarm {
    pub chart: String,
    pub rule: String,
    pub subgroup: i64,
    pub proportion: f64,
    pub centre: f64,
    pub upper: f64,
    pub message: String,
}

/// One judged part in the order the line made them: its current label (review, else the
/// model's; parts still waiting for review are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: i64,
    /// `good` or the defect class.
    pub label: String,
}

impl RecordStore {
    /// Keeps an alarm unless that chart already raised that rule at that subgroup; returns
    /// it when it is new.
    pub fn raise(&self, alarm: &NewAlarm) -> Result<Option<Alarm>, StoreError> {
        let raised_ms = unix_ms(SystemTime::now());
        let conn = self.lock();
        let inserted = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO alarms (raised_ms, chart, rule, subgroup, proportion, \
                 centre, upper, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                raised_ms,
                alarm.chart,
                alarm.rule,
                alarm.subgroup,
                alarm.proportion,
                alarm.centre,
                alarm.upper,
                alarm.message
            ])?;
        Ok((inserted == 1).then(|| Alarm {
            id: conn.last_insert_rowid(),
            raised_at: timestamp(raised_ms),
            chart: alarm.chart.clone(),
            rule: alarm.rule.clone(),
            subgroup: alarm.subgroup,
            proportion: alarm.proportion,
            centre: alarm.centre,
            upper: alarm.upper,
            message: alarm.message.clone(),
        }))
    }

    /// Alarms after `id`, oldest first (`after = 0`: from the start).
    pub fn alarms_after(&self, after: i64, limit: u32) -> Result<Vec<Alarm>, StoreError> {
        let conn = self.read();
        let alarms = conn
            .prepare_cached(
                "SELECT id, raised_ms, chart, rule, subgroup, proportion, centre, upper, message \
                 FROM alarms WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![after, limit], alarm_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(alarms)
    }

    /// The newest `limit` alarms, newest first.
    pub fn recent_alarms(&self, limit: u32) -> Result<Vec<Alarm>, StoreError> {
        let conn = self.read();
        let alarms = conn
            .prepare_cached(
                "SELECT id, raised_ms, chart, rule, subgroup, proportion, centre, upper, message \
                 FROM alarms ORDER BY id DESC LIMIT ?1",
            )?
            .query_map([limit], alarm_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(alarms)
    }

    /// How many alarms the station has raised: a counter for Prometheus to alert on.
    pub fn alarm_count(&self) -> Result<u64, StoreError> {
        let conn = self.read();
        let count: i64 = conn
            .prepare_cached("SELECT count(*) FROM alarms")?
            .query_row([], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// The latest `count` outcomes, oldest first, with the position of the first one in
    /// the station's whole sequence (so subgroups keep fixed boundaries as parts arrive).
    pub fn recent_outcomes(&self, count: u32) -> Result<(u64, Vec<Outcome>), StoreError> {
        let conn = self.read();
        let judged = "FROM verdicts v
             LEFT JOIN reviews r ON r.id = (SELECT max(id) FROM reviews WHERE verdict_id = v.id)
             WHERE coalesce(r.after, v.class, v.verdict) <> 'uncertain'";
        let total: i64 = conn.query_row(&format!("SELECT count(*) {judged}"), [], |r| r.get(0))?;
        let mut outcomes = conn
            .prepare_cached(&format!(
                "SELECT v.id, coalesce(r.after, v.class, v.verdict) {judged} ORDER BY v.id DESC LIMIT ?1"
            ))?
            .query_map([count], |row| {
                Ok(Outcome {
                    id: row.get(0)?,
                    label: row.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        outcomes.reverse();
        let first = u64::try_from(total).unwrap_or(0) - outcomes.len() as u64;
        Ok((first, outcomes))
    }
}

fn alarm_from_row(row: &Row<'_>) -> rusqlite::Result<Alarm> {
    Ok(Alarm {
        id: row.get(0)?,
        raised_at: timestamp(row.get(1)?),
        chart: row.get(2)?,
        rule: row.get(3)?,
        subgroup: row.get(4)?,
        proportion: row.get(5)?,
        centre: row.get(6)?,
        upper: row.get(7)?,
        message: row.get(8)?,
    })
}
