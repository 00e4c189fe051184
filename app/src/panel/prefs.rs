//! What the panel remembers between runs of this station: today the operators' chosen size
//! (Ctrl+Plus/Minus), in `panel.toml` beside the record store.

use std::path::{Path, PathBuf};

use inspecta_pipeline::store::RecordStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remembered {
    pub ui_scale: Option<f32>,
}

pub fn path(store: &RecordStore) -> PathBuf {
    store
        .path()
        .parent()
        .map_or_else(|| "panel.toml".into(), |dir| dir.join("panel.toml"))
}

/// What was remembered; nothing when the file is missing, and nothing with a warning when
/// it cannot be read (a preference is never a reason not to start).
pub fn load(path: &Path) -> Remembered {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Remembered::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), "panel preferences not read: {e}");
            return Remembered::default();
        }
    };
    toml::from_str(&text).unwrap_or_else(|e| {
        tracing::warn!(path = %path.display(), "panel preferences ignored: {e}");
        Remembered::default()
    })
}

/// Writes through a temporary file, so a crash mid-write leaves the old file whole.
pub fn save(path: &Path, remembered: &Remembered) -> std::io::Result<()> {
    let text = toml::to_string(remembered).map_err(std::io::Error::other)?;
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_saved_scale_loads_back_and_a_broken_file_is_no_preference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panel.toml");
        assert_eq!(load(&path), Remembered::default());
        let remembered = Remembered {
            ui_scale: Some(1.5),
        };
        save(&path, &remembered).unwrap();
        assert_eq!(load(&path), remembered);
        std::fs::write(&path, "ui_scale = \"big\"").unwrap();
        assert_eq!(load(&path), Remembered::default());
    }
}
