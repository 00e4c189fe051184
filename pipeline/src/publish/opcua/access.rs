//! Who may do what on the server: the endpoints offered, the users and their passwords, and
//! anonymous sessions that may only read once users exist.

use std::collections::BTreeMap;

use async_trait::async_trait;
use opcua::crypto::SecurityPolicy;
use opcua::nodes::AccessLevel;
use opcua::server::authenticator::{
    AuthManager, Password, UserToken, user_pass_security_policy_id, user_pass_security_policy_uri,
};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerEndpoint, ServerUserToken};
use opcua::types::{
    Error, MessageSecurityMode, NodeId, StatusCode, UAString, UserTokenPolicy, UserTokenType,
};
use subtle::ConstantTimeEq as _;

use super::{OpcUaConfig, OpcUaUser, Security};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("[opcua] security lists no endpoint")]
    NoEndpoint,
    #[error(
        "[opcua] users sign in on signed endpoints only: add \"sign\" or \"sign_and_encrypt\" to security"
    )]
    UsersWithoutSecureEndpoint,
    #[error("OPC UA user {user:?}: {reason}")]
    Password { user: String, reason: String },
}

/// The endpoints to offer, by id (one listed twice is offered once), and the user token ids
/// each accepts.
pub fn endpoints(config: &OpcUaConfig) -> Result<Vec<(String, ServerEndpoint)>, AccessError> {
    if config.security.is_empty() {
        return Err(AccessError::NoEndpoint);
    }
    if !config.users.is_empty() && config.security.iter().all(|s| *s == Security::None) {
        return Err(AccessError::UsersWithoutSecureEndpoint);
    }
    let mut tokens = vec![ANONYMOUS_USER_TOKEN_ID.to_owned()];
    tokens.extend(config.users.iter().map(|u| token_id(&u.name)));
    let endpoints = config
        .security
        .iter()
        .map(|security| {
            let (id, policy, mode) = match security {
                Security::None => ("none", SecurityPolicy::None, MessageSecurityMode::None),
                Security::Sign => (
                    "basic256sha256_sign",
                    SecurityPolicy::Basic256Sha256,
                    MessageSecurityMode::Sign,
                ),
                Security::SignAndEncrypt => (
                    "basic256sha256_sign_encrypt",
                    SecurityPolicy::Basic256Sha256,
                    MessageSecurityMode::SignAndEncrypt,
                ),
            };
            (
                id.to_owned(),
                ServerEndpoint::new("/", policy, mode, &tokens),
            )
        })
        .collect();
    Ok(endpoints)
}

/// The library's user table: it checks that every endpoint's token ids exist. The
/// passwords themselves are checked by [`StationAccess`], never by the library.
pub fn user_tokens(config: &OpcUaConfig) -> Vec<(String, ServerUserToken)> {
    config
        .users
        .iter()
        .map(|u| {
            (
                token_id(&u.name),
                ServerUserToken::user_pass(u.name.as_str(), ""),
            )
        })
        .collect()
}

fn token_id(name: &str) -> String {
    format!("user:{name}")
}

/// The server's [`AuthManager`].
#[derive(Debug)]
pub struct StationAccess {
    anonymous: bool,
    /// name -> password.
    users: BTreeMap<String, Password>,
}

impl StationAccess {
    /// Reads every user's password now, so a missing one stops the start, not a login.
    pub fn new(config: &OpcUaConfig) -> Result<Self, AccessError> {
        let users = config
            .users
            .iter()
            .map(|user| Ok((user.name.clone(), Password::new(password(user)?))))
            .collect::<Result<_, AccessError>>()?;
        Ok(Self {
            anonymous: config.anonymous,
            users,
        })
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    fn read_only(&self, token: &UserToken) -> bool {
        token.is_anonymous() && self.has_users()
    }
}

fn password(user: &OpcUaUser) -> Result<String, AccessError> {
    let fail = |reason: String| AccessError::Password {
        user: user.name.clone(),
        reason,
    };
    let password = match (&user.password_env, &user.password_file) {
        (Some(var), None) => std::env::var(var)
            .map_err(|_| fail(format!("the environment variable {var} is not set")))?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        _ => {
            return Err(fail(
                "give exactly one of password_env and password_file".into(),
            ));
        }
    };
    if password.is_empty() {
        return Err(fail("the password is empty".into()));
    }
    Ok(password)
}

#[async_trait]
impl AuthManager for StationAccess {
    async fn authenticate_anonymous_token(&self, _endpoint: &ServerEndpoint) -> Result<(), Error> {
        if self.anonymous {
            Ok(())
        } else {
            Err(Error::new(
                StatusCode::BadIdentityTokenRejected,
                "anonymous sessions are off ([opcua] anonymous = false)",
            ))
        }
    }

