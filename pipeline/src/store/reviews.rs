//! Reviews: an inspector's decision on a stored verdict, the audit trail of decisions, and
//! the reviewed parts that become the next model's data set.

use std::path::PathBuf;
use std::time::SystemTime;

use rusqlite::{OptionalExtension as _, Row, params};
use serde::{Deserialize, Serialize};

use super::records::{Record, SELECT_RECORD, record_from_row};
use super::{RecordStore, StoreError, images, timestamp, unix_ms};

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

/// A reviewed record and the file its part image is (or was) kept in.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewedPart {
    /// Its `review` is the latest one, and `label` that review's answer.
    pub record: Record,
    pub image: Option<PathBuf>,
}

/// A name, not a document: the audit trail stays readable and the store small.
const MAX_REVIEWER_CHARS: usize = 100;
/// A reason code or a sentence.
const MAX_REASON_CHARS: usize = 1000;

fn check_length(field: &str, text: &str, max: usize) -> Result<(), StoreError> {
    let chars = text.chars().count();
    if chars > max {
        return Err(StoreError::Invalid(format!(
            "the {field} is {chars} characters long; at most {max} are kept"
        )));
    }
    Ok(())
}

impl RecordStore {
    /// Records an inspector's decision. `before` is what the part was held to be until now
    /// (the previous review's answer, else the model's verdict).
    pub fn review(&self, verdict_id: i64, review: &NewReview) -> Result<Review, StoreError> {
        let reviewer = review.reviewer.trim();
        if reviewer.is_empty() {
            return Err(StoreError::Invalid("a review needs a reviewer".into()));
        }
        check_length("reviewer", reviewer, MAX_REVIEWER_CHARS)?;
        if let Some(reason) = &review.reason {
            check_length("reason", reason, MAX_REASON_CHARS)?;
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let (before, image): (String, Option<String>) = tx
            .query_row(
                "SELECT coalesce(
                    (SELECT after FROM reviews WHERE verdict_id = v.id ORDER BY id DESC LIMIT 1),
                    v.class, v.verdict), v.image
                 FROM verdicts v WHERE v.id = ?1",
                [verdict_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
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
        let commit = |kept: Option<&str>| -> Result<(), StoreError> {
            if let Some(kept) = kept {
                tx.execute(
                    "UPDATE verdicts SET image = ?1 WHERE id = ?2",
                    params![kept, verdict_id],
                )?;
            }
            tx.commit()?;
            Ok(())
        };
        // A reviewed part is training data whatever the answer (export-dataset takes
        // confirmed parts too), so its image leaves the ring in the review's transaction.
        match image.as_deref().filter(|i| images::in_ring(i)) {
            Some(ring) => {
                self.images.promote(ring, commit)?;
                drop(conn);
                // The review is committed: retention errors are only logged.
                if let Err(e) = self.prune_images() {
                    tracing::error!("cannot apply the image retention limits: {e}");
                }
            }
            None => commit(None)?,
        }
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
}

pub(super) const SELECT_REVIEW: &str = "SELECT r.id, r.verdict_id, r.reviewed_ms, r.reviewer, r.action, \
                             r.before, r.after, r.reason";

pub(super) fn review_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Review> {
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
