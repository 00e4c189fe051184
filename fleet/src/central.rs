//! The central store on PostgreSQL: versioned migrations, and idempotent writes keyed by
//! site, line, station and the station's own id.

use postgres::{Client, NoTls, Transaction};

use crate::payload::{Kind, Message, Rejection};

/// Every migration, in order; the number is the schema version it brings the store to.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_central_store.sql")),
    (2, include_str!("../migrations/0002_plant_view.sql")),
    (3, include_str!("../migrations/0003_rollouts.sql")),
];

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    #[error(
        "the central store is at schema version {found}, newer than this build knows ({known}): \
         upgrade inspecta"
    )]
    TooNew { found: i32, known: i32 },
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A new row.
    New,
    /// Already there (a redelivery), or an older state than the one kept.
    Known,
    /// Kept in the dead letters, with why.
    Rejected(Rejection),
}

/// A station and the API address it announced with its presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub site: String,
    pub line: String,
    pub station: String,
    pub api: String,
}

/// A connection to the central store.
pub struct Central {
    client: Client,
}

impl std::fmt::Debug for Central {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Central")
            .field("closed", &self.client.is_closed())
            .finish()
    }
}

impl Central {
    /// Connects and brings the schema up to date.
    pub fn connect(url: &str) -> Result<Self, CentralError> {
        let mut client = Client::connect(url, NoTls)?;
        migrate(&mut client)?;
        Ok(Self { client })
    }

    /// Stores a batch in one transaction: every row is committed, or none is.
    pub fn store(&mut self, batch: &[(String, Vec<u8>)]) -> Result<Vec<Stored>, CentralError> {
        let mut tx = self.client.transaction()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (topic, payload) in batch {
            let outcome = match Message::parse(topic, payload) {
                Ok(message) => write(&mut tx, &message)?,
                Err(why) => Err(why),
            };
            let outcome = match outcome {
                Ok(true) => Stored::New,
                Ok(false) => Stored::Known,
                Err(why) => {
                    let reason = why.to_string();
                    tx.execute(
                        "INSERT INTO dead_letters (topic, payload, reason) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                        &[topic, payload, &reason],
                    )?;
                    Stored::Rejected(why)
                }
            };
            outcomes.push(outcome);
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// Every station that announced where its API is, with that address.
    pub fn announced_stations(&mut self) -> Result<Vec<Announced>, CentralError> {
        let rows = self.client.query(
            "SELECT site, line, station, payload->>'api' FROM station_status \
             WHERE payload ? 'api' ORDER BY site, line, station",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|row| Announced {
                site: row.get(0),
                line: row.get(1),
                station: row.get(2),
                api: row.get(3),
            })
            .collect())
    }

    /// Every station the store has heard from (its presence), as (site, line, station).
    pub fn stations(&mut self) -> Result<Vec<(String, String, String)>, CentralError> {
        let rows = self.client.query(
            "SELECT site, line, station FROM station_status ORDER BY site, line, station",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect())
    }

    /// Whether the connection is still usable (after an error, a new one is needed).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

fn migrate(client: &mut Client) -> Result<(), CentralError> {
    let mut tx = client.transaction()?;
    // Two ingest processes starting together: one migrates, the other waits for it.
    tx.execute("SELECT pg_advisory_xact_lock(7317001)", &[])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )?;
    let found: i32 = tx
        .query_one(
            "SELECT COALESCE(max(version), 0) FROM schema_migrations",
            &[],
        )?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if found > known {
        return Err(CentralError::TooNew { found, known });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )?;
        tracing::info!(version, "central store migrated");
    }
    tx.commit()?;
    Ok(())
}

/// One message into its table: `Ok(true)` a new row, `Ok(false)` known already, `Err` a
/// message the store cannot take (PostgreSQL errors abort the whole batch instead).
fn write(tx: &mut Transaction<'_>, m: &Message) -> Result<Result<bool, Rejection>, CentralError> {
    let statement = match statement(m) {
        Ok(statement) => statement,
        Err(why) => return Ok(Err(why)),
    };
    let o = &m.origin;
    // Serialized straight from the parsed body: no copy of it per message.
    let body = postgres::types::Json(&m.body);
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        vec![&o.site, &o.line, &o.station, &body];
    params.extend(
        statement
            .params
            .iter()
            .map(|p| -> &(dyn postgres::types::ToSql + Sync) { p.as_ref() }),
    );
    let rows = tx.execute(statement.sql, &params)?;
    Ok(Ok(rows == 1))
}

