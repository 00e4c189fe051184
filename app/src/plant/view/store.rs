//! The plant view's questions to the central store. One connection, made again when
//! PostgreSQL went away; every query has a time limit, so a slow database is an error page,
//! not a browser left waiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Row};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the central store: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the central store did not answer within {0:?}")]
    Timeout(Duration),
}

/// Where in the plant a page looks: everything, a site, a line, or one station.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub site: Option<String>,
    pub line: Option<String>,
    pub station: Option<String>,
}

/// `$1..$3` of every scoped query: a level left out matches everything.
const SCOPED: &str = "($1::text IS NULL OR site = $1) AND ($2::text IS NULL OR line = $2) \
                      AND ($3::text IS NULL OR station = $3)";

impl Scope {
    /// The column that names the level below this one.
    fn below(&self) -> &'static str {
        match (&self.site, &self.line) {
            (None, _) => "site",
            (Some(_), None) => "line",
            (Some(_), Some(_)) => "station",
        }
    }
}

/// One row of a page's table: a site, a line or a station, this shift.
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub stations: i64,
    pub online: i64,
    pub parts: i64,
    pub good: i64,
    pub uncertain: i64,
    pub overridden: i64,
    /// Called a defect by the model, held good by a person.
    pub false_rejects: i64,
    pub defects_called: i64,
    pub alarms: i64,
    pub last_part: Option<String>,
}

/// A station's presence and what it last ran.
#[derive(Debug, Clone)]
pub struct Presence {
    pub station: String,
    pub state: String,
    pub since: String,
    pub api: Option<String>,
    pub model: Option<String>,
}

/// Where one model rollout stands at a station.
#[derive(Debug, Clone)]
pub struct RolloutRow {
    pub rollout: String,
    pub phase: String,
    pub model: String,
    pub judged: i64,
    pub shadow_parts: i64,
    pub agreement: Option<f64>,
    pub reason: Option<String>,
    pub who: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone)]
pub struct ShiftYield {
    pub shift: String,
    pub parts: i64,
    pub good: i64,
}

