//! The record store: every verdict and every review in one SQLite file, next to the images
//! of the parts people need to see again. This is the station's memory: the API, the panel
//! and the plant links read it, and reviews written here become the next model's labels.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a record is on disk when
//! [`RecordStore::insert`] returns; a process killed at any moment (or a power cut) loses
//! nothing that was committed.

mod alarms;
mod changes;
mod forward;
pub mod images;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension as _, Row, params};
use serde::{Deserialize, Serialize};

use crate::frame::Frame;
use crate::model::Inspection;
use crate::model::manifest::Manifest;
use crate::verdict::Verdict;
pub use alarms::{Alarm, NewAlarm, Outcome};
pub use changes::{Change, ChangeKind, NewChange};
pub use forward::Stream;
use images::ImageArchive;
pub use images::Retention;

pub const DATABASE_FILE: &str = "records.sqlite";
pub const IMAGES_DIR: &str = "images";
/// Longest page [`RecordStore::list`] returns, whatever the caller asks for.
pub const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the record store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the record store {path} was written by a newer Inspecta (schema {found}, this build \
         knows {supported})"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("record store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the part image: {0}")]
    Image(image::ImageError),
    #[error("no record with id {0}")]
    NotFound(i64),
    #[error("{0}")]
    Invalid(String),
}

/// Which part images are kept with their records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImagePolicy {
    /// Defects and uncertain parts: the ones someone reviews or retrains on.
    #[default]
    NotGood,
    All,
    None,
}

/// The `[store]` section of a station config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Holds records.sqlite and the images folder.
    pub dir: PathBuf,
    #[serde(default)]
    pub images: ImagePolicy,
    /// Oldest images are deleted first once all images together exceed this.
    #[serde(default = "default_max_image_bytes")]
    pub max_image_bytes: u64,
    /// Images from days further back than this are deleted. Records are never pruned.
    #[serde(default = "default_max_image_days")]
    pub max_image_days: u32,
}

fn default_max_image_bytes() -> u64 {
    2_000_000_000
}
fn default_max_image_days() -> u32 {
    90
}

impl StoreConfig {
    /// A store in `dir` with the default image policy and retention.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            images: ImagePolicy::default(),
            max_image_bytes: default_max_image_bytes(),
            max_image_days: default_max_image_days(),
        }
    }

    fn retention(&self) -> Retention {
        Retention {
            max_bytes: self.max_image_bytes,
            max_days: self.max_image_days,
        }
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAction {
    Confirm,
    Override,
}

impl ReviewAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Override => "override",
        }
    }
}

/// An inspector's decision on a stored verdict.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    pub reviewer: String,
    pub action: ReviewAction,
    /// The label the part really has; required for overrides.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    pub id: i64,
    pub verdict_id: i64,
    pub reviewed_at: jiff::Timestamp,
    pub reviewer: String,
    pub action: ReviewAction,
    pub before: String,
    pub after: String,
    pub reason: Option<String>,
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

/// A reviewed record and the file its part image is (or was) kept in.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewedPart {
    /// Its `review` is the latest one, and `label` that review's answer.
    pub record: Record,
    pub image: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<Record>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next: Option<i64>,
}

/// Quality figures over a span of records (a shift), as the operator panel shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Kpis {
    pub parts: u64,
    /// Parts whose current label (review, else model) is good.
    pub good: u64,
    /// Parts by current defect class, most frequent first (the Pareto).
    pub defects: Vec<(String, u64)>,
    /// Parts the model left to the operator.
    pub uncertain: u64,
    /// Uncertain parts nobody has reviewed yet.
    pub awaiting_review: u64,
    /// Good or defect verdicts an inspector reviewed (uncertain parts are not verdicts).
    pub reviewed: u64,
    /// Reviewed verdicts whose label the inspector changed: the model was wrong.
    pub overridden: u64,
    /// Parts the model rejected that an inspector reviewed.
    pub reviewed_defects: u64,
    /// ...of which the inspector found good: rejected for nothing.
    pub false_rejects: u64,
    /// Parts the model passed that an inspector audited.
    pub reviewed_good: u64,
    /// ...of which the inspector found defective: escapes caught by the audit.
    pub escapes_found: u64,
    pub first: Option<jiff::Timestamp>,
    pub last: Option<jiff::Timestamp>,
}

