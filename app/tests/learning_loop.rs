//! The learning loop end to end, small: a model trained on ten sample parts judges the
//! sample line; the parts the station asks for are reviewed over its API; the reviews are
//! exported, a candidate is trained on them and compared; the API lists it with its
//! evidence and promotes it, and the running station switches to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, headless, inspecta, repo, terminate};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const TOKEN: &str = "loop-token";
const REVIEWS: usize = 8;

fn run_ok(args: &[&str]) {
    let out = inspecta(args);
    assert!(
        out.status.success(),
        "inspecta {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Five good and five defect sample parts (familiarity needs ten): the seed v1 learns from.
fn seed(dir: &Path) -> PathBuf {
    let seed = dir.join("seed");
    for class in ["good", "defect"] {
        let from = repo().join("samples/casting").join(class);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&from)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        std::fs::create_dir_all(seed.join(class)).unwrap();
        for f in files.iter().take(5) {
            std::fs::copy(f, seed.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    seed
}

struct Api {
    base: String,
    client: Client,
}

impl Api {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body))
    }
}

#[test]
fn reviews_become_a_candidate_that_is_compared_promoted_and_switched_to() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed(dir.path());
    let v1 = dir.path().join("v1");
    let candidates = dir.path().join("candidates");
    let v2 = candidates.join("v2");
    let store = dir.path().join("records");
    let s = |p: &Path| p.display().to_string();
    run_ok(&[
        "train",
        "classifier",
        "--data",
        &s(&seed),
        "--out",
        &s(&v1),
        "--name",
        "loop-v1",
        "--quiet",
    ]);

    let port = free_port();
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"loop\"\n[model]\npath = \"{}\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = 200.0\n\
             [store]\ndir = \"{}\"\nimages = \"all\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n\
             [learning]\ncandidates = \"{}\"\n",
            s(&v1),
            s(&repo().join("samples/casting")),
            s(&store),
            s(&candidates)
        ),
    )
    .unwrap();
    let child = headless(&config);
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        client: Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while api
        .client
        .get(format!("{}/status", api.base))
        .bearer_auth(TOKEN)
        .send()
        .ok()
        .and_then(|r| r.json::<Value>().ok())
        .is_none_or(|s| s["finished"] != true)
    {
        assert!(Instant::now() < deadline, "the line never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let v1_fingerprint = api.get("/status")["model"]["fingerprint"].clone();

    // No candidate yet; unknown ones are 404.
    assert_eq!(api.get("/candidates"), json!([]));
    let (status, _) = api.post("/candidates/nope/promote", &json!({"who": "eng"}));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The operator reviews what the station asks for, answering from the sample's folder.
    let asked = api.get(&format!("/review-requests?limit={REVIEWS}"));
    assert_eq!(asked["policy"], "active");
    let items = asked["items"].as_array().unwrap();
    assert_eq!(items.len(), REVIEWS);
    // Uncertain parts first, then the judged ones the model hesitated over most.
    let whys: Vec<&str> = items.iter().map(|i| i["why"].as_str().unwrap()).collect();
    let first_judged = whys
        .iter()
        .position(|w| *w != "uncertain")
        .unwrap_or(whys.len());
    assert!(
        whys[first_judged..].iter().all(|w| *w == "hesitant"),
        "{whys:?}"
    );
    assert!(items.iter().all(|i| i["record"]["review"].is_null()));
    let mut reviewed = Vec::new();
    for item in items {
        let record = &item["record"];
        let truth = Path::new(record["origin"].as_str().unwrap())
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let body = if record["label"] == truth.as_str() {
            json!({"reviewer": "ana", "action": "confirm"})
        } else {
            json!({"reviewer": "ana", "action": "override", "label": truth})
        };
        let id = record["id"].as_i64().unwrap();
        let (status, answer) = api.post(&format!("/verdicts/{id}/review"), &body);
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        reviewed.push(id);
    }
    // Reviewed parts are not asked for again.
    let again = api.get(&format!("/review-requests?limit={REVIEWS}"));
    for item in again["items"].as_array().unwrap() {
        assert!(!reviewed.contains(&item["record"]["id"].as_i64().unwrap()));
    }

    // Records -> export -> model: the candidate names the reviews that trained it.
    let exported = dir.path().join("reviews");
    run_ok(&[
        "export-dataset",
        "--store",
        &s(&store),
        "--out",
        &s(&exported),
    ]);
    run_ok(&[
        "train",
        "classifier",
        "--data",
        &s(&seed),
        "--data",
        &s(&exported),
        "--out",
        &s(&v2),
        "--name",
        "loop-v2",
        "--quiet",
    ]);
    let manifest = std::fs::read_to_string(v2.join("model.toml")).unwrap();
    assert!(
        manifest.contains(&format!("reviews = {REVIEWS}")),
        "{manifest}"
    );
    let mut kept = csv::Reader::from_path(v2.join("reviews.csv")).unwrap();
    let column = kept
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "record_id")
        .unwrap();
    let mut ids: Vec<i64> = kept
        .records()
        .map(|r| r.unwrap()[column].parse().unwrap())
        .collect();
    ids.sort_unstable();
    reviewed.sort_unstable();
    assert_eq!(ids, reviewed);

    // Without its comparison the candidate is listed but not promoted.
    let listed = api.get("/candidates");
    assert_eq!(listed[0]["id"], "v2");
    assert_eq!(listed[0]["reviews"], REVIEWS);
    assert!(listed[0]["comparison"].is_null());
    let (status, refused) = api.post("/candidates/v2/promote", &json!({"who": "eng"}));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        refused["error"].as_str().unwrap().contains("no comparison"),
        "{refused}"
    );

    // Model -> compare: both reports, the JSON and the page.
    run_ok(&[
        "eval",
        "--compare",
        &s(&v1),
        &s(&v2),
        &s(&repo().join("samples/casting")),
        "--out",
        &s(&v2.join("compare")),
        "--quiet",
    ]);
    assert!(v2.join("compare/compare.html").is_file());
    let listed = api.get("/candidates");
    let comparison = &listed[0]["comparison"];
    assert_eq!(comparison["a"], format!("loop-v1 {}", read_version(&v1)));
    assert!(comparison["mcnemar_p"].as_f64().unwrap() <= 1.0);
    assert_eq!(listed[0]["compared_with_running"], true);

    // Compare -> switch: promoted (forced only if the comparison found it worse).
    let worse = comparison["better"] == "A";
    let (status, answer) = api.post(
        "/candidates/v2/promote",
        &json!({"who": "eng", "force": worse}),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    let running = api.get("/status")["model"].clone();
    assert_eq!(running["name"], "loop-v2");
    assert_ne!(running["fingerprint"], v1_fingerprint);
    assert_eq!(answer["model"]["fingerprint"], running["fingerprint"]);
    let promoted: Value =
        serde_json::from_str(&std::fs::read_to_string(v2.join("promoted.json")).unwrap()).unwrap();
    assert_eq!(promoted["who"], "eng");
    assert_eq!(
        promoted["replaced"],
        format!("loop-v1 {}", read_version(&v1))
    );
    assert!(
        v2.join("compare/compare.json").is_file(),
        "the comparison stays with the model"
    );
    assert_eq!(api.get("/candidates")[0]["promoted"]["who"], "eng");

    let (exit, log) = terminate(child);
    assert!(exit.success(), "{log}");
    assert!(log.contains("candidate model promoted"), "{log}");
}

fn read_version(model: &Path) -> String {
    let text = std::fs::read_to_string(model.join("model.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table["version"].as_str().unwrap().to_owned()
}
