//! The station's settings log: who changed a decision threshold or switched the model,
//! when, from what to what. Each verdict names the model that judged it; this log says why
//! that model, with those thresholds, was the one in charge.

use std::time::SystemTime;

use rusqlite::{Row, params};
use serde::{Deserialize, Serialize};

use super::{RecordStore, StoreError, timestamp, unix_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Thresholds,
    Model,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Thresholds => "thresholds",
            Self::Model => "model",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub who: String,
    pub kind: ChangeKind,
    pub before: String,
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub id: i64,
    pub changed_at: jiff::Timestamp,
    pub who: String,
    pub kind: ChangeKind,
    pub before: String,
    pub after: String,
}

impl RecordStore {
    /// Keeps one settings change; returns it once it is durable.
    pub fn log_change(&self, change: &NewChange) -> Result<Change, StoreError> {
        let changed_ms = unix_ms(SystemTime::now());
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO changes (changed_ms, who, kind, before, after) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            changed_ms,
            change.who,
            change.kind.as_str(),
            change.before,
            change.after
        ])?;
        Ok(Change {
            id: conn.last_insert_rowid(),
            changed_at: timestamp(changed_ms),
            who: change.who.clone(),
            kind: change.kind,
            before: change.before.clone(),
            after: change.after.clone(),
        })
    }

    /// The latest `limit` settings changes, newest first.
    pub fn changes(&self, limit: u32) -> Result<Vec<Change>, StoreError> {
        let conn = self.read();
        let changes = conn
            .prepare_cached(
                "SELECT id, changed_ms, who, kind, before, after FROM changes \
                 ORDER BY id DESC LIMIT ?1",
            )?
            .query_map([limit], change_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(changes)
    }
}

fn change_from_row(row: &Row<'_>) -> rusqlite::Result<Change> {
    let kind: String = row.get(3)?;
    Ok(Change {
        id: row.get(0)?,
        changed_at: timestamp(row.get(1)?),
        who: row.get(2)?,
        kind: if kind == "model" {
            ChangeKind::Model
        } else {
            ChangeKind::Thresholds
        },
        before: row.get(4)?,
        after: row.get(5)?,
    })
}
