//! Verdicts: what a station hands the store, how a stored record reads back, and the
//! paged queries over them.

use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::{Inspection, UncertainReason, Verdict};
use inspecta_vision::model::manifest::Manifest;
use rusqlite::{OptionalExtension as _, Row, params};
use serde::{Deserialize, Serialize};

use super::images::{Shelf, Written};
use super::reviews::{Review, review_from_row};
use super::{DEFAULT_PAGE, ImagePolicy, MAX_PAGE, RecordStore, StoreError, timestamp, unix_ms};

/// One verdict as it is handed to the store.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub station: &'a str,
    pub part_id: Option<&'a str>,
    pub sequence: Option<u64>,
    pub origin: Option<&'a str>,
    pub captured_at: SystemTime,
    pub model: &'a Manifest,
    pub inspection: &'a Inspection,
    /// From capture to verdict, for live frames.
    pub latency: Option<Duration>,
    pub frame: Option<&'a Frame>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// A stored verdict, with its latest review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: i64,
    pub captured_at: jiff::Timestamp,
    pub station: String,
    pub part_id: Option<String>,
    pub sequence: Option<u64>,
    pub origin: Option<String>,
    pub model: ModelRef,
    /// `good`, `defect` or `uncertain`.
    pub verdict: String,
    /// The defect class, for defects.
    pub class: Option<String>,
    /// Why the operator has to decide, for uncertain verdicts: `low_confidence`,
    /// `no_part`, `too_small` or `out_of_distribution`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Distance to the model's training images over its threshold: above 1, unfamiliar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub familiarity: Option<f64>,
    pub top_label: String,
    pub defect_score: f64,
    /// Label -> probability, in the model's label order.
    pub probabilities: serde_json::Value,
    pub timings: Timings,
    pub has_image: bool,
    pub review: Option<Review>,
    /// What the part is now held to be: the latest review's answer, else the model's.
    pub label: String,
}

/// Which records [`RecordStore::list`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// `good`, `defect`, `uncertain`, or a defect class.
    pub verdict: Option<String>,
    pub part_id: Option<String>,
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
    /// Only reviewed (true) or only unreviewed (false) records.
    pub reviewed: Option<bool>,
    /// Cursor: only records with a smaller id (the `next` of the previous page).
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<Record>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next: Option<i64>,
}

impl RecordStore {
    /// Stores one verdict (and its image, if the policy keeps it); returns its id once the
    /// record is durable.
    pub fn insert(&self, record: &NewRecord<'_>) -> Result<i64, StoreError> {
        self.insert_returning(record).map(|r| r.id)
    }