struct Statement {
    sql: &'static str,
    params: Vec<Box<dyn postgres::types::ToSql + Sync>>,
}

/// The insert for a message's kind, with its key columns read (and checked) from the body.
fn statement(m: &Message) -> Result<Statement, Rejection> {
    let text = |f| m.text(f).map(str::to_owned);
    // Checked here, handed over as RFC 3339 text: `($n::text)::timestamptz` in the SQL.
    let time = |f| m.time(f).map(|t| t.to_string());
    let (sql, params): (&'static str, Vec<Box<dyn postgres::types::ToSql + Sync>>) = match m.kind {
        Kind::Verdict => (
            "INSERT INTO verdicts (site, line, station, payload, id, captured_at, verdict, label, \
             defect_score, model) VALUES ($1, $2, $3, $4, $5, ($6::text)::timestamptz, $7, $8, $9, $10) \
             ON CONFLICT DO NOTHING",
            vec![
                Box::new(m.id()?),
                Box::new(time("captured_at")?),
                Box::new(text("verdict")?),
                Box::new(text("label")?),
                Box::new(
                    m.body
                        .get("defect_score")
                        .and_then(serde_json::Value::as_f64),
                ),
                Box::new(
                    m.body
                        .get("model")
                        .and_then(|model| model.get("name"))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned),
                ),
            ],
        ),
        Kind::Review => (
            "INSERT INTO reviews (site, line, station, payload, id, verdict_id, reviewed_at, \
             reviewer, action, before, after, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, ($7::text)::timestamptz, $8, $9, $10, $11, $12) \
             ON CONFLICT DO NOTHING",
            vec![
                Box::new(m.id()?),
                Box::new(m.number("verdict_id")?),
                Box::new(time("reviewed_at")?),
                Box::new(text("reviewer")?),
                Box::new(text("action")?),
                Box::new(text("before")?),
                Box::new(text("after")?),
                Box::new(m.optional_text("reason").map(str::to_owned)),
            ],
        ),
        Kind::Alarm => (
            "INSERT INTO alarms (site, line, station, payload, id, raised_at, chart, rule, message) \
             VALUES ($1, $2, $3, $4, $5, ($6::text)::timestamptz, $7, $8, $9) ON CONFLICT DO NOTHING",
            vec![
                Box::new(m.id()?),
                Box::new(time("raised_at")?),
                Box::new(text("chart")?),
                Box::new(text("rule")?),
                Box::new(text("message")?),
            ],
        ),
        Kind::Kpi => (
            "INSERT INTO kpi_reports (site, line, station, payload, until) \
             VALUES ($1, $2, $3, $4, ($5::text)::timestamptz) ON CONFLICT DO NOTHING",
            vec![Box::new(time("until")?)],
        ),
        // A retained state delivered late must not overwrite a newer one.
        Kind::Status => (
            "INSERT INTO station_status AS s (site, line, station, payload, state, since) \
             VALUES ($1, $2, $3, $4, $5, ($6::text)::timestamptz) \
             ON CONFLICT (site, line, station) DO UPDATE \
             SET state = EXCLUDED.state, since = EXCLUDED.since, payload = EXCLUDED.payload, \
                 received_at = now() \
             WHERE s.since < EXCLUDED.since",
            vec![Box::new(text("state")?), Box::new(time("since")?)],
        ),
        // The same: a rollout's state is retained, and each report carries its time.
        Kind::Rollout => (
            "INSERT INTO rollout_states AS r (site, line, station, payload, rollout, phase, at) \
             VALUES ($1, $2, $3, $4, $5, $6, ($7::text)::timestamptz) \
             ON CONFLICT (site, line, station, rollout) DO UPDATE \
             SET phase = EXCLUDED.phase, at = EXCLUDED.at, payload = EXCLUDED.payload, \
                 received_at = now() \
             WHERE r.at < EXCLUDED.at",
            vec![
                Box::new(text("rollout")?),
                Box::new(text("phase")?),
                Box::new(time("at")?),
            ],
        ),
    };
    Ok(Statement { sql, params })
}
