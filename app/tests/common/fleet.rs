//! The plant's central half for the tests: `inspecta fleet ingest` on a real broker and a
//! real PostgreSQL.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::broker::Broker;
use super::postgres::Postgres;

/// Starts an ingest named `name` (its client id), with `extra` config after `[postgres]`.
pub fn ingest(dir: &Path, name: &str, broker: &Broker, postgres: &Postgres, extra: &str) -> Child {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"{name}\"\n\
             [postgres]\nurl = \"{}\"\n{extra}\n",
            broker.port,
            postgres.url()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .args(["fleet", "ingest", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Counts, or -1 while the store is away or not made yet.
pub fn try_count(postgres: &Postgres, sql: &str) -> i64 {
    postgres::Client::connect(&postgres.url(), postgres::NoTls)
        .ok()
        .and_then(|mut c| c.query_one(sql, &[]).ok())
        .map_or(-1, |row| row.get(0))
}