impl Kpis {
    fn ratio(n: u64, d: u64) -> Option<f64> {
        (d > 0).then(|| n as f64 / d as f64)
    }

    /// Good parts over all parts, with reviews applied.
    pub fn first_pass_yield(&self) -> Option<f64> {
        Self::ratio(self.good, self.parts)
    }

    pub fn uncertain_rate(&self) -> Option<f64> {
        Self::ratio(self.uncertain, self.parts)
    }

    /// Overrides over reviewed parts.
    pub fn override_rate(&self) -> Option<f64> {
        Self::ratio(self.overridden, self.reviewed)
    }

    /// Share of reviewed rejects that were good parts.
    pub fn false_reject_rate(&self) -> Option<f64> {
        Self::ratio(self.false_rejects, self.reviewed_defects)
    }

    /// Share of audited passed parts that were defective: an estimate of the escape rate
    /// (as good as the audit sample is random).
    pub fn escape_estimate(&self) -> Option<f64> {
        Self::ratio(self.escapes_found, self.reviewed_good)
    }

    /// Counts and the rates made of them, as the API and the plant links send them; a
    /// rate with nothing to divide by is null.
    pub fn report(&self) -> serde_json::Value {
        let defects: Vec<serde_json::Value> = self
            .defects
            .iter()
            .map(|(class, n)| serde_json::json!({"class": class, "parts": n}))
            .collect();
        serde_json::json!({
            "parts": self.parts,
            "good": self.good,
            "defects": defects,
            "uncertain": self.uncertain,
            "awaiting_review": self.awaiting_review,
            "reviewed": self.reviewed,
            "overridden": self.overridden,
            "reviewed_defects": self.reviewed_defects,
            "false_rejects": self.false_rejects,
            "reviewed_good": self.reviewed_good,
            "escapes_found": self.escapes_found,
            "rates": {
                "yield": self.first_pass_yield(),
                "uncertain": self.uncertain_rate(),
                "override": self.override_rate(),
                "false_reject": self.false_reject_rate(),
                "escape_estimate": self.escape_estimate(),
            },
            "parts_per_minute": self.parts_per_minute(),
        })
    }

    /// Parts per minute between the first and the last part.
    pub fn parts_per_minute(&self) -> Option<f64> {
        let (first, last) = (self.first?, self.last?);
        let minutes = last.duration_since(first).as_secs_f64() / 60.0;
        (minutes > 0.0).then(|| (self.parts.saturating_sub(1)) as f64 / minutes)
    }
}

#[derive(Debug)]
pub struct RecordStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    images: ImageArchive,
    policy: ImagePolicy,
}

