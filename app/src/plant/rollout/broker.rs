//! The engineer's MQTT client for rollouts: commands to stations, and what they report on
//! `.../rollout` and `.../command/reply`.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use anyhow::Context as _;
use inspecta_fleet::config::{BrokerConfig, CommanderConfig};
use inspecta_pipeline::publish::rollout::RolloutState;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use super::StationPath;

/// What a station said.
#[derive(Debug)]
pub enum Heard {
    /// Its rollout state; `fresh` unless the broker kept it from before we subscribed.
    State {
        station: StationPath,
        state: Box<RolloutState>,
        fresh: bool,
    },
    Reply {
        station: StationPath,
        reply: Value,
    },
}

/// A clean session of its own account (`<client_id>-<pid>`), never the ingest's.
pub struct Commander {
    client: Client,
    heard: Receiver<Heard>,
    up: Receiver<()>,
    prefix: String,
}

impl std::fmt::Debug for Commander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commander")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Commander {
    /// Connects, hearing states and replies, and waits until the broker has accepted the
    /// session.
    pub fn connect(
        config: &BrokerConfig,
        account: &CommanderConfig,
        password_env: &str,
    ) -> anyhow::Result<Self> {
        let commander = Self::start(config, account, password_env, &["rollout", "command/reply"])?;
        commander
            .up
            .recv_timeout(Duration::from_secs(15))
            .map_err(|_| {
                anyhow::anyhow!(
                    "the broker {}:{} did not accept the connection within 15 s",
                    config.host,
                    config.port
                )
            })?;
        Ok(commander)
    }

    /// Connects in the background (a broker that is down now is only a wait), hearing the
    /// stations' `kinds` of topic (`rollout`, `command/reply`).
    pub fn start(
        config: &BrokerConfig,
        account: &CommanderConfig,
        password_env: &str,
        kinds: &'static [&'static str],
    ) -> anyhow::Result<Self> {
        let id = format!("{}-{}", account.client_id, std::process::id());
        let mut options = MqttOptions::new(id, &config.host, config.port);
        options.set_keep_alive(Duration::from_secs(config.keep_alive_s.max(5)));
        options.set_clean_session(true);
        let password = std::env::var(password_env)
            .ok()
            .or_else(|| account.password.clone());
        if let Some(user) = &account.username {
            options.set_credentials(user, password.unwrap_or_default());
        }
        let (client, connection) = Client::new(options, 256);
        let (heard_tx, heard) = sync_channel(1024);
        let (up_tx, up) = sync_channel(16);
        let listener = Listener {
            client: client.clone(),
            prefix: config.prefix.clone(),
            kinds,
            heard: heard_tx,
            up: up_tx,
        };
        std::thread::Builder::new()
            .name("rollout-mqtt".into())
            .spawn(move || listener.run(connection))
            .context("cannot start the MQTT thread")?;
        Ok(Self {
            client,
            heard,
            up,
            prefix: config.prefix.clone(),
        })
    }

    /// Publishes `body` on the station's command topic (QoS 1, never retained).
    pub fn command(&self, station: &StationPath, body: &Value) -> anyhow::Result<()> {
        let topic = format!("{}/{station}/command", self.prefix);
        let payload = serde_json::to_vec(body).context("the command")?;
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .context("the MQTT client stopped")
    }

    pub fn next(&self, timeout: Duration) -> Option<Heard> {
        self.heard.recv_timeout(timeout).ok()
    }

    /// The station's reply to `request_id`, if it comes within `timeout`.
    pub fn reply_to(
        &self,
        station: &StationPath,
        request_id: &str,
        timeout: Duration,
    ) -> Option<Value> {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            if let Some(Heard::Reply {
                station: from,
                reply,
            }) = self.next(left)
                && from == *station
                && reply["request_id"] == request_id
            {
                return Some(reply);
            }
        }
        None
    }
}

impl Drop for Commander {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

struct Listener {
    client: Client,
    prefix: String,
    kinds: &'static [&'static str],
    heard: SyncSender<Heard>,
    up: SyncSender<()>,
}

impl Listener {
    fn run(self, mut connection: rumqttc::Connection) {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // A clean session: subscribe again after every reconnection.
                    for kind in self.kinds {
                        let topic = format!("{}/+/+/+/{kind}", self.prefix);
                        if let Err(e) = self.client.subscribe(topic, QoS::AtLeastOnce) {
                            tracing::error!("cannot subscribe: {e}");
                        }
                    }
                    let _ = self.up.try_send(());
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // Never block the connection on a reader that is not reading.
                    match self.read(&publish).map(|heard| self.heard.try_send(heard)) {
                        Some(Err(TrySendError::Disconnected(_))) => return,
                        Some(Err(TrySendError::Full(_))) => {
                            tracing::warn!(topic = %publish.topic, "dropped: nobody reads");
                        }
                        _ => {}
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("MQTT: {e}; reconnecting");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn read(&self, publish: &rumqttc::Publish) -> Option<Heard> {
        let rest = publish.topic.strip_prefix(&format!("{}/", self.prefix))?;
        let mut parts = rest.splitn(4, '/');
        let station = StationPath {
            site: parts.next()?.to_owned(),
            line: parts.next()?.to_owned(),
            station: parts.next()?.to_owned(),
        };
        let unreadable = |e: serde_json::Error| {
            tracing::warn!(topic = %publish.topic, "unreadable: {e}");
        };
        match parts.next()? {
            "rollout" if publish.payload.is_empty() => None,
            "rollout" => serde_json::from_slice::<RolloutState>(&publish.payload)
                .map_err(unreadable)
                .ok()
                .map(|state| Heard::State {
                    station,
                    state: Box::new(state),
                    fresh: !publish.retain,
                }),
            "command/reply" => serde_json::from_slice(&publish.payload)
                .map_err(unreadable)
                .ok()
                .map(|reply| Heard::Reply { station, reply }),
            _ => None,
        }
    }
}
