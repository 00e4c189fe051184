//! Store-and-forward for plant links: the records and reviews themselves are the outbox.
//! Each link keeps a cursor (the last id the far side acknowledged) in the same database,
//! so nothing is copied, a link that was down for a day sends the day in order, and a
//! restart resumes where the broker last said "got it".

use rusqlite::OptionalExtension as _;

use super::records::{SELECT_RECORD, record_from_row};
use super::reviews::{SELECT_REVIEW, review_from_row};
use super::{Record, RecordStore, Review, StoreError};

/// What a plant link forwards; each has its own cursor per link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Verdicts,
    Reviews,
    Alarms,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Self::Verdicts => "verdicts",
            Self::Reviews => "reviews",
            Self::Alarms => "alarms",
        }
    }
}

impl RecordStore {
    /// The last id of `stream` that `link` has delivered; 0 before the first.
    pub fn forwarded(&self, link: &str, stream: Stream) -> Result<i64, StoreError> {
        let conn = self.read();
        let id = conn
            .prepare_cached("SELECT last_id FROM forwarded WHERE link = ?1 AND stream = ?2")?
            .query_row([link, stream.as_str()], |row| row.get(0))
            .optional()?;
        Ok(id.unwrap_or(0))
    }

    /// Moves the cursor once the far side has acknowledged everything up to `last_id`.
    pub fn set_forwarded(
        &self,
        link: &str,
        stream: Stream,
        last_id: i64,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO forwarded (link, stream, last_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT (link, stream) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
        )?
        .execute(rusqlite::params![link, stream.as_str(), last_id])?;
        Ok(())
    }

    /// Records after `id`, oldest first: what a link still has to send.
    pub fn records_after(&self, id: i64, limit: u32) -> Result<Vec<Record>, StoreError> {
        let conn = self.read();
        let records = conn
            .prepare_cached(&format!(
                "{SELECT_RECORD} WHERE v.id > ?1 ORDER BY v.id LIMIT ?2"
            ))?
            .query_map(rusqlite::params![id, limit], record_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(records)
    }

    /// Reviews after `id`, oldest first.
    pub fn reviews_after(&self, id: i64, limit: u32) -> Result<Vec<Review>, StoreError> {
        let conn = self.read();
        let reviews = conn
            .prepare_cached(&format!(
                "{SELECT_REVIEW} FROM reviews r WHERE r.id > ?1 ORDER BY r.id LIMIT ?2"
            ))?
            .query_map(rusqlite::params![id, limit], |row| review_from_row(row, 0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(reviews)
    }
}