#[derive(Debug, Clone)]
pub struct Alarm {
    pub site: String,
    pub line: String,
    pub station: String,
    pub raised_at: String,
    pub chart: String,
    pub rule: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub id: i64,
    pub captured_at: String,
    pub verdict: String,
    pub label: String,
    pub defect_score: Option<f64>,
    pub model: Option<String>,
    pub review: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Review {
    pub reviewed_at: String,
    pub reviewer: String,
    pub action: String,
    pub before: String,
    pub after: String,
    pub reason: Option<String>,
}

/// One part with its whole record as the station published it.
#[derive(Debug, Clone)]
pub struct PartRecord {
    pub part: Part,
    pub payload: String,
    pub reviews: Vec<Review>,
}

#[derive(Debug)]
pub struct Store {
    url: String,
    query_timeout: Duration,
    client: Mutex<Option<Arc<Client>>>,
}

impl Store {
    pub fn new(url: String, query_timeout: Duration) -> Self {
        Self {
            url,
            query_timeout,
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut held = self.client.lock().await;
        if let Some(client) = held.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(client));
        }
        let (client, connection) =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(&self.url, NoTls))
                .await
                .map_err(|_| StoreError::Timeout(CONNECT_TIMEOUT))??;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("plant view: the central store connection ended: {e}");
            }
        });
        let limit = self.query_timeout.as_millis();
        client
            .batch_execute(&format!(
                "SET TIME ZONE 'UTC'; SET statement_timeout = {limit}; \
                 SET default_transaction_read_only = on"
            ))
            .await?;
        let client = Arc::new(client);
        *held = Some(Arc::clone(&client));
        Ok(client)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        // The server's statement_timeout ends the query; this ends a dead connection's wait.
        let limit = self.query_timeout + CONNECT_TIMEOUT;
        tokio::time::timeout(limit, client.query(sql, params))
            .await
            .map_err(|_| StoreError::Timeout(limit))?
            .map_err(StoreError::from)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    /// The levels below `scope` in the given shift (the current one when None).
    pub async fn summaries(
        &self,
        scope: &Scope,
        shift: Option<&str>,
    ) -> Result<Vec<Summary>, StoreError> {
        let key = scope.below();
        let sql = format!(
            "WITH st AS (
                SELECT {key} AS key, count(*) AS stations,
                       count(*) FILTER (WHERE state = 'online') AS online
                FROM station_status WHERE {SCOPED} GROUP BY 1),
             k AS (
                SELECT {key} AS key, count(*) AS parts,
                       count(*) FILTER (WHERE final_label = 'good') AS good,
                       count(*) FILTER (WHERE verdict = 'uncertain') AS uncertain,
                       count(*) FILTER (WHERE review_action = 'override') AS overridden,
                       count(*) FILTER (WHERE verdict = 'defect' AND reviewed_as = 'good') AS false_rejects,
                       count(*) FILTER (WHERE verdict = 'defect') AS defects_called,
                       utc_text(max(captured_at)) AS last_part
                FROM parts
                WHERE shift = COALESCE(($4::text)::timestamptz, shift_start(now())) AND {SCOPED}
                GROUP BY 1),
             a AS (
                SELECT {key} AS key, count(*) AS alarms FROM alarms
                WHERE raised_at > now() - interval '24 hours' AND {SCOPED} GROUP BY 1)
             SELECT key, COALESCE(stations, 0), COALESCE(online, 0), COALESCE(parts, 0),
                    COALESCE(good, 0), COALESCE(uncertain, 0), COALESCE(overridden, 0),
                    COALESCE(false_rejects, 0), COALESCE(defects_called, 0),
                    COALESCE(alarms, 0), last_part
             FROM (SELECT key FROM st UNION SELECT key FROM k) n
             LEFT JOIN st USING (key) LEFT JOIN k USING (key) LEFT JOIN a USING (key)
             ORDER BY key"
        );
        let rows = self
            .query(&sql, &[&scope.site, &scope.line, &scope.station, &shift])
            .await?;
        Ok(rows
            .iter()
            .map(|r| Summary {
                name: r.get(0),
                stations: r.get(1),
                online: r.get(2),
                parts: r.get(3),
                good: r.get(4),
                uncertain: r.get(5),
                overridden: r.get(6),
                false_rejects: r.get(7),
                defects_called: r.get(8),
                alarms: r.get(9),
                last_part: r.get(10),
            })
            .collect())
    }

    /// Each station of a line (or the one station of `scope`): presence and last model.
    pub async fn presence(&self, scope: &Scope) -> Result<Vec<Presence>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT s.station, s.state, utc_text(s.since), s.payload->>'api',
                            (SELECT v.model FROM verdicts v
                             WHERE v.site = s.site AND v.line = s.line AND v.station = s.station
                             ORDER BY v.id DESC LIMIT 1)
                     FROM station_status s WHERE {SCOPED} ORDER BY s.station"
                ),
                &[&scope.site, &scope.line, &scope.station],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Presence {
                station: r.get(0),
                state: r.get(1),
                since: r.get(2),
                api: r.get(3),
                model: r.get(4),
            })
            .collect())
    }

    /// The station's rollouts, newest first.
    pub async fn rollouts(&self, scope: &Scope, limit: i64) -> Result<Vec<RolloutRow>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT rollout, phase, concat_ws(' ', payload->>'model', payload->>'version'),
                            COALESCE((payload->>'judged')::bigint, 0),
                            COALESCE((payload->>'shadow_parts')::bigint, 0),
                            (payload->>'agreement')::double precision,
                            payload->>'reason', payload->>'who', utc_text(at)
                     FROM rollout_states WHERE {SCOPED} ORDER BY at DESC LIMIT $4"
                ),
                &[&scope.site, &scope.line, &scope.station, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| RolloutRow {
                rollout: r.get(0),
                phase: r.get(1),
                model: r.get(2),
                judged: r.get(3),
                shadow_parts: r.get(4),
                agreement: r.get(5),
                reason: r.get(6),
                who: r.get(7),
                at: r.get(8),
            })
            .collect())
    }

    /// Yield per shift over the last week, oldest first.
    pub async fn yield_by_shift(&self, scope: &Scope) -> Result<Vec<ShiftYield>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT utc_text(shift), count(*), count(*) FILTER (WHERE final_label = 'good')
                     FROM parts
                     WHERE shift > shift_start(now()) - interval '7 days' AND {SCOPED}
                     GROUP BY shift ORDER BY shift"
                ),
                &[&scope.site, &scope.line, &scope.station],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ShiftYield {
                shift: r.get(0),
                parts: r.get(1),
                good: r.get(2),
            })
            .collect())
    }

    /// The defects held in a shift, most frequent first (the `fleet_defect_pareto` rule).
    pub async fn pareto(
        &self,
        scope: &Scope,
        shift: Option<&str>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT final_label, count(*) FROM parts
                     WHERE shift = COALESCE(($4::text)::timestamptz, shift_start(now())) AND {SCOPED}
                       AND final_label <> 'good' AND (verdict <> 'uncertain' OR reviewed_as IS NOT NULL)
                     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 12"
                ),
                &[&scope.site, &scope.line, &scope.station, &shift],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn alarms(&self, scope: &Scope, limit: i64) -> Result<Vec<Alarm>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT site, line, station, utc_text(raised_at), chart, rule, message
                     FROM alarms WHERE {SCOPED} ORDER BY raised_at DESC LIMIT $4"
                ),
                &[&scope.site, &scope.line, &scope.station, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Alarm {
                site: r.get(0),
                line: r.get(1),
                station: r.get(2),
                raised_at: r.get(3),
                chart: r.get(4),
                rule: r.get(5),
                message: r.get(6),
            })
            .collect())
    }

    /// A station's newest parts, newest first.
    pub async fn recent_parts(&self, scope: &Scope, limit: i64) -> Result<Vec<Part>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT id, utc_text(captured_at), verdict, final_label, defect_score, model,
                            review_action
                     FROM parts WHERE {SCOPED} ORDER BY id DESC LIMIT $4"
                ),
                &[&scope.site, &scope.line, &scope.station, &limit],
            )
            .await?;
        Ok(rows.iter().map(part).collect())
    }

    pub async fn part(&self, scope: &Scope, id: i64) -> Result<Option<PartRecord>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT p.id, utc_text(p.captured_at), p.verdict, p.final_label, p.defect_score,
                            p.model, p.review_action, jsonb_pretty(v.payload)
                     FROM parts p JOIN verdicts v USING (site, line, station, id)
                     WHERE {SCOPED} AND id = $4"
                ),
                &[&scope.site, &scope.line, &scope.station, &id],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let reviews = self
            .query(
                &format!(
                    "SELECT utc_text(reviewed_at), reviewer, action, before, after, reason
                     FROM reviews WHERE {SCOPED} AND verdict_id = $4 ORDER BY id"
                ),
                &[&scope.site, &scope.line, &scope.station, &id],
            )
            .await?;
        Ok(Some(PartRecord {
            part: part(row),
            payload: row.get(7),
            reviews: reviews
                .iter()
                .map(|r| Review {
                    reviewed_at: r.get(0),
                    reviewer: r.get(1),
                    action: r.get(2),
                    before: r.get(3),
                    after: r.get(4),
                    reason: r.get(5),
                })
                .collect(),
        }))
    }

    /// Where the station said its API is.
    pub async fn station_api(&self, scope: &Scope) -> Result<Option<String>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT payload->>'api' FROM station_status WHERE {SCOPED}"),
                &[&scope.site, &scope.line, &scope.station],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }
}

fn part(r: &Row) -> Part {
    Part {
        id: r.get(0),
        captured_at: r.get(1),
        verdict: r.get(2),
        label: r.get(3),
        defect_score: r.get(4),
        model: r.get(5),
        review: r.get(6),
    }
}
