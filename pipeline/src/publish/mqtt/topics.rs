//! What the link says and where: a station's topic names, the origin stamped on every
//! payload, its presence, and the client id and API address it announces.

use serde::Serialize;

use super::MqttConfig;
use super::link::MqttError;

/// The topic names of one station.
#[derive(Debug, Clone)]
pub(super) struct Topics {
    pub(super) verdict: String,
    pub(super) review: String,
    pub(super) alarm: String,
    pub(super) kpi: String,
    pub(super) command: String,
    pub(super) reply: String,
    pub(super) status: String,
    pub(super) rollout: String,
}

impl Topics {
    pub(super) fn new(config: &MqttConfig, station: &str) -> Result<Self, MqttError> {
        let parts = [
            ("prefix", config.prefix.as_str()),
            ("site", config.site.as_str()),
            ("line", config.line.as_str()),
            ("station", station),
        ];
        for (field, value) in parts {
            if value.is_empty() || value.contains(['/', '+', '#']) {
                return Err(MqttError::Topic {
                    field,
                    value: value.to_owned(),
                });
            }
        }
        let base = parts.map(|(_, v)| v).join("/");
        Ok(Self {
            verdict: format!("{base}/verdict"),
            review: format!("{base}/review"),
            alarm: format!("{base}/alarm"),
            kpi: format!("{base}/kpi"),
            command: format!("{base}/command"),
            reply: format!("{base}/command/reply"),
            status: format!("{base}/status"),
            rollout: format!("{base}/rollout"),
        })
    }
}

/// Where a payload comes from, in front of its own fields.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Origin {
    pub(super) schema: u32,
    pub(super) site: String,
    pub(super) line: String,
    pub(super) station: String,
}

#[derive(Serialize)]
struct Stamped<'a, T> {
    #[serde(flatten)]
    origin: &'a Origin,
    #[serde(flatten)]
    body: &'a T,
}

impl Origin {
    pub(super) fn payload<T: Serialize>(&self, body: &T) -> Vec<u8> {
        serde_json::to_vec(&Stamped { origin: self, body }).unwrap_or_default()
    }
}

/// `online` since a connection, or `offline`: `since` tells a stale retained state from a
/// fresh one.
#[derive(Serialize)]
struct Presence<'a> {
    state: &'static str,
    since: jiff::Timestamp,
    /// Where the plant reaches the station's API (`[mqtt] api_url`): the plant view fetches
    /// part images there, and the fleet's Prometheus discovers the station by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<&'a str>,
}

/// Unique per site, line and station: two lines may each have a `cam1`, and a client id
/// shared on one broker makes the two take each other's session over and over.
pub(super) fn default_client_id(origin: &Origin) -> String {
    format!(
        "inspecta-{}-{}-{}",
        origin.site, origin.line, origin.station
    )
}

/// An address with a host, not `http://0.0.0.0:8080` copied from the listen address.
pub(super) fn reachable_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !host.starts_with("0.0.0.0") && !host.starts_with("[::]")
}

/// The station's retained presence payload.
pub(super) fn presence(origin: &Origin, api: Option<&str>, state: &'static str) -> Vec<u8> {
    origin.payload(&Presence {
        state,
        since: jiff::Timestamp::now(),
        api,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::mqtt::SCHEMA;

    fn config() -> MqttConfig {
        toml::from_str("host = \"localhost\"\nsite = \"plant-a\"\nline = \"line-2\"")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn topics_follow_the_plant_hierarchy() {
        let topics = Topics::new(&config(), "cam-1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(topics.verdict, "inspecta/plant-a/line-2/cam-1/verdict");
        assert_eq!(topics.status, "inspecta/plant-a/line-2/cam-1/status");
    }

    #[test]
    fn names_that_would_break_the_topic_tree_are_refused() {
        for station in ["cam/1", "cam+", "#", ""] {
            let err = Topics::new(&config(), station).err();
            assert!(
                matches!(
                    err,
                    Some(MqttError::Topic {
                        field: "station",
                        ..
                    })
                ),
                "{station:?}"
            );
        }
    }

    #[test]
    fn an_api_url_must_be_one_the_plant_can_reach() {
        for good in ["http://10.0.2.14:8080", "https://cam1.plant-a.example/"] {
            assert!(reachable_url(good), "{good}");
        }
        for bad in [
            "10.0.2.14:8080",
            "http://0.0.0.0:8080",
            "http://[::]:80",
            "ftp://x",
            "http://",
        ] {
            assert!(!reachable_url(bad), "{bad}");
        }
    }

    fn origin(line: &str, station: &str) -> Origin {
        Origin {
            schema: SCHEMA,
            site: "plant-a".into(),
            line: line.into(),
            station: station.into(),
        }
    }

    #[test]
    fn the_default_client_id_differs_for_a_station_name_on_two_lines() {
        let a = default_client_id(&origin("line-1", "cam1"));
        let b = default_client_id(&origin("line-2", "cam1"));
        assert_eq!(a, "inspecta-plant-a-line-1-cam1");
        assert_ne!(a, b);
    }

    #[test]
    fn payloads_start_with_their_schema_and_origin() {
        let payload = origin("line-2", "cam-1").payload(&serde_json::json!({"id": 7}));
        let value: serde_json::Value =
            serde_json::from_slice(&payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            value,
            serde_json::json!({"schema": SCHEMA, "site": "plant-a", "line": "line-2", "station": "cam-1", "id": 7})
        );
    }
}
