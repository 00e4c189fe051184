//! From the broker into the central store. A message is acknowledged to the broker only
//! once its row is committed, so while PostgreSQL is away the backlog waits in the broker
//! (persistent session, QoS 1), and a killed ingest loses nothing: the broker delivers again
//! what was not acknowledged, and the store's keys make a second delivery no second row.
//! Two ingests each store every message (the keys keep one row), or, on a broker that keeps
//! shared subscriptions across its restart, share them as a `group` (`$share/<group>/...`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttc::{Client, Connection, Event, MqttOptions, Packet, Publish, QoS};

use crate::central::{Central, Stored};
use crate::config::FleetConfig;
use crate::payload::Kind;
use crate::targets;

/// The most messages taken from the broker and not yet committed. The broker's own
/// in-flight limit (mosquitto: 20 per client) keeps it far below this.
const QUEUE: usize = 1024;
/// How long a failing PostgreSQL is left alone before the next try.
const RETRY: Duration = Duration::from_secs(2);

/// Counters for the log, the ingest's metrics and the tests.
#[derive(Debug, Default)]
pub struct IngestCounts {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub store_failures: AtomicU64,
    /// Taken from the broker, not yet committed.
    pub pending: AtomicU64,
    /// Unix seconds of the last commit; 0 before the first.
    pub last_commit_s: AtomicU64,
    pub broker_connected: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("could not start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("[postgres] batch must be at least 1")]
    Batch,
    #[error("the ingest needs [mqtt], the central broker")]
    NoBroker,
}

/// A running ingest: the broker thread and the store thread.
#[derive(Debug)]
pub struct Ingest {
    stop: Arc<AtomicBool>,
    counts: Arc<IngestCounts>,
    threads: Vec<JoinHandle<()>>,
}

impl Ingest {
    pub fn start(config: &FleetConfig) -> Result<Self, IngestError> {
        if config.postgres.batch == 0 {
            return Err(IngestError::Batch);
        }
        let mqtt = config.mqtt.as_ref().ok_or(IngestError::NoBroker)?;
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
        // Room for an acknowledgement of every message taken and not yet acknowledged (the
        // queue, the batch in hand, one more): an acknowledgement that did not fit would leave
        // its message in flight at the broker, and once the broker's in-flight window is full
        // of those it sends this ingest nothing more. `make bench-fleet` found that stall.
        let (client, connection) = Client::new(options, QUEUE + config.postgres.batch + 64);
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(IngestCounts::default());
        let connection_generation = Arc::new(AtomicU64::new(0));
        let (taken, to_store) = sync_channel(QUEUE);
        let broker = BrokerSide {
            client: client.clone(),
            topics: Kind::ALL
                .iter()
                .map(|k| subscription(&mqtt.group, &mqtt.prefix, *k))
                .collect(),
            generation: Arc::clone(&connection_generation),
            stop: Arc::clone(&stop),
            counts: Arc::clone(&counts),
            taken,
        };
        let store = StoreSide {
            client,
            url: config.postgres.url_with_password(),
            batch: config.postgres.batch,
            targets: config.prometheus.targets.clone(),
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

    pub fn counts(&self) -> Arc<IngestCounts> {
        Arc::clone(&self.counts)
    }

    /// Stops taking messages; what was taken and not committed is delivered again later.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// The topic filter for one kind: every message to this ingest, or, with a group, shared by
/// the group's ingests.
fn subscription(group: &str, prefix: &str, kind: Kind) -> String {
    let topic = format!("{prefix}/+/+/+/{}", kind.topic_name());
    if group.is_empty() {
        topic
    } else {
        format!("$share/{group}/{topic}")
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
    counts: Arc<IngestCounts>,
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
                    self.counts.broker_connected.store(true, Ordering::Relaxed);
                    was_up = true;
                    self.subscribe();
                }
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    let generation = self.generation.load(Ordering::SeqCst);
                    self.counts.pending.fetch_add(1, Ordering::Relaxed);
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
                    self.counts.broker_connected.store(false, Ordering::Relaxed);
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
    targets: Option<PathBuf>,
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
                    Ok(mut store) => {
                        self.write_targets(&mut store);
                        central = Some(store);
                    }
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.counts.last_commit_s.store(now, Ordering::Relaxed);
        self.counts
            .pending
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        let presence_changed = batch.iter().zip(&outcomes).any(|(taken, outcome)| {
            *outcome == Stored::New && Kind::of_topic(&taken.publish.topic) == Some(Kind::Status)
        });
        if presence_changed {
            self.write_targets(store);
        }
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

    /// Rewrites Prometheus' discovery file from the stations' presence; a failure is logged,
    /// never a reason to hold messages back.
    fn write_targets(&self, store: &mut Central) {
        let Some(path) = &self.targets else {
            return;
        };
        let written = store
            .announced_stations()
            .map_err(|e| e.to_string())
            .and_then(|stations| targets::write(path, &stations).map_err(|e| e.to_string()));
        match written {
            Ok(count) => {
                tracing::debug!(count, path = %path.display(), "Prometheus targets written");
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), "cannot write the Prometheus targets: {error}");
            }
        }
    }

    /// Acknowledges a committed message on the connection it came on. After a reconnect
    /// the broker delivers it again, and it is a known row then.
    fn acknowledge(&self, taken: &Taken) {
        if taken.generation != self.generation.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.client.try_ack(&taken.publish) {
            tracing::warn!(
                "acknowledgement not sent ({e}); the broker delivers it again on the next connection"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_shares_the_subscription_and_no_group_takes_everything() {
        assert_eq!(
            subscription("inspecta-ingest", "inspecta", Kind::Verdict),
            "$share/inspecta-ingest/inspecta/+/+/+/verdict"
        );
        assert_eq!(
            subscription("", "inspecta", Kind::Status),
            "inspecta/+/+/+/status"
        );
    }
}
