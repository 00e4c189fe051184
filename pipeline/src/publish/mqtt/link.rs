//! The link to the broker (rumqttc): presence, forwarding from the store's cursors, KPIs,
//! and the plant's commands.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, Connection, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration,
    Transport,
};

use super::topics::{Origin, Topics, default_client_id, presence, reachable_url};
use super::{COMMANDS, CommandMessage, CommandReply, MqttConfig, ReplyStatus, SCHEMA};
use crate::publish::rollout::RolloutState;
use crate::station::status::LinkStatus;

use crate::store::{RecordStore, StoreError, Stream};

/// Records and reviews sent per round trip; the link waits for all their PUBACKs.
const BATCH: u32 = 32;
/// How often an idle link looks for new records in the store.
const IDLE_POLL: Duration = Duration::from_millis(100);
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Plant commands waiting for the station, which takes them between two parts; a plant
/// flooding the station with more is refused (and told so in the log).
const COMMAND_QUEUE: usize = 64;
/// Triggered parts whose verdict the link still has to announce as `judged`; beyond this
/// the oldest are forgotten (their verdicts still go out on `.../verdict`).
const PENDING_PARTS: usize = 256;
/// The link's name for its cursors in the store.
const LINK: &str = "mqtt";

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("`{field}` = {value:?} cannot be part of an MQTT topic (no '/', '+', '#' or empty)")]
    Topic { field: &'static str, value: String },
    #[error("the broker: {0}")]
    Connection(Box<rumqttc::ConnectionError>),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the link's client stopped: {0}")]
    Client(#[from] rumqttc::ClientError),
    #[error("the record store: {0}")]
    Store(#[from] StoreError),
    #[error("`{0}` is no command a station takes ({commands})", commands = COMMANDS.join(", "))]
    Command(String),
    #[error("cannot start the link thread: {0}")]
    Thread(std::io::Error),
    #[error("[mqtt] {key} = {}: {reason}", path.display())]
    Tls {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("[mqtt] tls = true needs `ca`, the certificate that signed the broker's")]
    NoCa,
    #[error("[mqtt] client_cert and client_key go together")]
    HalfClientAuth,
    #[error("[mqtt] api_url = {0:?} is no http:// or https:// address the plant could reach")]
    ApiUrl(String),
}

impl From<rumqttc::ConnectionError> for MqttError {
    fn from(e: rumqttc::ConnectionError) -> Self {
        Self::Connection(Box::new(e))
    }
}

/// A running link; [`MqttLink::stop`] says goodbye to the broker and returns.
#[derive(Debug)]
pub struct MqttLink {
    stop: Arc<AtomicBool>,
    status: Arc<LinkStatus>,
    commands: Receiver<CommandMessage>,
    replies: SyncSender<CommandReply>,
    rollout: Arc<RolloutSlot>,
    thread: Option<JoinHandle<()>>,
}

/// The station's latest rollout state, and how many times it changed: the link sends it
/// (retained) when it changed since the last send and on every new connection.
#[derive(Debug, Default)]
struct RolloutSlot(Mutex<(u64, Option<RolloutState>)>);

impl RolloutSlot {
    fn set(&self, state: RolloutState) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = (slot.0 + 1, Some(state));
    }

    /// The state if it changed after change `seen`.
    fn newer_than(&self, seen: u64) -> Option<(u64, RolloutState)> {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &slot.1 {
            Some(state) if slot.0 != seen => Some((slot.0, state.clone())),
            _ => None,
        }
    }
}

impl MqttLink {
    /// Checks the configuration and starts the link on a thread of its own. It connects in
    /// the background: a broker that is down at start is no error, only a wait.
    pub fn start(
        config: &MqttConfig,
        station: &str,
        store: Arc<RecordStore>,
    ) -> Result<Self, MqttError> {
        let topics = Topics::new(config, station)?;
        if let Some(unknown) = config
            .commands
            .iter()
            .find(|c| !COMMANDS.contains(&c.as_str()))
        {
            return Err(MqttError::Command(unknown.clone()));
        }
        if let Some(url) = config.api_url.as_deref().filter(|u| !reachable_url(u)) {
            return Err(MqttError::ApiUrl(url.to_owned()));
        }
        let (sender, commands) = sync_channel(COMMAND_QUEUE);
        let (replies, replies_in) = sync_channel(COMMAND_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(LinkStatus::default());
        let rollout = Arc::new(RolloutSlot::default());
        let origin = Origin {
            schema: SCHEMA,
            site: config.site.clone(),
            line: config.line.clone(),
            station: station.to_owned(),
        };
        let worker = Worker {
            options: options(config, &origin, &topics)?,
            topics,
            origin,
            api_url: config.api_url.clone(),
            store,
            stop: Arc::clone(&stop),
            status: Arc::clone(&status),
            kpi_every: Duration::from_secs(config.kpi_every_s),
            allowed: config.commands.clone(),
            commands: sender,
            replies: replies_in,
            rollout: Arc::clone(&rollout),
            outbox: RefCell::default(),
            pending: RefCell::default(),
        };
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || worker.run())
            .map_err(MqttError::Thread)?;
        Ok(Self {
            stop,
            status,
            commands,
            replies,
            rollout,
            thread: Some(thread),
        })
    }

    /// Reports where the station's rollout stands on `.../rollout` (retained), now or when
    /// the broker is back.
    pub fn report_rollout(&self, state: RolloutState) {
        self.rollout.set(state);
    }

    /// The next command the plant sent (already checked against `commands`), if any. The
    /// station answers it with [`MqttLink::reply`].
    pub fn next_command(&self) -> Option<CommandMessage> {
        self.commands.try_recv().ok()
    }

    /// Sends what became of a command to `.../command/reply`. An accepted trigger is
    /// followed by a `judged` reply with the record id once its verdict is stored.
    pub fn reply(&self, reply: CommandReply) {
        if self.replies.try_send(reply).is_err() {
            tracing::warn!("command reply dropped: {COMMAND_QUEUE} replies already wait");
        }
    }

    pub fn status(&self) -> &Arc<LinkStatus> {
        &self.status
    }

    /// Sends what is still unsent (while the broker answers), announces the station offline
    /// and disconnects.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the MQTT link panicked");
        }
    }
}

