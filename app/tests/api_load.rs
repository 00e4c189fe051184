//! The API of a real headless station under clients that hold on: half-open sockets, bodies
//! that trickle, more uploads than the station has cores for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::repo;
use common::station::{Station, TOKEN, folder_line, sample};
use reqwest::StatusCode;
use serde_json::Value;

/// Generous: what a test waits for a socket at most, never a figure it checks.
const PATIENCE: Duration = Duration::from_secs(60);

fn address(station: &Station) -> SocketAddr {
    station.base.trim_start_matches("http://").parse().unwrap()
}

/// Reads until the server closes the connection; what it sent before, as text. A reset is a
/// close too (the server dropped the socket); a read that times out fails the test.
fn read_until_closed(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// 300 sockets that send half a request line and nothing more, against a cap of 50
/// connections and 200 file handles for the whole process: the server closes each after the
/// header timeout, `/health` still answers, and the line keeps every part and its images (with
/// every socket accepted at once, the station would have run out of file handles).
#[test]
fn half_open_clients_are_dropped_and_never_take_the_lines_file_handles() {
    let line = format!(
        "kind = \"folder\"\npath = \"{}\"\nparts_per_second = 50.0\nrepeat = true",
        repo().join("samples/casting").display()
    );
    let station =
        Station::with_open_files(&line, "header_timeout_ms = 1000\nmax_connections = 50", 200);
    let address = address(&station);
    let (_, before) = station.get("/status");

    let mut half_open: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect_timeout(&address, PATIENCE).unwrap();
            stream
                .write_all(b"GET /status HTTP/1.1\r\nHost: sta")
                .unwrap();
            stream
        })
        .collect();
    let health = station.client.get(station.url("/health")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    for stream in &mut half_open {
        read_until_closed(stream);
    }

    let (_, after) = station.get("/status");
    assert!(
        after["inspected"].as_u64() > before["inspected"].as_u64(),
        "the line went on: {before} then {after}"
    );
    assert_eq!(after["unreadable"], 0, "no part skipped: {after}");
    assert_eq!(
        after["store"]["image_errors"], 0,
        "every image kept: {after}"
    );
}

/// A body sent more slowly than `body_timeout_ms` allows is refused with the reason, and the
/// connection is closed rather than held open for the rest.
#[test]
fn a_body_that_trickles_past_its_deadline_is_refused() {
    let station = Station::start(&folder_line(), "body_timeout_ms = 1000");
    let image = sample("defect", 0);
    let mut stream = TcpStream::connect_timeout(&address(&station), PATIENCE).unwrap();
    write!(
        stream,
        "POST /predict HTTP/1.1\r\nHost: station\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        image.len()
    )
    .unwrap();
    stream.write_all(&image[..image.len() / 4]).unwrap();

    let answer = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body_timeout_ms"), "{answer}");
    let (_, found) = station.get("/verdicts?verdict=defect&limit=500");
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["origin"] != "api"),
        "nothing was judged from the partial upload: {found}"
    );
}

/// One upload's answer: status, `Retry-After`, body.
type Answer = (StatusCode, Option<String>, Value);

fn upload(station: &Station, part_id: &str, image: &[u8]) -> Answer {
    let response = station
        .client
        .post(station.url(&format!("/predict?part_id={part_id}")))
        .bearer_auth(TOKEN)
        .header("content-type", "image/jpeg")
        .body(image.to_vec())
        .send()
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().unwrap_or(Value::Null))
}

/// With one inference slot, uploads that arrive together are refused beyond it with 503, a
/// JSON reason and `Retry-After`, never queued; each one answered 201 is stored, each refused
/// one is not.
#[test]
fn uploads_beyond_the_inference_slots_get_503_with_retry_after() {
    let station = Station::start(&folder_line(), "max_predictions = 1");
    let image = sample("defect", 0);
    let mut refused = 0;
    // Uploads sent together overlap in the model almost always; a few rounds make it sure.
    for round in 0..10 {
        let answers: Vec<(String, Answer)> = std::thread::scope(|scope| {
            let uploads: Vec<_> = (0..6)
                .map(|i| {
                    let part_id = format!("UP-{round}-{i}");
                    let (station, image) = (&station, &image);
                    std::thread::Builder::new()
                        .name(format!("upload-{i}"))
                        .spawn_scoped(scope, move || {
                            let answer = upload(station, &part_id, image);
                            (part_id, answer)
                        })
                        .unwrap()
                })
                .collect();
            uploads.into_iter().map(|u| u.join().unwrap()).collect()
        });
        for (part_id, (status, retry_after, body)) in answers {
            let (_, found) = station.get(&format!("/verdicts?part_id={part_id}"));
            let stored = found["items"].as_array().unwrap().len();
            match status {
                StatusCode::CREATED => {
                    assert_eq!(stored, 1, "{part_id} answered 201 is stored");
                    assert_eq!(found["items"][0]["id"], body["id"]);
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    refused += 1;
                    assert!(
                        body["error"].as_str().unwrap().contains("max_predictions"),
                        "{body}"
                    );
                    assert_eq!(retry_after.as_deref(), Some("1"));
                    assert_eq!(stored, 0, "{part_id} refused is not stored");
                }
                other => panic!("{part_id}: {other} {body}"),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "some upload beyond the one slot was refused");
}
