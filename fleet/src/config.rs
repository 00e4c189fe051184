//! `fleet.toml`: one file for the plant's central half. The ingest reads `[mqtt]`,
//! `[postgres]` and `[prometheus]`; the plant view reads `[postgres]` and `[view]`; model
//! rollouts read `[mqtt]`'s broker and `[rollout]`'s account.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The central broker; only the ingest needs it.
    pub mqtt: Option<BrokerConfig>,
    pub postgres: PostgresConfig,
    #[serde(default)]
    pub prometheus: PrometheusConfig,
    /// The plant view (`inspecta fleet serve`).
    pub view: Option<ViewConfig>,
    /// The account `inspecta fleet rollout|approve|rollback` command stations with.
    pub rollout: Option<CommanderConfig>,
}

/// A broker account that commands stations, on `[mqtt]`'s broker. Never the ingest's: a
/// broker that takes the user name as the client id (the shipped mosquitto config) would end
/// the ingest's session, and its backlog, when the same user connects again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommanderConfig {
    pub client_id: String,
    pub username: Option<String>,
    /// Better in the environment (`[rollout]`: `INSPECTA_ROLLOUT_PASSWORD`; the view's:
    /// `INSPECTA_VIEW_MQTT_PASSWORD`) than in the file.
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Unique per ingest process: the broker keeps this session's backlog under it.
    pub client_id: String,
    /// Empty (the default): each ingest holds its own persistent subscription and stores
    /// every message (the store's keys make the second copy no row), so two ingests are
    /// redundancy. A group shares the messages (`$share/<group>/...`), each to one ingest:
    /// only on a broker that keeps shared subscriptions across its own restart. Mosquitto
    /// 2.0 does not: until the ingests subscribe again, what the stations publish is dropped
    /// (measured by `make bench-fleet`). RabbitMQ 3.10 has no shared subscriptions at all.
    #[serde(default)]
    pub group: String,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    pub username: Option<String>,
    /// Better in the environment (`INSPECTA_MQTT_PASSWORD`) than in the file.
    pub password: Option<String>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A libpq connection string, e.g. `host=/run/postgresql dbname=inspecta user=inspecta`;
    /// `INSPECTA_POSTGRES_PASSWORD` is added as the password when set.
    pub url: String,
    /// At most this many messages per transaction.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

impl PostgresConfig {
    /// The connection string with the password from the environment, when it has none.
    pub fn url_with_password(&self) -> String {
        match std::env::var("INSPECTA_POSTGRES_PASSWORD") {
            Ok(password) if !self.url.contains("password=") => {
                format!("{} password={password}", self.url)
            }
            _ => self.url.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// A file-based discovery file (`file_sd_configs`) the ingest keeps listing every
    /// station that announced its API (`[mqtt] api_url` at the station).
    pub targets: Option<PathBuf>,
    /// Where the ingest serves its own metrics (`/metrics`), e.g. `0.0.0.0:9464`.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    #[serde(default = "default_view_listen")]
    pub listen: SocketAddr,
    /// Who may sign in: a users file written by `inspecta users add`.
    pub users: PathBuf,
    /// The stations' API token, to fetch part images; better in `INSPECTA_STATION_TOKEN`.
    pub station_token: Option<String>,
    /// Mark the session cookie `Secure`: set it when a TLS proxy fronts the view.
    #[serde(default)]
    pub secure_cookie: bool,
    /// How long a sign-in lasts, in hours.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// The account the Approve button sends approvals with (on `[mqtt]`'s broker); none:
    /// the view shows rollouts but approves nothing.
    pub commander: Option<CommanderConfig>,
}

fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    "inspecta".into()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_batch() -> usize {
    200
}
fn default_view_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8090))
}
fn default_session_hours() -> u64 {
    12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_a_misspelt_key_is_refused() {
        let example = include_str!("../../samples/fleet.example.toml");
        let config: FleetConfig = toml::from_str(example).expect("the example parses");
        let mqtt = config.mqtt.expect("[mqtt]");
        assert_eq!(mqtt.group, "", "no shared subscription unless asked for");
        assert_eq!(config.postgres.batch, 200);
        assert!(config.prometheus.targets.is_some());
        let view = config.view.expect("[view]");
        assert_eq!(view.session_hours, 12);
        assert!(view.commander.is_some(), "approvals in the view");
        assert!(config.rollout.is_some(), "[rollout]");
        let misspelt = example.replace("batch = 200", "bacth = 200");
        let error = toml::from_str::<FleetConfig>(&misspelt).expect_err("unknown key");
        assert!(error.to_string().contains("bacth"), "{error}");
    }
}