impl Drop for MqttLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn options(
    config: &MqttConfig,
    origin: &Origin,
    topics: &Topics,
) -> Result<MqttOptions, MqttError> {
    let client_id = config
        .client_id
        .clone()
        .unwrap_or_else(|| default_client_id(origin));
    let mut options = MqttOptions::new(client_id, &config.host, config.port());
    options.set_keep_alive(Duration::from_secs(config.keep_alive_s.max(5)));
    options.set_last_will(LastWill::new(
        &topics.status,
        presence(origin, config.api_url.as_deref(), "offline"),
        QoS::AtLeastOnce,
        true,
    ));
    let password = std::env::var("INSPECTA_MQTT_PASSWORD")
        .ok()
        .or_else(|| config.password.clone());
    if let Some(user) = &config.username {
        options.set_credentials(user, password.unwrap_or_default());
    }
    if config.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(super::tls::client_config(config)?),
        )));
    }
    Ok(options)
}

struct Worker {
    options: MqttOptions,
    topics: Topics,
    origin: Origin,
    api_url: Option<String>,
    store: Arc<RecordStore>,
    stop: Arc<AtomicBool>,
    status: Arc<LinkStatus>,
    kpi_every: Duration,
    allowed: Vec<String>,
    commands: SyncSender<CommandMessage>,
    /// The station's answers to commands.
    replies: Receiver<CommandReply>,
    rollout: Arc<RolloutSlot>,
    /// The link's own answers (refusals), made while it waits for acknowledgements.
    outbox: RefCell<Vec<CommandReply>>,
    /// Accepted triggers waiting for their part's verdict: part id, and the reply to send.
    pending: RefCell<VecDeque<(String, CommandReply)>>,
}

/// One batch on its way: how many PUBACKs it needs, and where the cursors go then.
#[derive(Debug, Default)]
struct Batch {
    messages: usize,
    verdicts_to: Option<i64>,
    reviews_to: Option<i64>,
    alarms_to: Option<i64>,
}