impl RecordStore {
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: config.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(io)?;
        let path = config.dir.join(DATABASE_FILE);
        let conn = open_database(&path)?;
        let images = ImageArchive::open(config.dir.join(IMAGES_DIR), config.retention())?;
        let store = Self {
            path,
            conn: Mutex::new(conn),
            images,
            policy: config.images,
        };
        store.prune_images()?;
        tracing::info!(path = %store.path.display(), records = store.count()?, image_bytes = store.images.bytes(), "record store open");
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores one verdict (and its image, if the policy keeps it); returns its id once the
    /// record is durable.
    pub fn insert(&self, record: &NewRecord<'_>) -> Result<i64, StoreError> {
        let captured_ms = unix_ms(record.captured_at);
        let verdict = &record.inspection.verdict;
        let keep_image = match self.policy {
            ImagePolicy::All => true,
            ImagePolicy::NotGood => *verdict != Verdict::Good,
            ImagePolicy::None => false,
        };
        // The image is complete on disk before the record that points to it is committed.
        let image = match record.frame.filter(|_| keep_image) {
            Some(frame) => Some(self.images.write(frame, captured_ms)?),
            None => None,
        };
        let (kind, class) = match verdict {
            Verdict::Good => ("good", None),
            Verdict::Defect { class } => ("defect", Some(class.as_str())),
            Verdict::Uncertain => ("uncertain", None),
        };
        let labels = &record.model.labels;
        let scores = &record.inspection.scores;
        let probabilities: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .zip(&scores.probabilities)
            .map(|(label, p)| (label.clone(), serde_json::Value::from(f64::from(*p))))
            .collect();
        let top_label = labels.get(scores.top).map_or("", String::as_str);
        let timings = &record.inspection.timings_ms;
        let id = {
            let conn = self.lock();
            conn.prepare_cached(
                "INSERT INTO verdicts (captured_ms, station, part_id, sequence, origin,
                    model_name, model_version, verdict, class, top_label, defect_score,
                    probabilities, preprocess_ms, inference_ms, latency_ms, image)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
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
                kind,
                class,
                top_label,
                f64::from(scores.defect_score),
                serde_json::Value::Object(probabilities).to_string(),
                timings.preprocess.as_secs_f64() * 1e3,
                timings.inference.as_secs_f64() * 1e3,
                record.latency.map(|l| l.as_secs_f64() * 1e3),
                image,
            ])?;
            conn.last_insert_rowid()
        };
        if image.is_some() && self.images.needs_pruning() {
            self.prune_images()?;
        }
        Ok(id)
    }

    pub fn get(&self, id: i64) -> Result<Record, StoreError> {
        let conn = self.lock();
        let sql = format!("{SELECT_RECORD} WHERE v.id = ?1");
        conn.prepare_cached(&sql)?
            .query_row([id], record_from_row)
            .optional()?
            .ok_or(StoreError::NotFound(id))
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
        let conn = self.lock();
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

    /// Records an inspector's decision. `before` is what the part was held to be until now
    /// (the previous review's answer, else the model's verdict).
    pub fn review(&self, verdict_id: i64, review: &NewReview) -> Result<Review, StoreError> {
        let reviewer = review.reviewer.trim();
        if reviewer.is_empty() {
            return Err(StoreError::Invalid("a review needs a reviewer".into()));
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let before: String = tx
            .query_row(
                "SELECT coalesce(
                    (SELECT after FROM reviews WHERE verdict_id = v.id ORDER BY id DESC LIMIT 1),
                    v.class, v.verdict)
                 FROM verdicts v WHERE v.id = ?1",
                [verdict_id],
                |row| row.get(0),
            )
            .optional()?
            .ok_or(StoreError::NotFound(verdict_id))?;
        let after = match (review.action, review.label.as_deref().map(str::trim)) {
            (ReviewAction::Confirm, _) if before == "uncertain" => {
                return Err(StoreError::Invalid(
                    "an uncertain part needs a label: override it with good or a defect class"
                        .into(),
                ));
            }
            (ReviewAction::Confirm, None) => before.clone(),
            (ReviewAction::Confirm, Some(label)) if label == before => before.clone(),
            (ReviewAction::Confirm, Some(label)) => {
                return Err(StoreError::Invalid(format!(
                    "cannot confirm {label:?}: the part is held to be {before:?}; override it instead"
                )));
            }
            (ReviewAction::Override, Some(label)) if label == before => {
                return Err(StoreError::Invalid(format!(
                    "the part is already held to be {before:?}: confirm it instead"
                )));
            }
            (ReviewAction::Override, Some(label)) if !label.is_empty() => label.to_owned(),
            (ReviewAction::Override, _) => {
                return Err(StoreError::Invalid(
                    "an override needs the label the part really has".into(),
                ));
            }
        };
        let reviewed_ms = unix_ms(SystemTime::now());
        tx.execute(
            "INSERT INTO reviews (verdict_id, reviewed_ms, reviewer, action, before, after, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                verdict_id,
                reviewed_ms,
                reviewer,
                review.action.as_str(),
                before,
                after,
                review
                    .reason
                    .as_deref()
                    .map(str::trim)
                    .filter(|r| !r.is_empty()),
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Review {
            id,
            verdict_id,
            reviewed_at: timestamp(reviewed_ms),
            reviewer: reviewer.to_owned(),
            action: review.action,
            before,
            after,
            reason: review
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        })
    }

    /// Quality figures over the records captured at or after `since`.
    pub fn kpis(&self, since: jiff::Timestamp) -> Result<Kpis, StoreError> {
        Ok(self
            .fold_kpis(since.as_millisecond(), i64::MAX, None)?
            .pop()
            .map(|(_, k)| k)
            .unwrap_or_default())
    }

    /// The figures of `[since, until)`, as a whole and hour by hour (hours with parts
    /// only, oldest first, each with its start).
    pub fn kpis_by_hour(
        &self,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<(Kpis, Vec<(jiff::Timestamp, Kpis)>), StoreError> {
        let (from, to) = (since.as_millisecond(), until.as_millisecond());
        let total = self
            .fold_kpis(from, to, None)?
            .pop()
            .map(|(_, k)| k)
            .unwrap_or_default();
        let hours = self.fold_kpis(from, to, Some(3_600_000))?;
        Ok((
            total,
            hours.into_iter().map(|(h, k)| (timestamp(h), k)).collect(),
        ))
    }

    /// KPIs of the records captured in `[since_ms, until_ms)`, in buckets of `bucket_ms`
    /// (one bucket when None), keyed by bucket start.
    fn fold_kpis(
        &self,
        since_ms: i64,
        until_ms: i64,
        bucket_ms: Option<i64>,
    ) -> Result<Vec<(i64, Kpis)>, StoreError> {
        let conn = self.lock();
        let mut labels = conn.prepare_cached(
            "SELECT coalesce(r.after, v.class, v.verdict), v.verdict,
                    r.id IS NOT NULL AND v.verdict <> 'uncertain',
                    r.id IS NOT NULL AND v.verdict <> 'uncertain'
                        AND r.after <> coalesce(v.class, v.verdict),
                    v.captured_ms
             FROM verdicts v
             LEFT JOIN reviews r ON r.id = (SELECT max(id) FROM reviews WHERE verdict_id = v.id)
             WHERE v.captured_ms >= ?1 AND v.captured_ms < ?2",
        )?;
        let mut buckets: BTreeMap<i64, (Kpis, BTreeMap<String, u64>)> = Default::default();
        let mut rows = labels.query([since_ms, until_ms])?;
        while let Some(row) = rows.next()? {
            let captured_ms: i64 = row.get(4)?;
            let bucket = bucket_ms.map_or(0, |b| captured_ms.div_euclid(b) * b);
            let (kpis, defects) = buckets.entry(bucket).or_default();
            let label: String = row.get(0)?;
            let verdict: String = row.get(1)?;
            let reviewed: bool = row.get(2)?;
            let overridden: bool = row.get(3)?;
            let at = timestamp(captured_ms);
            kpis.parts += 1;
            match label.as_str() {
                "good" => kpis.good += 1,
                "uncertain" => kpis.awaiting_review += 1,
                class => *defects.entry(class.to_owned()).or_default() += 1,
            }
            kpis.uncertain += u64::from(verdict == "uncertain");
            kpis.reviewed += u64::from(reviewed);
            kpis.overridden += u64::from(overridden);
            if reviewed && verdict == "defect" {
                kpis.reviewed_defects += 1;
                kpis.false_rejects += u64::from(label == "good");
            }
            if reviewed && verdict == "good" {
                kpis.reviewed_good += 1;
                kpis.escapes_found += u64::from(label != "good");
            }
            kpis.first = Some(kpis.first.map_or(at, |f| f.min(at)));
            kpis.last = Some(kpis.last.map_or(at, |l| l.max(at)));
        }
        Ok(buckets
            .into_iter()
            .map(|(bucket, (mut kpis, defects))| {
                kpis.defects = defects.into_iter().collect();
                kpis.defects
                    .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                (bucket, kpis)
            })
            .collect())
    }

    /// Every review of one record, oldest first: the audit trail.
    pub fn reviews(&self, verdict_id: i64) -> Result<Vec<Review>, StoreError> {
        let conn = self.lock();
        let reviews = conn
            .prepare_cached(&format!(
                "{SELECT_REVIEW} FROM reviews r WHERE r.verdict_id = ?1 ORDER BY r.id"
            ))?
            .query_map([verdict_id], |row| review_from_row(row, 0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(reviews)
    }

    /// Every record captured in `[since, until)` that has a review, oldest first, each
    /// with where its image is kept: the data set that reviews make (`inspecta
    /// export-dataset`). The image path is given even when retention (or a person) has
    /// deleted the file since; it is `None` only when no image was kept with the record.
    pub fn reviewed_parts(
        &self,
        since: Option<jiff::Timestamp>,
        until: Option<jiff::Timestamp>,
    ) -> Result<Vec<ReviewedPart>, StoreError> {
        let since_ms = since.map_or(i64::MIN, jiff::Timestamp::as_millisecond);
        let until_ms = until.map_or(i64::MAX, jiff::Timestamp::as_millisecond);
        let conn = self.lock();
        let records = conn
            .prepare_cached(&format!(
                "{SELECT_RECORD} WHERE r.id IS NOT NULL
                    AND v.captured_ms >= ?1 AND v.captured_ms < ?2
                 ORDER BY v.id"
            ))?
            .query_map([since_ms, until_ms], record_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut image = conn.prepare_cached("SELECT image FROM verdicts WHERE id = ?1")?;
        records
            .into_iter()
            .map(|record| {
                let relative: Option<String> = image.query_row([record.id], |row| row.get(0))?;
                Ok(ReviewedPart {
                    image: relative.map(|r| self.images.path(&r)),
                    record,
                })
            })
            .collect()
    }

    /// The image kept with a record, if any and still retained.
    pub fn image_path(&self, id: i64) -> Result<Option<PathBuf>, StoreError> {
        let conn = self.lock();
        let image: Option<String> = conn
            .query_row("SELECT image FROM verdicts WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()?
            .ok_or(StoreError::NotFound(id))?;
        Ok(image
            .map(|relative| self.images.path(&relative))
            .filter(|path| path.is_file()))
    }

    pub fn count(&self) -> Result<u64, StoreError> {
        let conn = self.lock();
        let n: i64 = conn.query_row("SELECT count(*) FROM verdicts", [], |row| row.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Bytes of part images currently kept.
    pub fn image_bytes(&self) -> u64 {
        self.images.bytes()
    }

    /// Applies the retention limits now; records keep their data, only the image goes.
    pub fn prune_images(&self) -> Result<usize, StoreError> {
        let deleted = self.images.prune(SystemTime::now())?;
        if deleted.is_empty() {
            return Ok(0);
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut forget =
                tx.prepare_cached("UPDATE verdicts SET image = NULL WHERE image = ?1")?;
            for relative in &deleted {
                forget.execute([relative])?;
            }
        }
        tx.commit()?;
        tracing::info!(
            images = deleted.len(),
            kept_bytes = self.images.bytes(),
            "old part images deleted (retention)"
        );
        Ok(deleted.len())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: the transaction
        // rolls back, so the connection is still good to use.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn open_database(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_error)?;
    // Reading the journal mode is the first real read, so a file that is not a database
    // fails here with SQLite's "file is not a database".
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        .map_err(open_error)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_error)?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_error)?;
    if found > schema::latest() {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            supported: schema::latest(),
        });
    }
    schema::migrate(&mut conn).map_err(open_error)?;
    Ok(conn)
}

const SELECT_REVIEW: &str = "SELECT r.id, r.verdict_id, r.reviewed_ms, r.reviewer, r.action, \
                             r.before, r.after, r.reason";

const SELECT_RECORD: &str = "SELECT v.id, v.captured_ms, v.station, v.part_id, v.sequence,
        v.origin, v.model_name, v.model_version, v.verdict, v.class, v.top_label,
        v.defect_score, v.probabilities, v.preprocess_ms, v.inference_ms, v.latency_ms,
        v.image IS NOT NULL,
        r.id, r.verdict_id, r.reviewed_ms, r.reviewer, r.action, r.before, r.after, r.reason
    FROM verdicts v
    LEFT JOIN reviews r
        ON r.id = (SELECT max(id) FROM reviews WHERE verdict_id = v.id)";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
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

fn review_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Review> {
    let action: String = row.get(first + 4)?;
    Ok(Review {
        id: row.get(first)?,
        verdict_id: row.get(first + 1)?,
        reviewed_at: timestamp(row.get(first + 2)?),
        reviewer: row.get(first + 3)?,
        action: if action == "override" {
            ReviewAction::Override
        } else {
            ReviewAction::Confirm
        },
        before: row.get(first + 5)?,
        after: row.get(first + 6)?,
        reason: row.get(first + 7)?,
    })
}

pub(crate) fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn timestamp(unix_ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(unix_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
