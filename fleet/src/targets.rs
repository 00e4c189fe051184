//! Prometheus file-based discovery (`file_sd_configs`) from the stations' presence: every
//! station that announced its API is a scrape target, labelled with where it stands. An
//! offline station stays listed, so its `up` turns 0 and the offline alert can fire.

use std::path::Path;

use serde::Serialize;

use crate::central::Announced;

#[derive(Debug, Serialize, PartialEq, Eq)]
struct TargetGroup {
    targets: [String; 1],
    labels: Labels,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Labels {
    site: String,
    line: String,
    station: String,
    #[serde(rename = "__scheme__")]
    scheme: &'static str,
    #[serde(rename = "__metrics_path__")]
    metrics_path: String,
}

/// Writes the file through a temporary one (Prometheus must never read half of it);
/// returns how many stations it lists. Addresses that are not http(s) URLs are skipped.
pub fn write(path: &Path, stations: &[Announced]) -> std::io::Result<usize> {
    let groups: Vec<TargetGroup> = stations.iter().filter_map(group).collect();
    let mut text = serde_json::to_vec_pretty(&groups).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)?;
    Ok(groups.len())
}

fn group(station: &Announced) -> Option<TargetGroup> {
    let (scheme, rest) = station.api.split_once("://")?;
    let (scheme, port) = match scheme {
        "http" => ("http", 80),
        "https" => ("https", 443),
        _ => return None,
    };
    let (host, base) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return None;
    }
    // Prometheus needs the port; an address without one uses the scheme's.
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
    let target = if has_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    Some(TargetGroup {
        targets: [target],
        labels: Labels {
            site: station.site.clone(),
            line: station.line.clone(),
            station: station.station.clone(),
            scheme,
            metrics_path: format!(
                "/{}",
                format!("{}/metrics", base.trim_end_matches('/')).trim_start_matches('/')
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(api: &str) -> Announced {
        Announced {
            site: "plant-a".into(),
            line: "line-2".into(),
            station: "cam1".into(),
            api: api.into(),
        }
    }

    #[test]
    fn an_address_becomes_a_target_with_its_port_scheme_and_path() {
        let cases = [
            (
                "http://10.0.2.14:8080",
                "10.0.2.14:8080",
                "http",
                "/metrics",
            ),
            (
                "https://cam1.example",
                "cam1.example:443",
                "https",
                "/metrics",
            ),
            ("http://[fd00::2]", "[fd00::2]:80", "http", "/metrics"),
            ("http://gw:80/cam1/", "gw:80", "http", "/cam1/metrics"),
        ];
        for (api, target, scheme, path) in cases {
            let group = group(&announced(api)).expect(api);
            assert_eq!(group.targets[0], target, "{api}");
            assert_eq!(group.labels.scheme, scheme, "{api}");
            assert_eq!(group.labels.metrics_path, path, "{api}");
        }
        assert!(group(&announced("ftp://x")).is_none());
        assert!(group(&announced("http://")).is_none());
    }

    #[test]
    fn the_file_is_a_list_of_target_groups_with_labels() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("stations.json");
        let count = write(
            &path,
            &[announced("http://10.0.2.14:8080"), announced("junk")],
        )
        .expect("written");
        assert_eq!(count, 1);
        let text = std::fs::read_to_string(&path).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value[0]["targets"][0], "10.0.2.14:8080");
        assert_eq!(value[0]["labels"]["station"], "cam1");
        assert_eq!(value[0]["labels"]["__scheme__"], "http");
    }
}
