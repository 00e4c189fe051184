//! A message from a station, checked before it is stored: its topic names where it comes
//! from and what it is, its body must say the same and follow a layout this build knows.

use serde_json::{Map, Value};

/// The payload layout this build reads (the stations' `SCHEMA`).
pub const SCHEMA: u64 = 1;

/// What a station publishes that the central store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Verdict,
    Review,
    Alarm,
    Kpi,
    Status,
    /// Where a model rollout stands at the station.
    Rollout,
}

impl Kind {
    pub const ALL: [Self; 6] = [
        Self::Verdict,
        Self::Review,
        Self::Alarm,
        Self::Kpi,
        Self::Status,
        Self::Rollout,
    ];

    /// The last level of its topic.
    pub fn topic_name(self) -> &'static str {
        match self {
            Self::Verdict => "verdict",
            Self::Review => "review",
            Self::Alarm => "alarm",
            Self::Kpi => "kpi",
            Self::Status => "status",
            Self::Rollout => "rollout",
        }
    }

    /// The kind a topic's last level names.
    pub fn of_topic(topic: &str) -> Option<Self> {
        topic.rsplit('/').next().and_then(Self::from_topic_name)
    }

    fn from_topic_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.topic_name() == name)
    }
}

/// Site, line and station: where a message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub site: String,
    pub line: String,
    pub station: String,
}

/// A message that may be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub origin: Origin,
    pub body: Map<String, Value>,
}

/// Why a message goes to the dead letters instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(
        "topic {0:?} is not <prefix>/<site>/<line>/<station>/<kind> with a kind the store keeps"
    )]
    Topic(String),
    #[error("the payload is not a JSON object: {0}")]
    NotJson(String),
    #[error("the payload has no schema number")]
    NoSchema,
    #[error("schema {0} is not one this ingest reads (it reads schema {SCHEMA}); upgrade it")]
    UnknownSchema(u64),
    #[error("the topic says {field} {topic:?} but the payload says {body:?}")]
    Disagrees {
        field: &'static str,
        topic: String,
        body: String,
    },
    #[error("the payload has no usable {0}")]
    Missing(&'static str),
}

impl Message {
    /// Reads one message as the broker delivered it.
    pub fn parse(topic: &str, payload: &[u8]) -> Result<Self, Rejection> {
        let levels: Vec<&str> = topic.split('/').collect();
        let [_prefix, site, line, station, kind] = levels[..] else {
            return Err(Rejection::Topic(topic.to_owned()));
        };
        let kind = Kind::from_topic_name(kind).ok_or_else(|| Rejection::Topic(topic.to_owned()))?;
        let body = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(body)) => body,
            Ok(other) => return Err(Rejection::NotJson(format!("it is {}", type_name(&other)))),
            Err(e) => return Err(Rejection::NotJson(e.to_string())),
        };
        match body.get("schema").and_then(Value::as_u64) {
            None => return Err(Rejection::NoSchema),
            Some(SCHEMA) => {}
            Some(other) => return Err(Rejection::UnknownSchema(other)),
        }
        for (field, from_topic) in [("site", site), ("line", line), ("station", station)] {
            let said = body.get(field).and_then(Value::as_str).unwrap_or_default();
            if said != from_topic {
                return Err(Rejection::Disagrees {
                    field,
                    topic: from_topic.to_owned(),
                    body: said.to_owned(),
                });
            }
        }
        let origin = Origin {
            site: site.to_owned(),
            line: line.to_owned(),
            station: station.to_owned(),
        };
        Ok(Self { kind, origin, body })
    }

    pub fn text(&self, field: &'static str) -> Result<&str, Rejection> {
        self.body
            .get(field)
            .and_then(Value::as_str)
            .ok_or(Rejection::Missing(field))
    }

    pub fn optional_text(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }

    /// The station's own id of a verdict, review or alarm: never reused, so the key.
    pub fn id(&self) -> Result<i64, Rejection> {
        self.number("id")
    }

    pub fn number(&self, field: &'static str) -> Result<i64, Rejection> {
        self.body
            .get(field)
            .and_then(Value::as_i64)
            .ok_or(Rejection::Missing(field))
    }

    pub fn time(&self, field: &'static str) -> Result<jiff::Timestamp, Rejection> {
        self.text(field)?
            .parse()
            .map_err(|_| Rejection::Missing(field))
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "inspecta/plant-a/line-2/cam1/verdict";

    #[test]
    fn a_stations_verdict_is_read_with_its_origin() {
        let body = br#"{"schema":1,"site":"plant-a","line":"line-2","station":"cam1","id":7}"#;
        let message = Message::parse(TOPIC, body).expect("a good message");
        assert_eq!(message.kind, Kind::Verdict);
        assert_eq!(message.origin.station, "cam1");
        assert_eq!(message.id(), Ok(7));
    }

    #[test]
    fn every_bad_message_says_what_is_wrong() {
        let cases: [(&str, &[u8], Rejection); 6] = [
            (
                "inspecta/plant-a/cam1/verdict",
                b"{}",
                Rejection::Topic("inspecta/plant-a/cam1/verdict".into()),
            ),
            (TOPIC, b"{\"schema\":1,", Rejection::NotJson(String::new())),
            (TOPIC, b"[1,2]", Rejection::NotJson("it is an array".into())),
            (TOPIC, br#"{"site":"plant-a"}"#, Rejection::NoSchema),
            (
                TOPIC,
                br#"{"schema":2,"site":"plant-a","line":"line-2","station":"cam1"}"#,
                Rejection::UnknownSchema(2),
            ),
            (
                TOPIC,
                br#"{"schema":1,"site":"plant-a","line":"line-2","station":"cam9","id":1}"#,
                Rejection::Disagrees {
                    field: "station",
                    topic: "cam1".into(),
                    body: "cam9".into(),
                },
            ),
        ];
        for (topic, body, expected) in cases {
            let got = Message::parse(topic, body).expect_err("a bad message");
            match (&got, &expected) {
                // serde's own wording of the syntax error is its business.
                (Rejection::NotJson(_), Rejection::NotJson(e)) if e.is_empty() => {}
                _ => assert_eq!(got, expected),
            }
        }
    }
}
