//! Named people instead of one shared PIN: a users file (`[panel] users`) with each
//! person's role and an Argon2 hash of their PIN, written by `inspecta users add`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reviews parts.
    Operator,
    /// Also changes thresholds and switches models.
    Engineer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// PHC string of the PIN's Argon2id hash; never the PIN.
    pub pin: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

/// PINs shorter than this are refused: four digits are guessed in minutes at a panel.
const MIN_PIN: usize = 4;

impl Users {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the users file {}", path.display()))?;
        let users: Self = toml::from_str(&text)
            .with_context(|| format!("{} is not a users file", path.display()))?;
        for user in &users.users {
            PasswordHash::new(&user.pin).map_err(|e| {
                anyhow::anyhow!(
                    "{}: user {:?} has no PIN hash ({e})",
                    path.display(),
                    user.name
                )
            })?;
        }
        Ok(users)
    }

    /// The person's role when the name (ignoring case) and PIN match. Every name costs one
    /// hash check, known or not, so the time taken does not say which names exist.
    #[cfg(any(feature = "panel", feature = "fleet"))]
    pub fn sign_in(&self, name: &str, pin: &str) -> Option<(String, Role)> {
        use argon2::password_hash::PasswordVerifier as _;

        let user = self
            .users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name.trim()));
        let hash: &str = match user {
            Some(u) => &u.pin,
            None => decoy(),
        };
        let matches = PasswordHash::new(hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(pin.as_bytes(), &h)
                .is_ok()
        });
        user.filter(|_| matches).map(|u| (u.name.clone(), u.role))
    }

    /// Adds the person, or replaces their role and PIN.
    pub fn set(&mut self, name: &str, role: Role, pin: &str) -> anyhow::Result<()> {
        let name = name.trim();
        if name.is_empty() {
            bail!("a user needs a name");
        }
        if pin.chars().count() < MIN_PIN {
            bail!("a PIN needs at least {MIN_PIN} characters");
        }
        let salt = SaltString::generate(&mut OsRng);
        let pin = argon2::Argon2::default()
            .hash_password(pin.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("cannot hash the PIN: {e}"))?
            .to_string();
        let user = User {
            name: name.to_owned(),
            role,
            pin,
        };
        match self
            .users
            .iter_mut()
            .find(|u| u.name.eq_ignore_ascii_case(name))
        {
            Some(known) => *known = user,
            None => self.users.push(user),
        }
        Ok(())
    }

    /// Writes through a temporary file, readable by its owner only.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;

        let text = toml::to_string(self).context("encoding the users file")?;
        let partial: PathBuf = path.with_extension("toml.partial");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// A hash of a random PIN, checked for unknown names; made once.
#[cfg(any(feature = "panel", feature = "fleet"))]
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let pin = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(pin.as_str().as_bytes(), &salt)
            .map_or_else(|_| String::new(), |h| h.to_string())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_person_signs_in_with_their_own_pin_and_gets_their_role() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut users = Users::default();
        users.set("Anna", Role::Engineer, "4711").unwrap();
        users.set("bert", Role::Operator, "0815").unwrap();
        users.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("4711") && text.contains("$argon2id$"),
            "{text}"
        );
        let mut users = Users::load(&path).unwrap();
        assert_eq!(
            users.sign_in("anna", "4711"),
            Some(("Anna".into(), Role::Engineer))
        );
        assert_eq!(
            users.sign_in("bert", "0815"),
            Some(("bert".into(), Role::Operator))
        );
        assert_eq!(users.sign_in("bert", "4711"), None, "another's PIN");
        assert_eq!(users.sign_in("carl", "4711"), None, "an unknown name");
        assert!(
            users.set("dora", Role::Operator, "12").is_err(),
            "too short"
        );
    }

    #[test]
    fn a_users_file_with_a_plain_pin_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(
            &path,
            "[[user]]\nname = \"a\"\nrole = \"operator\"\npin = \"4711\"\n",
        )
        .unwrap();
        let err = Users::load(&path).unwrap_err();
        assert!(format!("{err:#}").contains("no PIN hash"), "{err:#}");
    }
}
