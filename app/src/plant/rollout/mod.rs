//! The engineer's side of a model rollout: `inspecta fleet rollout` serves a model
//! directory as a package over HTTP, orders the chosen stations to run it (MQTT command
//! `rollout`, naming its digest), and follows what each reports until every one has
//! settled; `approve` and `rollback` send the one-step commands and follow their outcome.

pub mod broker;
pub mod package;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use inspecta_fleet::central::Central;
use inspecta_fleet::config::FleetConfig;
use inspecta_pipeline::publish::rollout::{Phase, Promote, RolloutOrder, RolloutState};
use serde_json::{Value, json};

use broker::{Commander, Heard};
use package::Published;

/// How often an order goes again to a station that has not answered (it may be offline:
/// commands are never retained).
const RESEND_EVERY: Duration = Duration::from_secs(15);

/// `<site>/<line>/<station>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StationPath {
    pub site: String,
    pub line: String,
    pub station: String,
}

impl fmt::Display for StationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.site, self.line, self.station)
    }
}

/// What the engineer asked for.
#[derive(Debug, Clone)]
pub struct RolloutRequest {
    pub model: PathBuf,
    pub stations: String,
    pub shadow_parts: u64,
    /// Promote on its own at or above this agreement; None: on approval only.
    pub auto_promote: Option<f64>,
    pub listen: SocketAddr,
    /// How the stations reach `listen`.
    pub url: Option<String>,
    pub who: String,
    pub wait: Duration,
}

/// Where each station ended; true when all are in charge or waiting for approval.
pub fn rollout(config: &FleetConfig, request: &RolloutRequest) -> anyhow::Result<bool> {
    let published = Arc::new(Published::of_model(&request.model)?);
    let package = &published.package;
    let rollout = rollout_id(&package.model, &package.version, &published.digest);
    let base = package_base(request)?;
    let order = RolloutOrder {
        rollout: rollout.clone(),
        package_url: format!("{base}/rollouts/{rollout}"),
        digest: published.digest.clone(),
        shadow_parts: request.shadow_parts,
        promote: request
            .auto_promote
            .map_or(Promote::Approval, |min_agreement| Promote::Auto {
                min_agreement,
            }),
        who: Some(request.who.clone()),
    };
    order.check().map_err(anyhow::Error::msg)?;
    let targets = select(config, &request.stations)?;
    let server = published.serve(&rollout, request.listen)?;
    println!(
        "rollout {rollout}: {} {} (digest {}) to {} station(s), {} shadow parts, {}",
        package.model,
        package.version,
        published.digest,
        targets.len(),
        order.shadow_parts,
        match order.promote {
            Promote::Auto { min_agreement } => format!(
                "promoted at {:.2} % agreement or more",
                min_agreement * 100.0
            ),
            Promote::Approval => "promoted on approval".into(),
        }
    );
    let mut body = serde_json::to_value(&order).context("the order")?;
    body["command"] = json!("rollout");
    body["request_id"] = json!(rollout);
    let commander = commander(config)?;
    let ended = follow(&commander, &targets, &body, request.wait, true, |state| {
        state.rollout == rollout && state.phase.is_settled()
    })?;
    server.stop();
    Ok(report(&ended, |phase| {
        matches!(phase, Phase::Promoted | Phase::AwaitingApproval)
    }))
}

/// Puts a waiting rollout in charge at the chosen stations.
pub fn approve(
    config: &FleetConfig,
    rollout: &str,
    stations: &str,
    who: &str,
    wait: Duration,
) -> anyhow::Result<bool> {
    let targets = select(config, stations)?;
    let body = json!({"command": "approve_rollout", "rollout": rollout, "who": who, "request_id": rollout});
    let commander = commander(config)?;
    let ended = follow(&commander, &targets, &body, wait, false, |state| {
        state.rollout == rollout && state.phase == Phase::Promoted
    })?;
    Ok(report(&ended, |phase| phase == Phase::Promoted))
}