    /// Stores one verdict and returns it as stored. Nothing is read back after the commit,
    /// so a caller never has to report an error for a record that is in fact kept.
    pub fn insert_returning(&self, record: &NewRecord<'_>) -> Result<Record, StoreError> {
        let result = self.insert_record(record);
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) =
            result.as_ref().err().map(ToString::to_string);
        result
    }

    fn insert_record(&self, new: &NewRecord<'_>) -> Result<Record, StoreError> {
        let captured_ms = unix_ms(new.captured_at);
        // The image is complete on disk before the record that points to it is committed.
        // A part whose image cannot be written (disk full, read-only) is still recorded:
        // losing the verdict would hide exactly the defects from the yield.
        let written = new
            .frame
            .zip(self.shelf_for(&new.inspection.verdict))
            .and_then(|(frame, shelf)| self.write_image(frame, captured_ms, shelf));
        let image = written.as_ref().map(|w| w.relative.as_str());
        let mut record = Record::unsaved(new, captured_ms, image.is_some());
        match self.insert_row(&record, captured_ms, image) {
            Ok(id) => record.id = id,
            Err(e) => {
                if let Some(written) = written {
                    self.images.discard(&written);
                }
                return Err(e);
            }
        }
        // The record is committed: from here on nothing may report it as lost.
        if let Some(written) = written {
            self.images.admit(written);
            if let Err(e) = self.prune_images() {
                tracing::error!("cannot apply the image retention limits: {e}");
            }
        }
        Ok(record)
    }

    /// Where the image of a part with this verdict goes, if anywhere.
    fn shelf_for(&self, verdict: &Verdict) -> Option<Shelf> {
        match self.policy {
            ImagePolicy::All => Some(Shelf::Kept),
            ImagePolicy::NotGood if *verdict != Verdict::Good => Some(Shelf::Kept),
            ImagePolicy::NotGood => self.ring.then_some(Shelf::Ring),
            ImagePolicy::None => None,
        }
    }

    /// Commits one verdict row; returns its id.
    fn insert_row(
        &self,
        record: &Record,
        captured_ms: i64,
        image: Option<&str>,
    ) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO verdicts (captured_ms, station, part_id, sequence, origin,
                model_name, model_version, verdict, class, top_label, defect_score,
                probabilities, preprocess_ms, inference_ms, latency_ms, image, reason,
                familiarity)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18)",
        )?
        .execute(params![
            captured_ms,
            record.station,
            record.part_id,
            record
                .sequence
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            record.origin,
            record.model.name,
            record.model.version,
            record.verdict,
            record.class,
            record.top_label,
            record.defect_score,
            record.probabilities.to_string(),
            record.timings.preprocess_ms,
            record.timings.inference_ms,
            record.timings.latency_ms,
            image,
            record.reason,
            record.familiarity,
        ])?;
        Ok(conn.last_insert_rowid())
    }

    /// The image on disk, or None (counted and logged) when it cannot be written.
    fn write_image(&self, frame: &Frame, captured_ms: i64, shelf: Shelf) -> Option<Written> {
        match self.images.write(frame, captured_ms, shelf) {
            Ok(written) => Some(written),
            Err(e) => {
                let errors = self.image_errors.fetch_add(1, Ordering::Relaxed) + 1;
                // Once per doubling: a full disk fails every part, the log need not.
                if errors.is_power_of_two() {
                    tracing::error!(errors, "part image not kept, its record is: {e}");
                }
                None
            }
        }
    }

    pub fn get(&self, id: i64) -> Result<Record, StoreError> {
        let conn = self.read();
        let sql = format!("{SELECT_RECORD} WHERE v.id = ?1");
        conn.prepare_cached(&sql)?
            .query_row([id], record_from_row)
            .optional()?
            .ok_or(StoreError::NotFound(id))
    }

    /// The file of the newest part `station` took from under `folder` (not uploads): where
    /// a restarted folder line carries on. Walks back from the newest record, so a line
    /// that has run for months costs a few rows.
    pub fn last_origin_under(
        &self,
        station: &str,
        folder: &Path,
    ) -> Result<Option<PathBuf>, StoreError> {
        let mut prefix = folder.display().to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let conn = self.read();
        let origin: Option<String> = conn
            .prepare_cached(
                "SELECT origin FROM verdicts
                 WHERE station = ?1 AND sequence IS NOT NULL
                    AND substr(origin, 1, length(?2)) = ?2
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![station, prefix], |row| row.get(0))
            .optional()?;
        Ok(origin.map(PathBuf::from))
    }

    /// Records matching `query`, newest first, one page at a time.
    pub fn list(&self, query: &Query) -> Result<Page, StoreError> {
        let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let mut sql = format!("{SELECT_RECORD} WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, value: rusqlite::types::Value| {
            args.push(value);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(verdict) = &query.verdict {
            arg(
                &mut sql,
                " AND ? IN (v.verdict, v.class)",
                verdict.clone().into(),
            );
        }
        if let Some(part) = &query.part_id {
            arg(&mut sql, " AND v.part_id = ?", part.clone().into());
        }
        if let Some(since) = query.since {
            arg(
                &mut sql,
                " AND v.captured_ms >= ?",
                since.as_millisecond().into(),
            );
        }
        if let Some(until) = query.until {
            arg(
                &mut sql,
                " AND v.captured_ms < ?",
                until.as_millisecond().into(),
            );
        }
        if let Some(before) = query.before {
            arg(&mut sql, " AND v.id < ?", before.into());
        }
        match query.reviewed {
            Some(true) => sql.push_str(" AND r.id IS NOT NULL"),
            Some(false) => sql.push_str(" AND r.id IS NULL"),
            None => {}
        }
        // One extra row tells whether another page follows.
        arg(&mut sql, " ORDER BY v.id DESC LIMIT ?", (limit + 1).into());
        let conn = self.read();
        let mut items = conn
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(args), record_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }
}

