//! The HTTP API of a real headless station (the `inspecta` binary), spoken to over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::process::Command;

use common::station::{Station, TOKEN, folder_line, sample};
use common::{free_port, repo};
use reqwest::StatusCode;
use serde_json::Value;

/// Waits until the folder line has played and every part is stored.
fn played(station: &Station) {
    station.wait_for("all 24 parts stored", |s| {
        let (_, status) = s.get("/status");
        status["finished"] == true
    });
}

#[test]
fn records_are_listed_paged_filtered_and_their_images_served() {
    let station = Station::start(&folder_line(), "");
    played(&station);
    let (_, status) = station.get("/status");
    assert_eq!(
        status["store"]["records"], 24,
        "finished means every part stored"
    );
    assert_eq!(status["source"]["state"], "ended");
    let (code, health) = station.get("/health");
    assert_eq!(
        (code, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    let mut ids = Vec::new();
    let mut path = "/verdicts?limit=10".to_owned();
    loop {
        let (code, page) = station.get(&path);
        assert_eq!(code, StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 10);
        ids.extend(items.iter().map(|r| r["id"].as_i64().unwrap()));
        match page["next"].as_i64() {
            Some(next) => path = format!("/verdicts?limit=10&before={next}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 24);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );

    let (_, status) = station.get("/status");
    let (_, defects) = station.get("/verdicts?verdict=defect&limit=500");
    let defects = defects["items"].as_array().unwrap();
    assert_eq!(
        defects.len() as u64,
        status["verdicts"]["defect"].as_u64().unwrap()
    );
    assert!(defects.len() >= 10, "the samples hold 12 defects");

    // A defect's image is kept and served as a JPEG of the part.
    let defect = defects[0]["id"].as_i64().unwrap();
    let response = station
        .client
        .get(station.url(&format!("/verdicts/{defect}/image")))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let image = image::load_from_memory(&response.bytes().unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (300, 300));

    // A passed part's image waits in the ring of recent parts, so a late review can keep
    // it; the oldest ones beyond `recent_images` have none.
    let (_, goods) = station.get("/verdicts?verdict=good&limit=1");
    let good = goods["items"][0]["id"].as_i64().unwrap();
    let response = station
        .client
        .get(station.url(&format!("/verdicts/{good}/image")))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (code, body) = station.get("/verdicts/999999");
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    let (code, body) = station.get("/verdicts?colour=red");
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("colour"), "{body}");
    let (code, _) = station.get("/verdicts?since=yesterday");
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[test]
fn reviews_need_the_token_and_are_kept_with_who_and_why() {
    let station = Station::start(&folder_line(), "");
    played(&station);
    let (_, defects) = station.get("/verdicts?verdict=defect&limit=1");
    let id = defects["items"][0]["id"].as_i64().unwrap();
    let path = format!("/verdicts/{id}/review");
    let overriding = serde_json::json!({
        "reviewer": "anna", "action": "override", "label": "good", "reason": "casting flash"
    });

    let (code, _) = station.post(&path, None, &overriding);
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = station.post(&path, Some("wrong"), &overriding);
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    let unknown = serde_json::json!({"reviewer": "anna", "action": "override", "label": "crack"});
    let (code, body) = station.post(&path, Some(TOKEN), &unknown);
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("defect"), "{body}");
    let anonymous = serde_json::json!({"action": "confirm"});
    let (code, _) = station.post(&path, Some(TOKEN), &anonymous);
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);

    let (code, review) = station.post(&path, Some(TOKEN), &overriding);
    assert_eq!(code, StatusCode::CREATED, "{review}");
    assert_eq!(review["before"], "defect");
    assert_eq!(review["after"], "good");

    let (_, record) = station.get(&format!("/verdicts/{id}"));
    assert_eq!(record["label"], "good");
    assert_eq!(record["verdict"], "defect");
    assert_eq!(record["review"]["reviewer"], "anna");
    assert_eq!(record["review"]["reason"], "casting flash");
    let (_, reviewed) = station.get("/verdicts?reviewed=true");
    assert_eq!(reviewed["items"].as_array().unwrap().len(), 1);

    // The KPIs see the override as a false reject: one of one reviewed rejects.
    let (code, kpis) = station.get("/kpis");
    assert_eq!(code, StatusCode::OK, "{kpis}");
    let total = &kpis["total"];
    assert_eq!(total["parts"], 24);
    assert_eq!(
        (
            total["reviewed_defects"].as_u64(),
            total["false_rejects"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(total["rates"]["false_reject"], 1.0);
    assert!(
        total["rates"]["escape_estimate"].is_null(),
        "no audit, no estimate"
    );
    let hours = kpis["hours"].as_array().unwrap();
    assert_eq!(
        hours
            .iter()
            .map(|h| h["parts"].as_u64().unwrap())
            .sum::<u64>(),
        24
    );
    let (code, _) = station.get("/kpis?since=2030-01-01T00:00:00Z&until=2029-01-01T00:00:00Z");
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = station.get("/kpis?since=yesterday");
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, body) = station.get("/kpis?since=1970-01-01T00:00:00Z");
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("366 days"),
        "{body}"
    );
    // The ends of the calendar: an answer, never a panicked handler.
    for query in [
        "until=-009999-01-02T01:59:59Z",
        "since=-009999-01-01T00:00:00Z&until=9999-12-30T22:00:00Z",
        "until=9999-12-31T23:59:59Z",
    ] {
        let (code, body) = station.get(&format!("/kpis?{query}"));
        assert!(
            code == StatusCode::OK || code == StatusCode::BAD_REQUEST,
            "{query}: {code} {body}"
        );
        assert!(body.is_object(), "{query}: a JSON answer");
    }

    let missing = station.post(
        "/verdicts/999999/review",
        Some(TOKEN),
        &serde_json::json!({"reviewer": "anna", "action": "confirm"}),
    );
    assert_eq!(missing.0, StatusCode::NOT_FOUND);

    let metrics = station
        .client
        .get(station.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("inspecta_reviews_total{action=\"override\"} 1"),
        "{metrics}"
    );

    // The review is in the station's own database, not just in the API's memory.
    let db = rusqlite::Connection::open(station.dir.path().join("records/records.sqlite")).unwrap();
    let (reviewer, after): (String, String) = db
        .query_row(
            "SELECT reviewer, after FROM reviews WHERE verdict_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((reviewer.as_str(), after.as_str()), ("anna", "good"));
}

#[test]
fn control_charts_are_drawn_from_the_stored_line() {
    let station = Station::start(&folder_line(), "[spc]\nsubgroup = 4\nbaseline = 3\n");
    played(&station);
    let (status, body) = station.get("/spc");
    assert_eq!(status, StatusCode::OK, "{body}");
    let charts = body["charts"].as_array().unwrap();
    let all = charts.iter().find(|c| c["name"] == "all").unwrap();
    // 24 parts in subgroups of 4: six points, each a defect proportion.
    let points = all["points"].as_array().unwrap();
    assert_eq!(points.len(), 6);
    assert!(
        points
            .iter()
            .all(|p| (0.0..=1.0).contains(&p.as_f64().unwrap()))
    );
    assert!(all["limits"]["centre"].as_f64().is_some());
    assert!(
        charts.iter().any(|c| c["name"] == "defect"),
        "one chart per class"
    );
    let alarms = body["alarms"].as_array().unwrap().len();
    let metrics = station
        .client
        .get(station.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let counted = format!("inspecta_spc_alarms_total {alarms}\n");
    assert!(
        metrics.contains(&counted),
        "{counted} missing in\n{metrics}"
    );

    let plain = Station::start(&folder_line(), "");
    assert_eq!(plain.get("/spc").0, StatusCode::NOT_FOUND);
}

#[test]
fn metrics_expose_counters_histograms_and_source_state() {
    let station = Station::start(&folder_line(), "");
    played(&station);
    let response = station
        .client
        .get(station.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().unwrap();
    for expected in [
        "inspecta_frames_total 24",
        "inspecta_frames_dropped_total 0",
        "inspecta_records_stored_total 24",
        "inspecta_source_state{state=\"ended\"} 1",
        "inspecta_source_state{state=\"online\"} 0",
        "inspecta_stage_seconds_count{stage=\"inference\"} 24",
        "inspecta_stage_seconds_count{stage=\"capture_to_verdict\"} 24",
        "inspecta_stage_seconds_bucket{le=\"+Inf\",stage=\"preprocess\"} 24",
        "inspecta_station_info{station=\"api-test\"} 1",
        "inspecta_model{model=\"casting-defect\",model_version=\"2.0.0\"} 1",
        "inspecta_quality_rate_last_hour{rate=\"yield\"} 0.5",
    ] {
        assert!(text.contains(expected), "{expected} missing in\n{text}");
    }
    let verdicts: u64 = text
        .lines()
        .filter(|l| l.starts_with("inspecta_verdicts_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(verdicts, 24);
    assert!(text.trim_end().ends_with("# EOF"));
}

#[test]
fn predict_judges_uploads_and_rejects_bad_images_with_a_reason() {
    let out = tempfile::tempdir().unwrap();
    let jsonl = out.path().join("verdicts.jsonl");
    let station = Station::start(
        &folder_line(),
        &format!(
            "max_upload_bytes = 200000\n[output]\njsonl = \"{}\"",
            jsonl.display()
        ),
    );
    let defect = sample("defect", 0);

    let (code, record) = station.upload("?part_id=UP-1", defect.clone());
    let uploaded = record["id"].clone();
    assert_eq!(code, StatusCode::CREATED, "{record}");
    assert_eq!(record["verdict"], "defect");
    assert_eq!(record["part_id"], "UP-1");
    assert_eq!(record["origin"], "api");
    assert_eq!(record["has_image"], true);
    let (_, found) = station.get("/verdicts?part_id=UP-1");
    assert_eq!(found["items"][0]["id"], record["id"]);

    let form = reqwest::blocking::multipart::Form::new().part(
        "image",
        reqwest::blocking::multipart::Part::bytes(sample("good", 0)).file_name("part.jpeg"),
    );
    let response = station
        .client
        .post(station.url("/predict"))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let record: Value = response.json().unwrap();
    assert_eq!(record["verdict"], "good");

    // Uploads reach the JSON-lines file like the line's parts, whole and with their ids.
    let lines: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let from_api: Vec<&Value> = lines.iter().filter(|l| l["origin"] == "api").collect();
    assert_eq!(from_api.len(), 2, "{lines:?}");
    assert_eq!(from_api[0]["id"], uploaded);
    assert_eq!(from_api[0]["part_id"], "UP-1");
    assert_eq!(from_api[0]["verdict"], "defect", "{}", from_api[0]);
    assert_eq!(from_api[1]["id"], record["id"]);
    assert!(from_api.iter().all(|l| l.get("sequence").is_none()));

    let (code, body) = station.upload("", defect[..defect.len() / 2].to_vec());
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("truncated"),
        "{body}"
    );
    let (code, body) = station.upload("", b"GIF89a this is no image at all".to_vec());
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("decode"), "{body}");
    let (code, body) = station.upload("", Vec::new());
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, _) = station.upload("", vec![0xFF; 300_000]);
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);

    let response = station
        .client
        .post(station.url("/predict"))
        .body(defect)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    // A free-running station has no trigger.
    let (code, body) = station.post("/trigger", Some(TOKEN), &serde_json::json!({}));
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
}

#[test]
fn http_and_stdin_triggers_judge_a_part_each() {
    let mut station = Station::start(
        "kind = \"test_pattern\"\npattern = \"ball\"\nwidth = 320\nheight = 240\nfps = 30",
        "[trigger]\nenabled = true\nstdin = true\nframe_timeout_ms = 3000",
    );
    let (code, record) = station.post(
        "/trigger",
        Some(TOKEN),
        &serde_json::json!({"part_id": "T-1"}),
    );
    assert_eq!(code, StatusCode::OK, "{record}");
    assert_eq!(record["part_id"], "T-1");
    assert!(
        record["id"].as_i64().is_some(),
        "the record is stored before the reply"
    );

    let response = station
        .client
        .post(station.url("/trigger"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let record: Value = response.json().unwrap();
    assert!(record["part_id"].as_str().unwrap().starts_with("api-test-"));

    writeln!(station.stdin(), "S-1\nS-2").unwrap();
    station.stdin().flush().unwrap();
    station.wait_for("stdin triggers judged", |s| {
        let (_, page) = s.get("/verdicts?part_id=S-2");
        !page["items"].as_array().unwrap().is_empty()
    });
    let (_, s1) = station.get("/verdicts?part_id=S-1");
    assert_eq!(s1["items"].as_array().unwrap().len(), 1);

    let (_, status) = station.get("/status");
    assert_eq!(status["mode"], "triggered");
    assert_eq!(status["triggers"], 4);
    assert_eq!(
        status["inspected"], 4,
        "a triggered station judges only triggered parts"
    );
}

#[test]
fn a_taken_port_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"s\"\n[model]\npath = \"models/casting\"\n[source]\n{}\n\
             [store]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            folder_line(),
            dir.path().join("records").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["run", "--headless", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

/// With a token, the factory's data (records, images, KPIs, metrics) needs it too; only
/// `/health` stays open for monitors, and `/metrics` when the config opens it.
#[test]
fn every_endpoint_but_health_needs_the_token() {
    let station = Station::start(&folder_line(), "");
    for path in [
        "/status",
        "/verdicts",
        "/verdicts/1",
        "/verdicts/1/image",
        "/kpis",
        "/spc",
        "/metrics",
    ] {
        let response = station.client.get(station.url(path)).send().unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let wrong = station
            .client
            .get(station.url(path))
            .bearer_auth("not-the-token")
            .send()
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let health = station.client.get(station.url("/health")).send().unwrap();
    assert_ne!(health.status(), StatusCode::UNAUTHORIZED);
    // The scheme is case-insensitive (RFC 9110).
    let lower = station
        .client
        .get(station.url("/status"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(lower.status(), StatusCode::OK);

    let open = Station::start(&folder_line(), "open_metrics = true");
    let metrics = open.client.get(open.url("/metrics")).send().unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let status = open.client.get(open.url("/status")).send().unwrap();
    assert_eq!(status.status(), StatusCode::UNAUTHORIZED);
}

/// `token = ""` would turn authentication off without a word: the station refuses it.
#[test]
fn an_empty_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"api-test\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\n{}\n[store]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{}\"\ntoken = \"\"\n",
            folder_line(),
            dir.path().join("records").display(),
            free_port()
        ),
    )
    .unwrap();
    for env in [None, Some("  ")] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_inspecta"));
        command
            .current_dir(repo())
            .args(["run", "--headless", "--config"])
            .arg(&config);
        match env {
            Some(token) => command.env("INSPECTA_API_TOKEN", token),
            None => command.env_remove("INSPECTA_API_TOKEN"),
        };
        let out = command.output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{log}");
        assert!(
            log.contains("is empty, which would turn the API's authentication off"),
            "{log}"
        );
    }
}

/// A 261 KB PNG that declares 16384x16384 (805 MB once decoded) is refused from its header
/// with 413 and a reason, as is a real part above a configured pixel cap; the station goes
/// on judging.
#[test]
fn a_decompression_bomb_is_refused_before_it_is_decoded() {
    let bomb = std::fs::read(repo().join("vision/tests/fixtures/bomb-16384.png")).unwrap();
    let station = Station::start(&folder_line(), "");
    let (code, body) = station.upload("", bomb);
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("16384x16384"),
        "{body}"
    );
    let (code, body) = station.upload("", sample("defect", 0));
    assert_eq!(code, StatusCode::CREATED, "{body}");

    let capped = Station::start(&folder_line(), "max_image_pixels = 10000");
    let (code, body) = capped.upload("", sample("defect", 0));
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("10000 allowed"),
        "{body}"
    );
}

/// Every error is JSON, a wrong method too.
#[test]
fn a_wrong_method_gets_a_json_error() {
    let station = Station::start(&folder_line(), "");
    let response = station
        .client
        .get(station.url("/predict"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("method"), "{body}");
}
