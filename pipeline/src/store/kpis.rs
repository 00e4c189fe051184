//! Quality figures over a span of records (first-pass yield, uncertain, override and
//! false-reject rates, the escape estimate), in total and hour by hour.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{RecordStore, StoreError, timestamp};

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

impl RecordStore {
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
        let conn = self.read();
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
}
