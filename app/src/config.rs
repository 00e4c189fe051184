//! `station.toml`: what a headless station runs. Unknown keys are errors that name the key,
//! so a typo never silently falls back to a default on the line.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use inspecta_pipeline::source::SourceSpec;
use inspecta_pipeline::station::Reconnect;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    pub station: StationSection,
    pub model: ModelSection,
    pub source: SourceSpec,
    #[serde(default)]
    pub reconnect: Reconnect,
    #[serde(default)]
    pub output: OutputSection,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    /// Shown in logs and, later, in every record and message of this station.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model directory, manifest or .onnx (relative paths: from the working directory).
    pub path: PathBuf,
    /// Threads inside one inference; more lowers the latency of each part.
    #[serde(default = "default_threads")]
    pub threads: usize,
}

fn default_threads() -> usize {
    super::commands::available_threads()
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Append every verdict as one JSON line to this file.
    pub jsonl: Option<PathBuf>,
}

impl StationConfig {
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid station config {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StationConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn example_config_parses() {
        let config =
            parse(include_str!("../../samples/station.example.toml")).expect("example parses");
        assert_eq!(config.station.name, "line1-cam1");
        assert!(matches!(config.source, SourceSpec::Folder { .. }));
        assert_eq!(config.reconnect.max_ms, 10_000);
    }

    #[test]
    fn unknown_key_is_named() {
        let text = include_str!("../../samples/station.example.toml")
            .replace("[station]", "[station]\nlocation = \"hall 3\"");
        let err = parse(&text).expect_err("unknown key").to_string();
        assert!(err.contains("location"), "{err}");
    }

    #[test]
    fn unknown_source_kind_is_named() {
        let text = "[station]\nname = \"s\"\n[model]\npath = \"m\"\n[source]\nkind = \"gige\"\n";
        let err = parse(text).expect_err("unknown kind").to_string();
        assert!(err.contains("gige"), "{err}");
    }
}
