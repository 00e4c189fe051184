//! From the broker into the central store. A message is acknowledged to the broker only
//! once its row is committed, so while PostgreSQL is away the backlog waits in the broker
//! (persistent session, QoS 1), and a killed ingest loses nothing: the broker delivers again
//! what was not acknowledged, and the store's keys make a second delivery no second row.
//! Several ingest processes with the same `group` share the load (`$share/<group>/...`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttc::{Client, Connection, Event, MqttOptions, Packet, Publish, QoS};
use serde::Deserialize;

use crate::central::{Central, Stored};
use crate::payload::Kind;

/// `fleet.toml`: the broker to read from and the store to write to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub mqtt: BrokerConfig,
    pub postgres: PostgresConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Unique per ingest process: the broker keeps this session's backlog under it.
    pub client_id: String,
    /// Ingest processes in one group share the messages; each message goes to one of them.
    #[serde(default = "default_group")]
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

fn default_port() -> u16 {
    1883
}
fn default_group() -> String {
    "inspecta-ingest".into()
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

/// The most messages taken from the broker and not yet committed. The broker's own
/// in-flight limit (mosquitto: 20 per client) keeps it far below this.
const QUEUE: usize = 1024;
/// How long a failing PostgreSQL is left alone before the next try.
const RETRY: Duration = Duration::from_secs(2);

/// Counters for the log and the tests.
#[derive(Debug, Default)]
pub struct IngestCounts {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub store_failures: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("could not start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("batch must be at least 1")]
    Batch,
}

/// A running ingest: the broker thread and the store thread.
#[derive(Debug)]
pub struct Ingest {
    stop: Arc<AtomicBool>,
    counts: Arc<IngestCounts>,
    threads: Vec<JoinHandle<()>>,
}

impl Ingest {
    pub fn start(config: &IngestConfig) -> Result<Self, IngestError> {
        if config.postgres.batch == 0 {
            return Err(IngestError::Batch);
        }
        let mqtt = &config.mqtt;
        let mut options = MqttOptions::new(&mqtt.client_id, &mqtt.host, mqtt.port);
        // The broker keeps what was not acknowledged for this session across a restart.
        options.set_clean_session(false);
        options.set_manual_acks(true);
        options.set_keep_alive(Duration::from_secs(mqtt.keep_alive_s.max(5)));
        let password = std::env::var("INSPECTA_MQTT_PASSWORD")
            .ok()
            .or_else(|| mqtt.password.clone());
        if let Some(user) = &mqtt.username {
            options.set_credentials(user, password.unwrap_or_default());
        }
        let (client, connection) = Client::new(options, 64);
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(IngestCounts::default());
        let connection_generation = Arc::new(AtomicU64::new(0));
        let (taken, to_store) = sync_channel(QUEUE);
        let broker = BrokerSide {
            client: client.clone(),
            topics: Kind::ALL
                .iter()
                .map(|k| {
                    format!(
                        "$share/{}/{}/+/+/+/{}",
                        mqtt.group,
                        mqtt.prefix,
                        k.topic_name()
                    )
                })
                .collect(),
            generation: Arc::clone(&connection_generation),
            stop: Arc::clone(&stop),
            taken,
        };
        let store = StoreSide {
            client,
            url: with_password(&config.postgres.url),
            batch: config.postgres.batch,
            generation: connection_generation,
            stop: Arc::clone(&stop),
            counts: Arc::clone(&counts),
            to_store,
        };
        let threads = vec![
            std::thread::Builder::new()
                .name("ingest-broker".into())
                .spawn(move || broker.run(connection))
                .map_err(|e| IngestError::Thread("ingest-broker", e))?,
            std::thread::Builder::new()
                .name("ingest-store".into())
                .spawn(move || store.run())
                .map_err(|e| IngestError::Thread("ingest-store", e))?,
        ];
        Ok(Self {
            stop,
            counts,
            threads,
        })
    }

    pub fn counts(&self) -> &IngestCounts {
        &self.counts
    }

    /// Stops taking messages; what was taken and not committed is delivered again later.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn with_password(url: &str) -> String {
    match std::env::var("INSPECTA_POSTGRES_PASSWORD") {
        Ok(password) if !url.contains("password=") => format!("{url} password={password}"),
        _ => url.to_owned(),
    }
}

/// A message taken from the broker, with the connection it came on.
struct Taken {
    publish: Publish,
    generation: u64,
}

struct BrokerSide {
    client: Client,
    topics: Vec<String>,
    generation: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    taken: SyncSender<Taken>,
}

impl BrokerSide {
    fn run(self, mut connection: Connection) {
        let mut was_up = true;
        while !self.stop.load(Ordering::Relaxed) {
            match connection.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(session_present = ack.session_present, "ingest connected");
                    was_up = true;
                    self.subscribe();
                }
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    let generation = self.generation.load(Ordering::SeqCst);
                    if self
                        .taken
                        .send(Taken {
                            publish,
                            generation,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(error)) => {
                    if was_up {
                        tracing::warn!("broker: {error}; retrying");
                        was_up = false;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        let _ = self.client.disconnect();
    }

    fn subscribe(&self) {
        for topic in &self.topics {
            if let Err(e) = self.client.try_subscribe(topic, QoS::AtLeastOnce) {
                tracing::warn!("could not subscribe to {topic}: {e}");
            }
        }
    }
}

struct StoreSide {
    client: Client,
    url: String,
    batch: usize,
    generation: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    counts: Arc<IngestCounts>,
    to_store: Receiver<Taken>,
}

impl StoreSide {
    fn run(self) {
        let mut central: Option<Central> = None;
        while !self.stop.load(Ordering::Relaxed) {
            // Connected (and the schema migrated) before the first message, not at it.
            if central.is_none() {
                match Central::connect(&self.url) {
                    Ok(store) => central = Some(store),
                    Err(error) => {
                        self.counts.store_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("central store: {error}; retrying");
                        std::thread::sleep(RETRY);
                        continue;
                    }
                }
            }
            let Some(batch) = self.next_batch() else {
                continue;
            };
            // The batch is kept until it is committed: PostgreSQL away is a wait, not a loss.
            while !self.stop.load(Ordering::Relaxed) {
                match self.commit(&mut central, &batch) {
                    Ok(()) => break,
                    Err(error) => {
                        self.counts.store_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            messages = batch.len(),
                            "central store: {error}; the messages wait in the broker until it is back"
                        );
                        central = None;
                        std::thread::sleep(RETRY);
                    }
                }
            }
        }
    }

    /// The next messages: waits for one, then takes what is already there up to `batch`.
    fn next_batch(&self) -> Option<Vec<Taken>> {
        let first = match self.to_store.recv_timeout(Duration::from_millis(200)) {
            Ok(taken) => taken,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => {
                self.stop.store(true, Ordering::Relaxed);
                return None;
            }
        };
        let mut batch = vec![first];
        while batch.len() < self.batch {
            match self.to_store.try_recv() {
                Ok(taken) => batch.push(taken),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    fn commit(
        &self,
        central: &mut Option<Central>,
        batch: &[Taken],
    ) -> Result<(), crate::central::CentralError> {
        let store = match central {
            Some(store) if !store.is_closed() => store,
            _ => central.insert(Central::connect(&self.url)?),
        };
        let messages: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|t| (t.publish.topic.clone(), t.publish.payload.to_vec()))
            .collect();
        let outcomes = store.store(&messages)?;
        for (taken, outcome) in batch.iter().zip(&outcomes) {
            let counter = match outcome {
                Stored::New => &self.counts.stored,
                Stored::Known => &self.counts.duplicates,
                Stored::Rejected(why) => {
                    tracing::warn!(topic = taken.publish.topic, "dead letter: {why}");
                    &self.counts.rejected
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.acknowledge(taken);
        }
        Ok(())
    }

    /// Acknowledges a committed message on the connection it came on. After a reconnect
    /// the broker delivers it again, and it is a known row then.
    fn acknowledge(&self, taken: &Taken) {
        if taken.generation != self.generation.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.client.try_ack(&taken.publish) {
            tracing::debug!("acknowledgement not sent ({e}); the broker delivers again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_a_misspelt_key_is_refused() {
        let example = include_str!("../../samples/fleet.example.toml");
        let config: IngestConfig = toml::from_str(example).expect("the example parses");
        assert_eq!(config.mqtt.group, "inspecta-ingest");
        assert_eq!(config.postgres.batch, 200);
        let misspelt = example.replace("batch = 200", "bacth = 200");
        let error = toml::from_str::<IngestConfig>(&misspelt).expect_err("unknown key");
        assert!(error.to_string().contains("bacth"), "{error}");
    }
}