/// Undoes the last rollout at the chosen stations.
pub fn rollback(
    config: &FleetConfig,
    stations: &str,
    who: &str,
    wait: Duration,
) -> anyhow::Result<bool> {
    let targets = select(config, stations)?;
    let body = json!({"command": "rollback", "who": who, "request_id": format!("rollback-{}", std::process::id())});
    let commander = commander(config)?;
    let ended = follow(&commander, &targets, &body, wait, false, |state| {
        matches!(state.phase, Phase::RolledBack | Phase::Cancelled)
    })?;
    Ok(report(&ended, |phase| {
        matches!(phase, Phase::RolledBack | Phase::Cancelled)
    }))
}

/// Where the stations' password for `[rollout]` comes from.
const PASSWORD_ENV: &str = "INSPECTA_ROLLOUT_PASSWORD";

/// `[mqtt]`'s broker with `[rollout]`'s account.
fn commander(config: &FleetConfig) -> anyhow::Result<Commander> {
    let broker = config
        .mqtt
        .as_ref()
        .context("fleet.toml has no [mqtt]: a rollout speaks to the stations through the broker")?;
    let account = config.rollout.as_ref().context(
        "fleet.toml has no [rollout]: the broker account that commands stations (client_id, username; never the ingest's)",
    )?;
    Commander::connect(broker, account, PASSWORD_ENV)
}

/// `<model>-<version>-<digest>-<time>`, in the characters a folder and a topic allow.
fn rollout_id(model: &str, version: &str, digest: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect()
    };
    let time = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S");
    format!(
        "{}-{}-{}-{time}",
        clean(model),
        clean(version),
        &digest[..digest.len().min(8)]
    )
    .trim_start_matches('.')
    .to_owned()
}

/// The URL stations fetch from: `--url`, or the listen address when it is a real one.
fn package_base(request: &RolloutRequest) -> anyhow::Result<String> {
    if let Some(url) = &request.url {
        if !url.starts_with("http://") {
            bail!(
                "--url {url:?}: the stations fetch packages over http:// (the digest, not the transport, protects them)"
            );
        }
        return Ok(url.trim_end_matches('/').to_owned());
    }
    if request.listen.ip().is_unspecified() {
        bail!(
            "--listen {} is every interface: give --url, the address the stations reach this machine at (http://10.0.0.5:{})",
            request.listen,
            request.listen.port()
        );
    }
    Ok(format!("http://{}", request.listen))
}

/// The stations a pattern names: itself when it has no wildcard, else those the central
/// store has heard from that match it.
fn select(config: &FleetConfig, pattern: &str) -> anyhow::Result<Vec<StationPath>> {
    let parse = |path: &str| -> Option<StationPath> {
        let mut parts = path.split('/');
        let station = StationPath {
            site: parts.next()?.to_owned(),
            line: parts.next()?.to_owned(),
            station: parts.next()?.to_owned(),
        };
        let empty =
            station.site.is_empty() || station.line.is_empty() || station.station.is_empty();
        (parts.next().is_none() && !empty).then_some(station)
    };
    if parse(pattern).is_none() {
        bail!(
            "--stations {pattern:?} is not <site>/<line>/<station> (each may be a pattern: 'plant-a/line-2/*')"
        );
    }
    if !pattern.contains(['*', '?', '[']) {
        return Ok(parse(pattern).into_iter().collect());
    }
    let glob = glob::Pattern::new(pattern).with_context(|| format!("--stations {pattern:?}"))?;
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    };
    let mut central = Central::connect(&config.postgres.url_with_password())
        .context("the central store lists the stations a pattern matches")?;
    let targets: Vec<StationPath> = central
        .stations()?
        .into_iter()
        .map(|(site, line, station)| StationPath {
            site,
            line,
            station,
        })
        .filter(|s| glob.matches_with(&s.to_string(), options))
        .collect();
    if targets.is_empty() {
        bail!("no station the central store knows matches {pattern:?}");
    }
    Ok(targets)
}

/// Where one station ended.
#[derive(Debug, Default)]
struct Ended {
    state: Option<RolloutState>,
    refused: Option<String>,
}

