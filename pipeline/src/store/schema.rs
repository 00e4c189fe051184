//! The SQLite schema, versioned with `PRAGMA user_version` so a station upgraded in place
//! migrates its existing records instead of starting a new file.

use rusqlite::Connection;

/// Each entry moves the schema one version up; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE verdicts (
        -- AUTOINCREMENT: ids are never reused, so a consumer can deduplicate by id even
        -- after old records are deleted.
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        captured_ms   INTEGER NOT NULL,
        station       TEXT NOT NULL,
        part_id       TEXT,
        sequence      INTEGER,
        origin        TEXT,
        model_name    TEXT NOT NULL,
        model_version TEXT NOT NULL,
        verdict       TEXT NOT NULL CHECK (verdict IN ('good', 'defect', 'uncertain')),
        class         TEXT,
        top_label     TEXT NOT NULL,
        defect_score  REAL NOT NULL,
        probabilities TEXT NOT NULL,
        preprocess_ms REAL NOT NULL,
        inference_ms  REAL NOT NULL,
        latency_ms    REAL,
        image         TEXT
    );
    CREATE INDEX verdicts_captured ON verdicts (captured_ms);
    CREATE INDEX verdicts_part ON verdicts (part_id);
    CREATE INDEX verdicts_image ON verdicts (image) WHERE image IS NOT NULL;
    CREATE TABLE reviews (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        verdict_id  INTEGER NOT NULL REFERENCES verdicts (id),
        reviewed_ms INTEGER NOT NULL,
        reviewer    TEXT NOT NULL,
        action      TEXT NOT NULL CHECK (action IN ('confirm', 'override')),
        before      TEXT NOT NULL,
        after       TEXT NOT NULL,
        reason      TEXT
    );
    CREATE INDEX reviews_verdict ON reviews (verdict_id);
",
    "
    CREATE TABLE changes (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        changed_ms  INTEGER NOT NULL,
        who         TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('thresholds', 'model')),
        before      TEXT NOT NULL,
        after       TEXT NOT NULL
    );
",
    "
    -- Per plant link and stream, the last id the far side acknowledged.
    CREATE TABLE forwarded (
        link    TEXT NOT NULL,
        stream  TEXT NOT NULL CHECK (stream IN ('verdicts', 'reviews', 'alarms')),
        last_id INTEGER NOT NULL,
        PRIMARY KEY (link, stream)
    );
    -- SPC alarms: a run rule broken on a control chart, raised once per chart, rule and
    -- subgroup.
    CREATE TABLE alarms (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        raised_ms  INTEGER NOT NULL,
        chart      TEXT NOT NULL,
        rule       TEXT NOT NULL,
        subgroup   INTEGER NOT NULL,
        proportion REAL NOT NULL,
        centre     REAL NOT NULL,
        upper      REAL NOT NULL,
        message    TEXT NOT NULL,
        UNIQUE (chart, rule, subgroup)
    );
",
    "
    -- Why an uncertain part went to the operator (low_confidence, no_part, too_small,
    -- out_of_distribution); NULL for good and defect verdicts and for older records.
    ALTER TABLE verdicts ADD COLUMN reason TEXT;
    -- Distance to the model's training images over its threshold (above 1: unfamiliar).
    ALTER TABLE verdicts ADD COLUMN familiarity REAL;
",
];

/// Brings the database up to the newest schema, each step in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (version, sql) in (1..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version this build writes; a newer file is refused rather than misread.
pub fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}