impl Worker {
    fn run(&self) {
        let mut failures = 0u32;
        while !self.stopping() {
            match self.session() {
                Ok(()) => failures = 0,
                Err(e) => {
                    self.status.connected.store(false, Ordering::Relaxed);
                    self.status
                        .connection_errors
                        .fetch_add(1, Ordering::Relaxed);
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(attempt = failures, retry_in = ?wait, "MQTT link down, records wait in the store: {e}");
                    }
                    self.sleep(wait);
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn sleep(&self, total: Duration) {
        let until = Instant::now() + total;
        while !self.stopping() && Instant::now() < until {
            std::thread::sleep(IDLE_POLL.min(until - Instant::now()));
        }
    }

    /// One connection, from CONNACK to stop or failure: the backlog first, then each new
    /// record as it is stored.
    fn session(&self) -> Result<(), MqttError> {
        let (client, mut connection) = Client::new(self.options.clone(), BATCH as usize * 5 + 4);
        wait_for_connack(&mut connection)?;
        if !self.allowed.is_empty() {
            client.subscribe(&self.topics.command, QoS::AtLeastOnce)?;
        }
        self.status.connected.store(true, Ordering::Relaxed);
        tracing::info!(broker = %self.options.broker_address().0, topic = %self.topics.status, "MQTT link up");
        let online = presence(&self.origin, self.api_url.as_deref(), "online");
        client.publish(&self.topics.status, QoS::AtLeastOnce, true, online)?;
        self.await_acks(&mut connection, 1)?;
        let mut kpis_sent: Option<Instant> = None;
        let mut rollout_sent = 0;
        loop {
            let batch = self.send_batch(&client)?;
            if batch.messages > 0 {
                self.await_acks(&mut connection, batch.messages)?;
                self.advance(&batch)?;
                continue;
            }
            if self.stopping() {
                return self.goodbye(&client, &mut connection);
            }
            if !self.kpi_every.is_zero() && kpis_sent.is_none_or(|t| t.elapsed() >= self.kpi_every)
            {
                self.send_kpis(&client)?;
                self.await_acks(&mut connection, 1)?;
                kpis_sent = Some(Instant::now());
            }
            if let Some((change, state)) = self.rollout.newer_than(rollout_sent) {
                let payload = self.origin.payload(&state);
                client.publish(&self.topics.rollout, QoS::AtLeastOnce, true, payload)?;
                self.await_acks(&mut connection, 1)?;
                rollout_sent = change;
            }
            // Idle: keep the connection alive (pings), take commands, look again shortly.
            match connection.recv_timeout(IDLE_POLL) {
                Ok(Ok(event)) => self.take_command(&event),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
    }

    /// The last hour's figures, retained: a dashboard that connects later sees them at once.
    fn send_kpis(&self, client: &Client) -> Result<(), MqttError> {
        let until = jiff::Timestamp::now();
        let since = until - jiff::SignedDuration::from_hours(1);
        let mut report = self.store.kpis(since)?.report();
        report["since"] = serde_json::json!(since);
        report["until"] = serde_json::json!(until);
        let payload = self.origin.payload(&report);
        client.publish(&self.topics.kpi, QoS::AtLeastOnce, true, payload)?;
        Ok(())
    }

    /// Hands a command from the plant to the station when the configuration allows it;
    /// answers a refusal itself.
    fn take_command(&self, event: &Event) {
        let Event::Incoming(Packet::Publish(message)) = event else {
            return;
        };
        if message.topic != self.topics.command {
            return;
        }
        // A retained command would run again on every connect (and every restart).
        if message.retain {
            tracing::warn!(
                "retained command from the plant ignored: commands are never retained (clear it with an empty retained message)"
            );
            return;
        }
        let command = match serde_json::from_slice::<CommandMessage>(&message.payload) {
            Ok(command) => command,
            Err(e) => {
                tracing::warn!("unreadable command from the plant: {e}");
                return self.answer(CommandReply {
                    command: "?".into(),
                    request_id: None,
                    part_id: None,
                    status: ReplyStatus::Refused,
                    reason: Some(format!("unreadable command: {e}")),
                    record_id: None,
                });
            }
        };
        let name = command.command.name();
        if !self.allowed.iter().any(|a| a == name) {
            tracing::warn!(
                command = name,
                "command from the plant refused: not in [mqtt] commands"
            );
            let reason = format!("{name} is not in this station's [mqtt] commands");
            return self.answer(CommandReply::refused(&command, None, reason));
        }
        match self.commands.try_send(command) {
            Ok(()) => tracing::info!(command = name, "command from the plant"),
            Err(TrySendError::Full(command) | TrySendError::Disconnected(command)) => {
                tracing::warn!(
                    command = name,
                    "command from the plant refused: {COMMAND_QUEUE} commands are already waiting"
                );
                let reason = format!("{COMMAND_QUEUE} commands are already waiting");
                self.answer(CommandReply::refused(&command, None, reason));
            }
        }
    }

    /// A flood of refused commands gets its first replies; the rest only the log.
    fn answer(&self, reply: CommandReply) {
        let mut outbox = self.outbox.borrow_mut();
        if outbox.len() < BATCH as usize {
            outbox.push(reply);
        }
    }

    /// Up to a batch of replies: the link's own, then the station's. An accepted trigger
    /// waits in `pending` for its part's verdict.
    fn take_replies(&self) -> Vec<CommandReply> {
        let mut replies: Vec<CommandReply> = std::mem::take(&mut *self.outbox.borrow_mut());
        while replies.len() < BATCH as usize {
            let Ok(reply) = self.replies.try_recv() else {
                break;
            };
            if let (ReplyStatus::Accepted, Some(part_id)) = (reply.status, &reply.part_id)
                && reply.command == "trigger"
            {
                let mut pending = self.pending.borrow_mut();
                if pending.len() == PENDING_PARTS {
                    pending.pop_front();
                }
                pending.push_back((part_id.clone(), reply.clone()));
            }
            replies.push(reply);
        }
        replies
    }

    /// The `judged` reply for a triggered part, once its record goes out.
    fn judged(&self, record: &crate::store::Record) -> Option<CommandReply> {
        let part_id = record.part_id.as_deref()?;
        let mut pending = self.pending.borrow_mut();
        let at = pending.iter().position(|(p, _)| p == part_id)?;
        let (_, mut reply) = pending.remove(at)?;
        reply.status = ReplyStatus::Judged;
        reply.record_id = Some(record.id);
        Some(reply)
    }

    /// Polls the connection until `count` PUBACKs have come in, taking commands meanwhile.
    fn await_acks(&self, connection: &mut Connection, count: usize) -> Result<(), MqttError> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut acked = 0;
        while acked < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match connection.recv_timeout(left) {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(event)) => self.take_command(&event),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(MqttError::Timeout(ACK_TIMEOUT)),
            }
        }
        Ok(())
    }

    fn send_batch(&self, client: &Client) -> Result<Batch, MqttError> {
        let mut batch = Batch::default();
        let mut replies = self.take_replies();
        let from = self.store.forwarded(LINK, Stream::Verdicts)?;
        for record in self.store.records_after(from, BATCH)? {
            let payload = self.origin.payload(&record);
            client.publish(&self.topics.verdict, QoS::AtLeastOnce, false, payload)?;
            batch.messages += 1;
            batch.verdicts_to = Some(record.id);
            replies.extend(self.judged(&record));
        }
        // After the verdicts they announce: a plant that reads `judged` finds the record.
        for reply in replies {
            let payload = self.origin.payload(&reply);
            client.publish(&self.topics.reply, QoS::AtLeastOnce, false, payload)?;
            batch.messages += 1;
        }
        let from = self.store.forwarded(LINK, Stream::Reviews)?;
        for review in self.store.reviews_after(from, BATCH)? {
            let payload = self.origin.payload(&review);
            client.publish(&self.topics.review, QoS::AtLeastOnce, false, payload)?;
            batch.messages += 1;
            batch.reviews_to = Some(review.id);
        }
        let from = self.store.forwarded(LINK, Stream::Alarms)?;
        for alarm in self.store.alarms_after(from, BATCH)? {
            let payload = self.origin.payload(&alarm);
            client.publish(&self.topics.alarm, QoS::AtLeastOnce, false, payload)?;
            batch.messages += 1;
            batch.alarms_to = Some(alarm.id);
        }
        Ok(batch)
    }

    fn advance(&self, batch: &Batch) -> Result<(), MqttError> {
        if let Some(id) = batch.verdicts_to {
            self.store.set_forwarded(LINK, Stream::Verdicts, id)?;
        }
        if let Some(id) = batch.reviews_to {
            self.store.set_forwarded(LINK, Stream::Reviews, id)?;
        }
        if let Some(id) = batch.alarms_to {
            self.store.set_forwarded(LINK, Stream::Alarms, id)?;
        }
        self.status
            .published
            .fetch_add(batch.messages as u64, Ordering::Relaxed);
        Ok(())
    }

    /// A clean stop: "offline" (retained) in place of the last will, then DISCONNECT.
    fn goodbye(&self, client: &Client, connection: &mut Connection) -> Result<(), MqttError> {
        let offline = presence(&self.origin, self.api_url.as_deref(), "offline");
        client.publish(&self.topics.status, QoS::AtLeastOnce, true, offline)?;
        self.await_acks(connection, 1)?;
        client.disconnect()?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match connection.recv_timeout(IDLE_POLL) {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
        self.status.connected.store(false, Ordering::Relaxed);
        tracing::info!("MQTT link closed");
        Ok(())
    }
}

fn wait_for_connack(connection: &mut Connection) -> Result<(), MqttError> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(MqttError::Timeout(CONNECT_TIMEOUT)),
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    (Duration::from_millis(250) * (1 << exponent)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MqttConfig {
        toml::from_str("host = \"localhost\"\nsite = \"plant-a\"\nline = \"line-2\"")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn commands_with_fields_a_station_does_not_know_are_read() {
        let message: CommandMessage = serde_json::from_str(
            r#"{"command": "trigger", "part_id": "P-1", "request_id": "r-1", "sent_at": 5}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(message.request_id.as_deref(), Some("r-1"));
        assert_eq!(
            message.command,
            super::super::PlantCommand::Trigger {
                part_id: Some("P-1".into())
            }
        );
    }

    #[test]
    fn tls_without_a_readable_ca_is_refused_at_start() {
        let mut config = config();
        config.tls = true;
        assert!(matches!(
            super::super::tls::client_config(&config),
            Err(MqttError::NoCa)
        ));
        config.ca = Some("/nonexistent/ca.crt".into());
        let err = super::super::tls::client_config(&config)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("[mqtt] ca = /nonexistent/ca.crt")),
            "{err:?}"
        );
    }

    #[test]
    fn retries_back_off_up_to_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