/// Sends `body` to each target and reads what they report until `done` holds for each
/// (or it refused) or `wait` is over; `resend`: again to those that have not answered.
fn follow(
    commander: &Commander,
    targets: &[StationPath],
    body: &Value,
    wait: Duration,
    resend: bool,
    done: impl Fn(&RolloutState) -> bool,
) -> anyhow::Result<BTreeMap<StationPath, Ended>> {
    let mut ended: BTreeMap<StationPath, Ended> = targets
        .iter()
        .map(|t| (t.clone(), Ended::default()))
        .collect();
    let mut answered = std::collections::BTreeSet::new();
    let request_id = body["request_id"].clone();
    let deadline = Instant::now() + wait;
    let mut sent = None::<Instant>;
    let settled = |e: &Ended| e.refused.is_some() || e.state.as_ref().is_some_and(&done);
    while Instant::now() < deadline && !ended.values().all(settled) {
        if sent.is_none_or(|t| resend && t.elapsed() >= RESEND_EVERY) {
            for target in targets {
                if sent.is_none() || !answered.contains(target) {
                    commander.command(target, body)?;
                }
            }
            sent = Some(Instant::now());
        }
        let Some(heard) = commander.next(Duration::from_millis(500)) else {
            continue;
        };
        match heard {
            Heard::State {
                station,
                state,
                fresh,
            } => {
                let Some(entry) = ended.get_mut(&station) else {
                    continue;
                };
                // A state kept from before is news only for this very rollout.
                let ours = body["rollout"].as_str() == Some(state.rollout.as_str());
                if !fresh && !ours {
                    continue;
                }
                answered.insert(station.clone());
                if entry
                    .state
                    .as_ref()
                    .is_none_or(|old| progressed(old, &state))
                {
                    println!("{station}: {}", describe(&state));
                }
                entry.state = Some(*state);
            }
            Heard::Reply { station, reply } => {
                let Some(entry) = ended.get_mut(&station) else {
                    continue;
                };
                if reply["request_id"] != request_id {
                    continue;
                }
                answered.insert(station.clone());
                if reply["status"] == "refused" {
                    let reason = reply["reason"].as_str().unwrap_or("no reason given");
                    println!("{station}: refused: {reason}");
                    entry.refused = Some(reason.to_owned());
                }
            }
        }
    }
    Ok(ended)
}

fn progressed(old: &RolloutState, new: &RolloutState) -> bool {
    old.rollout != new.rollout
        || old.phase != new.phase
        || new.judged >= old.judged + (new.shadow_parts / 4).max(1)
}

fn describe(state: &RolloutState) -> String {
    let mut text = format!("{} {:?}", state.rollout, state.phase);
    if state.judged > 0 {
        text += &format!(
            ", {}/{} shadow parts judged",
            state.judged.min(state.shadow_parts),
            state.shadow_parts
        );
    }
    if let Some(agreement) = state.agreement {
        text += &format!(", agreement {:.2} %", agreement * 100.0);
    }
    if let Some(reason) = &state.reason {
        text += &format!(" ({reason})");
    }
    text
}

/// The table at the end; true when every station ended as `good` says.
fn report(ended: &BTreeMap<StationPath, Ended>, good: impl Fn(Phase) -> bool) -> bool {
    let mut all_good = true;
    println!(
        "\n{:<40} {:<18} {:>8} {:>10}  note",
        "station", "phase", "judged", "agreement"
    );
    for (station, end) in ended {
        let (phase, judged, agreement, note) = match (&end.refused, &end.state) {
            (Some(reason), _) => (
                "refused".to_owned(),
                String::new(),
                String::new(),
                reason.clone(),
            ),
            (None, Some(state)) => (
                format!("{:?}", state.phase),
                state.judged.to_string(),
                state
                    .agreement
                    .map(|a| format!("{:.2} %", a * 100.0))
                    .unwrap_or_default(),
                state.reason.clone().unwrap_or_default(),
            ),
            (None, None) => (
                "no answer".to_owned(),
                String::new(),
                String::new(),
                "offline, or not subscribed to its commands ([mqtt] commands)".to_owned(),
            ),
        };
        all_good &= end.refused.is_none() && end.state.as_ref().is_some_and(|s| good(s.phase));
        println!(
            "{:<40} {phase:<18} {judged:>8} {agreement:>10}  {note}",
            station.to_string()
        );
    }
    all_good
}