    async fn authenticate_username_identity_token(
        &self,
        endpoint: &ServerEndpoint,
        username: &str,
        password: &Password,
    ) -> Result<UserToken, Error> {
        let known = self.users.get(username);
        let valid = known.is_some_and(|expected| {
            bool::from(expected.get().as_bytes().ct_eq(password.get().as_bytes()))
        });
        if valid && endpoint.security_policy() != SecurityPolicy::None {
            tracing::info!(user = username, "OPC UA user signed in");
            return Ok(UserToken(username.to_owned()));
        }
        tracing::warn!(user = username, "OPC UA sign-in refused");
        Err(Error::new(
            StatusCode::BadUserAccessDenied,
            format!("user {username:?}: unknown, or a wrong password"),
        ))
    }

    fn effective_user_access_level(
        &self,
        token: &UserToken,
        user_access_level: AccessLevel,
        _node_id: &NodeId,
    ) -> AccessLevel {
        if self.read_only(token) {
            user_access_level - AccessLevel::CURRENT_WRITE
        } else {
            user_access_level
        }
    }

    fn is_user_executable(&self, token: &UserToken, _method_id: &NodeId) -> bool {
        !self.read_only(token)
    }

    /// Anonymous where allowed; user names on the signed endpoints only.
    fn user_token_policies(&self, endpoint: &ServerEndpoint) -> Vec<UserTokenPolicy> {
        let mut policies = Vec::with_capacity(2);
        if self.anonymous {
            policies.push(UserTokenPolicy {
                // The id the library checks anonymous tokens against (its constant is private).
                policy_id: UAString::from("anonymous"),
                token_type: UserTokenType::Anonymous,
                ..Default::default()
            });
        }
        if self.has_users() && endpoint.security_policy() != SecurityPolicy::None {
            policies.push(UserTokenPolicy {
                policy_id: user_pass_security_policy_id(endpoint),
                token_type: UserTokenType::UserName,
                security_policy_uri: user_pass_security_policy_uri(endpoint),
                ..Default::default()
            });
        }
        policies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> OpcUaConfig {
        toml::from_str(toml).expect("config")
    }

    #[test]
    fn users_need_a_signed_endpoint() {
        let c =
            config("security = [\"none\"]\n[[users]]\nname = \"plc\"\npassword_env = \"PATH\"\n");
        assert!(matches!(
            endpoints(&c),
            Err(AccessError::UsersWithoutSecureEndpoint)
        ));
        assert!(matches!(
            endpoints(&config("security = []\n")),
            Err(AccessError::NoEndpoint)
        ));
        let all = endpoints(&config("")).expect("default endpoints");
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn a_user_without_a_readable_password_stops_the_start() {
        let c = config("[[users]]\nname = \"plc\"\npassword_file = \"/nonexistent/pw\"\n");
        let e = StationAccess::new(&c).expect_err("no password");
        assert!(e.to_string().contains("cannot read /nonexistent/pw"), "{e}");
        let c = config("[[users]]\nname = \"plc\"\n");
        let e = StationAccess::new(&c).expect_err("no source");
        assert!(e.to_string().contains("exactly one"), "{e}");
    }

    #[test]
    fn anonymous_sessions_lose_writes_and_calls_once_users_exist() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").expect("write");
        let c = config(&format!(
            "[[users]]\nname = \"plc\"\npassword_file = \"{}\"\n",
            file.display()
        ));
        let access = StationAccess::new(&c).expect("access");
        let anonymous = UserToken(ANONYMOUS_USER_TOKEN_ID.to_owned());
        let plc = UserToken("plc".into());
        let rw = AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE;
        let node = NodeId::new(1, "x");
        assert_eq!(
            access
                .effective_user_access_level(&anonymous, rw, &node)
                .bits(),
            AccessLevel::CURRENT_READ.bits()
        );
        assert_eq!(
            access.effective_user_access_level(&plc, rw, &node).bits(),
            rw.bits()
        );
        assert!(!access.is_user_executable(&anonymous, &node));
        assert!(access.is_user_executable(&plc, &node));
        assert_eq!(
            access.users.get("plc").map(Password::get),
            Some("s3cret"),
            "the file's line ending is not part of the password"
        );
    }
}
