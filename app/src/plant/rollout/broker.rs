//! The engineer's MQTT client for rollouts: commands to stations, and what they report on
//! `.../rollout` and `.../command/reply`.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use anyhow::Context as _;
use inspecta_fleet::config::BrokerConfig;
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

/// A clean session of its own (`<client_id>-<role>-<pid>`), so it never takes the ingest's.
pub struct Commander {
    client: Client,
    heard: Receiver<Heard>,
    prefix: String,
}

impl Commander {
    pub fn connect(config: &BrokerConfig, role: &str) -> anyhow::Result<Self> {
        let id = format!("{}-{role}-{}", config.client_id, std::process::id());
        let mut options = MqttOptions::new(id, &config.host, config.port);
        options.set_keep_alive(Duration::from_secs(config.keep_alive_s.max(5)));
        options.set_clean_session(true);
        let password = std::env::var("INSPECTA_MQTT_PASSWORD")
            .ok()
            .or_else(|| config.password.clone());
        if let Some(user) = &config.username {
            options.set_credentials(user, password.unwrap_or_default());
        }
        let (client, connection) = Client::new(options, 256);
        let (heard_tx, heard) = sync_channel(1024);
        let (up_tx, up) = sync_channel(1);
        let listener = Listener {
            client: client.clone(),
            prefix: config.prefix.clone(),
            heard: heard_tx,
            up: up_tx,
        };
        std::thread::Builder::new()
            .name("rollout-mqtt".into())
            .spawn(move || listener.run(connection))
            .context("cannot start the MQTT thread")?;
        up.recv_timeout(Duration::from_secs(15)).map_err(|_| {
            anyhow::anyhow!(
                "the broker {}:{} did not accept the connection within 15 s",
                config.host,
                config.port
            )
        })?;
        Ok(Self {
            client,
            heard,
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
}

impl Drop for Commander {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

struct Listener {
    client: Client,
    prefix: String,
    heard: SyncSender<Heard>,
    up: SyncSender<()>,
}

impl Listener {
    fn run(self, mut connection: rumqttc::Connection) {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // A clean session: subscribe again after every reconnection.
                    for kind in ["rollout", "command/reply"] {
                        let topic = format!("{}/+/+/+/{kind}", self.prefix);
                        if let Err(e) = self.client.subscribe(topic, QoS::AtLeastOnce) {
                            tracing::error!("cannot subscribe: {e}");
                        }
                    }
                    let _ = self.up.try_send(());
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if let Some(heard) = self.read(&publish)
                        && self.heard.send(heard).is_err()
                    {
                        return;
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
