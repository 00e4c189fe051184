//! The plant view end to end on real servers, in a real browser: a real station publishes to
//! mosquitto, `inspecta fleet ingest` stores it in PostgreSQL (and lists the station for
//! Prometheus, and serves its own metrics), and `inspecta fleet serve` shows it to headless
//! Chromium, which signs in and clicks down from the plant to one part's image, fetched from
//! the station with the station token; and an engineer approves a model rollout waiting at
//! a station. Set INSPECTA_SCREENSHOTS=DIR to keep the pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::broker::{Broker, wait_for};
use common::fleet::{ingest, try_count};
use common::postgres::Postgres;
use common::station::{Station, TOKEN};
use common::{free_port, terminate};
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::json;

const PARTS: i64 = 24;
const PASSWORD: &str = "line-2-quality";

/// Anna, an engineer, and Otto, an operator, both with [`PASSWORD`].
fn users_file(dir: &Path) -> PathBuf {
    let file = dir.join("plant-users.toml");
    for (name, role) in [("anna", "engineer"), ("otto", "operator")] {
        let mut add = Command::new(env!("CARGO_BIN_EXE_inspecta"))
            .args(["users", "add"])
            .arg(&file)
            .args(["--name", name, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        assert!(add.wait().unwrap().success());
    }
    file
}

/// `inspecta fleet serve` on `port`; `extra` is more of fleet.toml (`[mqtt]`).
fn plant_view(dir: &Path, postgres: &Postgres, port: u16, extra: &str) -> Child {
    let config = dir.join("view.toml");
    std::fs::write(
        &config,
        format!(
            "[postgres]\nurl = \"{}\"\n[view]\nlisten = \"127.0.0.1:{port}\"\nusers = \"{}\"\n\
             station_token = \"{TOKEN}\"\n{extra}",
            postgres.url(),
            users_file(dir).display()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .args(["fleet", "serve", "--config"])
        .arg(&config)
        .env_remove("INSPECTA_STATION_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn chromium() -> Browser {
    let options = LaunchOptions::default_builder()
        .path(Some(PathBuf::from("/usr/bin/chromium")))
        // As root (CI) Chromium runs only without its sandbox.
        .sandbox(false)
        .window_size(Some((1280, 1100)))
        .args(vec![
            OsStr::new("--disable-gpu"),
            OsStr::new("--disable-dev-shm-usage"),
        ])
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    Browser::new(options).expect("headless Chromium (apt package chromium)")
}

fn screenshot(tab: &Tab, name: &str) {
    let Some(dir) = std::env::var_os("INSPECTA_SCREENSHOTS") else {
        return;
    };
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
}

/// Signs in at the form, as a person types; the plant page it lands on.
fn sign_in(tab: &Tab, base: &str, name: &str) -> String {
    tab.navigate_to(&format!("{base}/")).unwrap();
    tab.wait_until_navigated().unwrap();
    assert!(tab.get_url().contains("/login"), "{}", tab.get_url());
    tab.wait_for_element("input[name=name]")
        .unwrap()
        .click()
        .unwrap();
    tab.type_str(name).unwrap();
    tab.find_element("input[name=password]")
        .unwrap()
        .click()
        .unwrap();
    tab.type_str(PASSWORD).unwrap();
    tab.find_element("button[type=submit]")
        .unwrap()
        .click()
        .unwrap();
    // The click's navigation may not have begun yet: wait for what only a signed-in page has.
    tab.wait_for_element("header span.who").unwrap();
    tab.get_content().unwrap()
}

/// A session cookie for `name`, signed in over plain HTTP.
fn cookie_of(http: &Client, base: &str, name: &str) -> String {
    let signed = http
        .post(format!("{base}/login"))
        .form(&[("name", name), ("password", PASSWORD), ("next", "/")])
        .send()
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let set = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

/// Clicks the link with exactly this text and waits for the page it opens.
fn follow(tab: &Tab, text: &str) -> String {
    let link = tab
        .find_element_by_xpath(&format!("//main//a[normalize-space(.)='{text}']"))
        .unwrap_or_else(|e| panic!("no link {text:?} on {}: {e}", tab.get_url()));
    let from = tab.get_url();
    link.click().unwrap();
    // The click's navigation may not have begun yet: wait until the address has changed.
    wait_for(
        &format!("the page behind {text:?}"),
        Duration::from_secs(30),
        || tab.get_url() != from,
    );
    tab.wait_until_navigated().unwrap();
    tab.get_content().unwrap()
}

#[test]
fn a_person_signs_in_and_clicks_from_the_plant_down_to_a_part_image() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let postgres = Postgres::start();
    let targets = dir.path().join("stations.json");
    let metrics_port = free_port();
    let ingest = ingest(
        dir.path(),
        "ingest-1",
        &broker,
        &postgres,
        &format!(
            "[prometheus]\ntargets = \"{}\"\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            targets.display()
        ),
    );
    wait_for("the schema", Duration::from_secs(60), || {
        try_count(&postgres, "SELECT count(*) FROM schema_migrations") == 3
    });
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ingest_metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    wait_for("the ingest subscribed", Duration::from_secs(30), || {
        http.get(&ingest_metrics)
            .send()
            .and_then(|r| r.text())
            .is_ok_and(|t| t.contains("inspecta_ingest_broker_connected 1"))
    });
    std::thread::sleep(Duration::from_secs(1));

    let station = Station::start(
        "kind = \"folder\"\npath = \"samples/casting\"\nparts_per_second = 8.0",
        &format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nsite = \"plant-a\"\nline = \"line-2\"\n\
             api_url = \"{{api_url}}\"\n",
            broker.port
        ),
    );
    wait_for(
        "every verdict in the store",
        Duration::from_secs(60),
        || try_count(&postgres, "SELECT count(*) FROM verdicts") == PARTS,
    );
    let mut store = postgres.connect();
    let overridden: i64 = store
        .query_one("SELECT min(id) FROM verdicts WHERE label = 'good'", &[])
        .unwrap()
        .get(0);
    let (status, answer) = station.post(
        &format!("/verdicts/{overridden}/review"),
        Some(TOKEN),
        &json!({"reviewer": "ana", "action": "override", "label": "defect", "reason": "porosity at the rim"}),
    );
    assert!(status.is_success(), "{answer}");
    wait_for("the review in the store", Duration::from_secs(30), || {
        try_count(&postgres, "SELECT count(*) FROM reviews") == 1
    });

    // Prometheus finds the station from its presence, labelled with where it stands.
    wait_for("the Prometheus targets", Duration::from_secs(30), || {
        targets.exists()
    });
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&targets).unwrap()).unwrap();
    assert_eq!(
        listed[0]["targets"][0],
        station.base.trim_start_matches("http://")
    );
    assert_eq!(listed[0]["labels"]["site"], "plant-a");
    assert_eq!(listed[0]["labels"]["station"], "api-test");
    let exposed = http.get(&ingest_metrics).send().unwrap().text().unwrap();
    let stored: i64 = exposed
        .lines()
        .find_map(|l| l.strip_prefix("inspecta_ingest_stored_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stored count in\n{exposed}"));
    assert!(
        stored >= PARTS + 2,
        "24 verdicts, a review, the presence (and KPI reports): {stored}"
    );
    assert!(exposed.contains("inspecta_ingest_pending 0"), "{exposed}");

    let good: i64 = store
        .query_one("SELECT count(*) FROM parts WHERE final_label = 'good'", &[])
        .unwrap()
        .get(0);
    let view_port = free_port();
    let view = plant_view(dir.path(), &postgres, view_port, "");
    let base = format!("http://127.0.0.1:{view_port}");
    wait_for("the plant view", Duration::from_secs(30), || {
        http.get(format!("{base}/health"))
            .send()
            .is_ok_and(|r| r.status() == StatusCode::OK)
    });

    // Nothing without signing in: a browser is sent to sign in, anything else refused,
    // a wrong password and a forged session get nothing.
    let page = http
        .get(format!("{base}/sites/plant-a"))
        .header("accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers()["location"],
        "/login?next=%2Fsites%2Fplant%2Da"
    );
    let image = format!("{base}/sites/plant-a/line-2/api-test/parts/{overridden}/image");
    assert_eq!(
        http.get(&image).send().unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let forged = http
        .get(&image)
        .header("cookie", "inspecta_plant=00ff")
        .send()
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let wrong = http
        .post(format!("{base}/login"))
        .form(&[("name", "anna"), ("password", "guess"), ("next", "/")])
        .send()
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(wrong.text().unwrap().contains("do not match"));

    // In the browser: sign in, then plant -> site -> line -> station -> part.
    let browser = chromium();
    let tab = browser.new_tab().unwrap();
    let plant = sign_in(&tab, &base, "Anna");
    assert!(plant.contains("Signed in as anna"), "{plant}");
    let yield_text = format!("{:.2} %", good as f64 / PARTS as f64 * 100.0);
    assert!(
        plant.contains(&yield_text),
        "plant yield {yield_text} in {plant}"
    );
    assert!(plant.contains("<svg"), "the yield chart");

    let site = follow(&tab, "plant-a");
    assert!(site.contains("Site plant-a"));
    let line = follow(&tab, "line-2");
    assert!(
        line.contains("api-test") && line.contains(">online<"),
        "{line}"
    );
    assert!(
        line.contains("casting-defect"),
        "the station's model: {line}"
    );
    assert!(line.contains("Defect Pareto"));
    assert!(
        line.contains(&format!(">{}<", PARTS - good)),
        "the Pareto counts every defect held, the overridden part too: {line}"
    );
    screenshot(&tab, "plant-view-line");
    let station_page = follow(&tab, "api-test");
    assert!(station_page.contains("Newest parts"));
    assert!(station_page.contains(&station.base), "the announced API");
    let part = follow(&tab, &overridden.to_string());
    assert!(part.contains("porosity at the rim"), "the review: {part}");
    assert!(part.contains("override"));
    let loaded = tab
        .wait_for_element("img.part")
        .unwrap()
        .call_js_fn(
            "function() { return this.complete ? this.naturalWidth : -1; }",
            vec![],
            true,
        )
        .unwrap()
        .value
        .and_then(|v| v.as_i64());
    assert!(
        loaded.is_some_and(|w| w > 0),
        "the part image shows: {loaded:?}"
    );
    screenshot(&tab, "plant-view-part");

    // The station token never reaches the browser; the image came through the view.
    assert!(!part.contains(TOKEN));
    drop(tab);
    drop(browser);

    // A station that is gone is a clear error, not a hang or a broken page.
    drop(station);
    let cookie = cookie_of(&http, &base, "anna");
    let gone = http.get(&image).header("cookie", &cookie).send().unwrap();
    assert_eq!(gone.status(), StatusCode::BAD_GATEWAY);
    assert!(gone.text().unwrap().contains("api-test"));
    let bad_shift = http
        .get(format!("{base}/?shift=yesterday"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(bad_shift.status(), StatusCode::BAD_REQUEST);
    let unknown = http
        .get(format!("{base}/sites/plant-z"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let out = http
        .post(format!("{base}/logout"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = http.get(&image).header("cookie", &cookie).send().unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "signed out");

    for process in [view, ingest] {
        let (status, log) = terminate(process);
        assert!(status.success(), "{log}");
    }
}

#[test]
fn an_engineer_approves_a_waiting_rollout_in_the_browser_and_an_operator_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let postgres = Postgres::start();
    let ingest = ingest(dir.path(), "ingest-1", &broker, &postgres, "");
    wait_for("the schema", Duration::from_secs(60), || {
        try_count(&postgres, "SELECT count(*) FROM schema_migrations") == 3
    });
    let mqtt = format!(
        "[view.commander]\nclient_id = \"plant-view-commands\"\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"ingest-x\"\n\
         [rollout]\nclient_id = \"engineer\"\n",
        broker.port
    );
    let station = Station::start(
        "kind = \"folder\"\npath = \"samples/casting\"\nparts_per_second = 20.0\nrepeat = true",
        &format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nsite = \"plant-a\"\nline = \"line-2\"\n\
             commands = [\"rollout\", \"approve_rollout\", \"rollback\"]\n",
            broker.port
        ),
    );
    wait_for("the station in the store", Duration::from_secs(60), || {
        try_count(&postgres, "SELECT count(*) FROM station_status") == 1
    });
    let view_port = free_port();
    let view = plant_view(dir.path(), &postgres, view_port, &mqtt);
    let base = format!("http://127.0.0.1:{view_port}");
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_for("the plant view", Duration::from_secs(30), || {
        http.get(format!("{base}/health")).send().is_ok()
    });

    // Rolled out on approval only: the station shadows it, then waits.
    let rollout = Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(common::repo())
        .args(["fleet", "rollout", "--config"])
        .arg(dir.path().join("view.toml"))
        .args([
            "--model",
            "models/xsdd",
            "--stations",
            "plant-a/line-2/api-test",
        ])
        .args(["--shadow-parts", "5", "--wait-s", "120"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&rollout.stdout);
    assert!(
        rollout.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&rollout.stderr)
    );
    assert!(report.contains("AwaitingApproval"), "{report}");
    wait_for(
        "the waiting rollout in the store",
        Duration::from_secs(30),
        || {
            try_count(
                &postgres,
                "SELECT count(*) FROM rollout_states WHERE phase = 'awaiting_approval'",
            ) == 1
        },
    );
    let id: String = postgres
        .connect()
        .query_one("SELECT rollout FROM rollout_states", &[])
        .unwrap()
        .get(0);
    let approve = format!("{base}/sites/plant-a/line-2/api-test/rollouts/{id}/approve");

    // An operator sees no button and may not approve; a form without the session's token
    // (another site's page posting here) is refused for anyone.
    let otto = cookie_of(&http, &base, "otto");
    let page = http
        .get(format!("{base}/sites/plant-a/line-2/api-test"))
        .header("cookie", &otto)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("awaiting approval") && !page.contains("Approve"),
        "{page}"
    );
    let anna = cookie_of(&http, &base, "anna");
    for cookie in [&otto, &anna] {
        let refused = http
            .post(&approve)
            .header("cookie", cookie)
            .form(&[("token", "forged")])
            .send()
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
    let (_, status) = station.get("/status");
    assert_eq!(status["model"]["name"], "casting-defect");

    // Anna approves in the browser.
    let browser = chromium();
    let tab = browser.new_tab().unwrap();
    sign_in(&tab, &base, "anna");
    tab.navigate_to(&format!("{base}/sites/plant-a/line-2/api-test"))
        .unwrap();
    tab.wait_until_navigated().unwrap();
    let waiting = tab.get_content().unwrap();
    assert!(
        waiting.contains("is under") || waiting.contains("approval"),
        "{waiting}"
    );
    screenshot(&tab, "plant-view-rollout");
    tab.find_element("table.rollouts button[type=submit]")
        .unwrap()
        .click()
        .unwrap();
    tab.wait_until_navigated().unwrap();
    // The station answers within seconds; the page it leads back to says so.
    tab.wait_for_element("p.note").unwrap();
    let after = tab.get_content().unwrap();
    assert!(after.contains("took the approval"), "{after}");
    station.wait_for("the approved model in charge", |s| {
        s.get("/status").1["model"]["name"] == "xsdd-steel"
    });
    wait_for(
        "the promotion in the store",
        Duration::from_secs(30),
        || {
            try_count(
                &postgres,
                "SELECT count(*) FROM rollout_states WHERE phase = 'promoted' AND payload->>'who' = 'anna'",
            ) == 1
        },
    );
    drop(tab);
    drop(browser);
    drop(station);
    for process in [view, ingest] {
        let (status, log) = terminate(process);
        assert!(status.success(), "{log}");
    }
}