pub(super) const SELECT_RECORD: &str =
    "SELECT v.id, v.captured_ms, v.station, v.part_id, v.sequence,
        v.origin, v.model_name, v.model_version, v.verdict, v.class, v.top_label,
        v.defect_score, v.probabilities, v.preprocess_ms, v.inference_ms, v.latency_ms,
        v.image IS NOT NULL,
        r.id, r.verdict_id, r.reviewed_ms, r.reviewer, r.action, r.before, r.after, r.reason,
        v.reason, v.familiarity
    FROM verdicts v
    LEFT JOIN reviews r
        ON r.id = (SELECT max(id) FROM reviews WHERE verdict_id = v.id)";

impl Record {
    /// A verdict as the store keeps it, before it has an id: the one conversion both the
    /// insert and the caller's answer use, so they cannot disagree.
    fn unsaved(new: &NewRecord<'_>, captured_ms: i64, has_image: bool) -> Self {
        let verdict = &new.inspection.verdict;
        let (kind, class) = match verdict {
            Verdict::Good => ("good", None),
            Verdict::Defect { class } => ("defect", Some(class.clone())),
            Verdict::Uncertain { .. } => ("uncertain", None),
        };
        let labels = &new.model.labels;
        let scores = &new.inspection.scores;
        let probabilities: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .zip(&scores.probabilities)
            .map(|(label, p)| (label.clone(), serde_json::Value::from(f64::from(*p))))
            .collect();
        let timings = &new.inspection.timings_ms;
        Self {
            id: 0,
            captured_at: timestamp(captured_ms),
            station: new.station.to_owned(),
            part_id: new.part_id.map(str::to_owned),
            sequence: new.sequence,
            origin: new.origin.map(str::to_owned),
            model: ModelRef {
                name: new.model.name.clone(),
                version: new.model.version.clone(),
            },
            verdict: kind.to_owned(),
            label: verdict.name().to_owned(),
            class,
            reason: verdict
                .uncertain_reason()
                .map(|r| UncertainReason::name(r).to_owned()),
            // An infinite distance (NaN features) is kept as the largest finite one.
            familiarity: scores.familiarity.map(|f| f64::from(f.min(f32::MAX))),
            // A part without scores (no frame) has no top label.
            top_label: if scores.probabilities.is_empty() {
                String::new()
            } else {
                labels.get(scores.top).cloned().unwrap_or_default()
            },
            defect_score: f64::from(scores.defect_score),
            probabilities: serde_json::Value::Object(probabilities),
            timings: Timings {
                preprocess_ms: timings.preprocess.as_secs_f64() * 1e3,
                inference_ms: timings.inference.as_secs_f64() * 1e3,
                latency_ms: new.latency.map(|l| l.as_secs_f64() * 1e3),
            },
            has_image,
            review: None,
        }
    }
}

pub(super) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    let review = match row.get::<_, Option<i64>>(17)? {
        Some(_) => Some(review_from_row(row, 17)?),
        None => None,
    };
    let verdict: String = row.get(8)?;
    let class: Option<String> = row.get(9)?;
    let label = review.as_ref().map_or_else(
        || class.clone().unwrap_or_else(|| verdict.clone()),
        |r| r.after.clone(),
    );
    let probabilities: String = row.get(12)?;
    Ok(Record {
        id: row.get(0)?,
        captured_at: timestamp(row.get(1)?),
        station: row.get(2)?,
        part_id: row.get(3)?,
        sequence: row
            .get::<_, Option<i64>>(4)?
            .and_then(|s| u64::try_from(s).ok()),
        origin: row.get(5)?,
        model: ModelRef {
            name: row.get(6)?,
            version: row.get(7)?,
        },
        verdict,
        class,
        reason: row.get(25)?,
        familiarity: row.get(26)?,
        top_label: row.get(10)?,
        defect_score: row.get(11)?,
        probabilities: serde_json::from_str(&probabilities).unwrap_or_default(),
        timings: Timings {
            preprocess_ms: row.get(13)?,
            inference_ms: row.get(14)?,
            latency_ms: row.get(15)?,
        },
        has_image: row.get(16)?,
        review,
        label,
    })
}
