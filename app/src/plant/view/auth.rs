//! Signing in to the plant view: the people of a users file (`inspecta users add`), a
//! random session id in an HttpOnly, SameSite=Strict cookie, sessions held in memory (a
//! restart signs everyone out, which is the safe way round). Each session has its own form
//! token, which every form that changes something carries back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Shared, pages};
use crate::users::Role;

const COOKIE: &str = "inspecta_plant";
/// A wrong password costs this much more: guessing is slow even before Argon2.
const FAILED_SIGN_IN_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Session {
    signed_in: SignedIn,
    expires: Instant,
}

#[derive(Debug)]
pub struct Sessions {
    held: Mutex<HashMap<String, Session>>,
    lasts: Duration,
    secure: bool,
}

impl Sessions {
    pub fn new(lasts: Duration, secure: bool) -> Self {
        Self {
            held: Mutex::new(HashMap::new()),
            lasts,
            secure,
        }
    }

    fn open(&self, name: String, role: Role) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.retain(|_, s| s.expires > now);
        held.insert(
            id.clone(),
            Session {
                signed_in: SignedIn {
                    name,
                    engineer: role == Role::Engineer,
                    token: random_hex(),
                },
                expires: now + self.lasts,
            },
        );
        id
    }

    fn who(&self, id: &str) -> Option<SignedIn> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.get(id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.signed_in.clone())
    }

    fn close(&self, id: &str) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.remove(id);
    }

    fn cookie(&self, id: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }
}

/// The signed-in person: the pages' header, and what they may change.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub name: String,
    /// May approve rollouts.
    pub engineer: bool,
    /// This session's form token.
    pub token: String,
}

impl SignedIn {
    /// A form sent from one of this session's own pages.
    pub fn sent(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.token.as_bytes().ct_eq(token.as_bytes()))
    }
}

fn random_hex() -> String {
    let mut bytes = [0_u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Every page but sign-in and health: a browser without a session goes to the sign-in
/// page (and back here after), anything else gets 401.
pub async fn require(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let who = session_id(request.headers()).and_then(|id| state.sessions.who(id));
    if let Some(signed_in) = who {
        request.extensions_mut().insert(signed_in);
        return next.run(request).await;
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let wants_page = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_page {
        let next_page =
            percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC);
        Redirect::to(&format!("/login?next={next_page}")).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "sign in at /login first").into_response()
    }
}

#[derive(Debug, Deserialize)]
pub struct NextPage {
    next: Option<String>,
}

/// Only a path of this site: `//evil.example` or `https://...` would send a person away.
fn local(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/")
}

pub async fn form(Query(next): Query<NextPage>) -> Response {
    Html(pages::login(local(next.next.as_deref()), None).into_string()).into_response()
}

#[derive(Debug, Deserialize)]
pub struct Credentials {
    name: String,
    password: String,
    next: Option<String>,
}

pub async fn sign_in(State(state): State<Shared>, Form(form): Form<Credentials>) -> Response {
    let users = Arc::clone(&state.users);
    let (name, password) = (form.name.clone(), form.password);
    // Argon2 takes tens of milliseconds of CPU: off the request threads.
    let checked = tokio::task::spawn_blocking(move || users.sign_in(&name, &password)).await;
    let next = local(form.next.as_deref()).to_owned();
    match checked {
        Ok(Some((name, role))) => {
            tracing::info!(user = name, "plant view: signed in");
            let id = state.sessions.open(name, role);
            let cookie = state.sessions.cookie(&id, state.sessions.lasts.as_secs());
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        _ => {
            tracing::warn!(user = form.name, "plant view: sign-in refused");
            tokio::time::sleep(FAILED_SIGN_IN_PAUSE).await;
            (
                StatusCode::UNAUTHORIZED,
                Html(
                    pages::login(&next, Some("That name and password do not match.")).into_string(),
                ),
            )
                .into_response()
        }
    }
}

pub async fn sign_out(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        state.sessions.close(id);
    }
    let expired = state.sessions.cookie("", 0);
    ([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local(Some("/sites/plant-a")), "/sites/plant-a");
        for away in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil.example",
            "x",
        ] {
            assert_eq!(local(Some(away)), "/", "{away}");
        }
        assert_eq!(local(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "theme=dark; inspecta_plant=abc123; other=1"
                .parse()
                .expect("header"),
        );
        assert_eq!(session_id(&headers), Some("abc123"));
    }

    #[test]
    fn a_session_ends_when_closed_or_expired() {
        let sessions = Sessions::new(Duration::from_secs(60), false);
        let id = sessions.open("anna".into(), Role::Engineer);
        let anna = sessions.who(&id).expect("signed in");
        assert_eq!(anna.name, "anna");
        assert!(anna.engineer);
        assert!(anna.sent(&anna.token));
        assert!(!anna.sent("forged"));
        let other = sessions.open("ben".into(), Role::Operator);
        let ben = sessions.who(&other).expect("signed in");
        assert!(!ben.engineer);
        assert!(!anna.sent(&ben.token), "each session has its own token");
        assert!(sessions.who("forged").is_none());
        sessions.close(&id);
        assert!(sessions.who(&id).is_none());
        let short = Sessions::new(Duration::ZERO, false);
        let id = short.open("ben".into(), Role::Operator);
        assert!(short.who(&id).is_none());
    }
}
