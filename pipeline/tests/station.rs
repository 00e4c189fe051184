//! The live station end to end: real sources, the real model, frames dropped and sources lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use inspecta_pipeline::source::SourceSpec;
use inspecta_pipeline::station::status::SourceState;
use inspecta_pipeline::station::{LiveVerdict, Reconnect, Station, TriggerError};
use inspecta_vision::inspection::{UncertainReason, Verdict};

use common::*;

fn collect(station: &Station, limit: Duration) -> Vec<LiveVerdict> {
    let deadline = Instant::now() + limit;
    let mut verdicts = Vec::new();
    while Instant::now() < deadline {
        match station.results().recv_timeout(Duration::from_millis(100)) {
            Ok(v) => verdicts.push(v),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    verdicts
}

#[test]
fn every_part_of_a_folder_line_gets_a_verdict() {
    let source = SourceSpec::Folder {
        path: samples().join("casting"),
        parts_per_second: 200.0,
        repeat: false,
        start_after: None,
    };
    let station = Station::start(&load("casting"), source, Reconnect::default()).unwrap();
    let verdicts = collect(&station, Duration::from_secs(120));
    let (pending, status) = station.stop();
    assert!(
        pending.is_empty(),
        "the result channel closed only after the last part"
    );
    // Parts are not video frames: none may be skipped, however slow the model.
    assert_eq!(verdicts.len(), 24);
    assert_eq!(
        verdicts.iter().map(|v| v.sequence).collect::<Vec<_>>(),
        (0..24).map(Some).collect::<Vec<_>>()
    );
    assert_eq!(
        (status.frames_in, status.frames_dropped, status.inspected()),
        (24, 0, 24)
    );
    assert_eq!(status.source, SourceState::Ended);
    let defects = verdicts
        .iter()
        .filter(|v| v.inspection.verdict.name() == "defect")
        .count();
    assert!(
        (10..=14).contains(&defects),
        "{defects} defects among 12 defective samples"
    );
    assert!(verdicts.iter().all(|v| v.origin.is_some()));
}

#[test]
fn a_camera_faster_than_the_model_drops_frames_instead_of_queueing() {
    let source = SourceSpec::TestPattern {
        pattern: "ball".into(),
        width: 320,
        height: 240,
        fps: 120,
    };
    let station = Station::start(&load("casting"), source, Reconnect::default()).unwrap();
    let verdicts = collect(&station, Duration::from_secs(3));
    let (pending, status) = station.stop();
    // Verdicts made while stopping are handed back, not lost.
    assert_eq!(
        (verdicts.len() + pending.len()) as u64,
        status.inspected(),
        "{status:?}"
    );
    assert!(verdicts.len() >= 2, "{} verdicts", verdicts.len());
    assert!(status.frames_dropped > 0, "{status:?}");
    // Every captured frame was either inspected, dropped, or is the one left in the mailbox.
    let accounted = status.inspected() + status.frames_dropped;
    assert!(status.frames_in - accounted <= 1, "{status:?}");
    // Newest frame wins: the inspected sequence numbers skip the dropped ones.
    let sequences: Vec<u64> = verdicts.iter().filter_map(|v| v.sequence).collect();
    assert!(sequences.windows(2).all(|w| w[1] > w[0]), "{sequences:?}");
    assert!(
        sequences.windows(2).any(|w| w[1] > w[0] + 1),
        "{sequences:?}"
    );
}

#[test]
fn a_source_that_appears_later_is_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("late.avi");
    let source = SourceSpec::File {
        path: clip.clone(),
        realtime: false,
    };
    let reconnect = Reconnect {
        initial_ms: 100,
        max_ms: 400,
        stall_timeout_ms: 5_000,
    };
    let station = Station::start(&load("casting"), source, reconnect).unwrap();
    // Wait until the station has failed to open the missing file at least twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    let attempts = loop {
        if let SourceState::Reconnecting { attempt, error } = station.status().snapshot().source
            && attempt >= 2
        {
            assert!(error.contains("late.avi"), "{error}");
            break attempt;
        }
        assert!(Instant::now() < deadline, "never reported reconnecting");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(station.results().try_recv().is_err());
    write_clip(&clip, 10);
    let verdicts = collect(&station, Duration::from_secs(60));
    let (pending, status) = station.stop();
    assert!(attempts >= 2);
    assert!(pending.is_empty(), "a finished file leaves nothing pending");
    assert!(!verdicts.is_empty(), "no verdicts after the file appeared");
    assert_eq!(status.source, SourceState::Ended);
}

fn camera() -> SourceSpec {
    SourceSpec::TestPattern {
        pattern: "ball".into(),
        width: 320,
        height: 240,
        fps: 30,
    }
}

#[test]
fn a_triggered_station_judges_one_fresh_frame_per_trigger() {
    let (station, triggers) = Station::start_triggered(
        &load("casting"),
        camera(),
        Reconnect::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    // The camera runs, but without a trigger nothing is judged.
    let idle = collect(&station, Duration::from_millis(1500));
    assert!(idle.is_empty(), "{} verdicts without a trigger", idle.len());
    assert!(station.status().snapshot().frames_in > 10);

    let mut fired = Vec::new();
    for part in ["A-1", "A-2", "A-3"] {
        let at = Instant::now();
        triggers.fire(part).unwrap();
        let verdict = station
            .results()
            .recv_timeout(Duration::from_secs(10))
            .expect("a verdict per trigger");
        fired.push((at, verdict));
    }
    let mut sequences = Vec::new();
    for (at, verdict) in &fired {
        // The frame judged was captured after the trigger, not one left over from before.
        assert!(verdict.latency <= at.elapsed());
        sequences.push(verdict.sequence);
    }
    assert_eq!(
        fired
            .iter()
            .map(|(_, v)| v.part_id.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["A-1", "A-2", "A-3"]
    );
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    let (pending, status) = station.stop();
    assert!(pending.is_empty());
    assert_eq!((status.triggers, status.triggers_missed), (3, 0));
    assert_eq!(status.inspected(), 3);
    assert_eq!(
        status.frames_dropped, 0,
        "frames nobody asked for are not drops"
    );
}

#[test]
fn a_triggered_folder_line_hands_out_the_next_part_per_trigger() {
    let source = SourceSpec::Folder {
        path: samples().join("casting"),
        parts_per_second: 100.0,
        repeat: false,
        start_after: None,
    };
    let (station, triggers) = Station::start_triggered(
        &load("casting"),
        source,
        Reconnect::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..4 {
        triggers.fire(format!("P{i}")).unwrap();
        let verdict = station
            .results()
            .recv_timeout(Duration::from_secs(10))
            .unwrap();
        assert_eq!(verdict.sequence, Some(i), "no part skipped while waiting");
        assert_eq!(verdict.part_id, Some(format!("P{i}")));
    }
    station.stop();
}

#[test]
fn a_trigger_without_a_frame_is_counted_as_missed_and_handed_on_as_uncertain() {
    let dir = tempfile::tempdir().unwrap();
    let source = SourceSpec::File {
        path: dir.path().join("camera-not-there.avi"),
        realtime: true,
    };
    let (station, triggers) = Station::start_triggered(
        &load("casting"),
        source,
        Reconnect::default(),
        Duration::from_millis(300),
    )
    .unwrap();
    triggers.fire("lost-part").unwrap();
    let verdicts = collect(&station, Duration::from_secs(1));
    // The part went by without a picture: it is still a verdict, uncertain for want of one.
    assert_eq!(verdicts.len(), 1);
    let missed = &verdicts[0];
    assert_eq!(missed.part_id.as_deref(), Some("lost-part"));
    assert_eq!(
        missed.inspection.verdict,
        Verdict::Uncertain {
            reason: UncertainReason::NoFrame
        }
    );
    assert!(missed.frame.is_none() && missed.sequence.is_none());
    let (_, status) = station.stop();
    assert_eq!((status.triggers, status.triggers_missed), (1, 1));
    assert!(
        matches!(triggers.fire("late"), Err(TriggerError::Stopped)),
        "a stopped station refuses triggers"
    );
}

#[test]
fn a_model_switched_mid_line_takes_over_between_two_parts_and_loses_none() {
    let source = SourceSpec::Folder {
        path: samples().join("casting"),
        parts_per_second: 40.0,
        repeat: false,
        start_after: None,
    };
    let casting = load("casting");
    let station = Station::start(&casting, source, Reconnect::default()).unwrap();
    let switch = station.models().clone();
    let mut verdicts = Vec::new();
    while verdicts.len() < 6 {
        verdicts.push(
            station
                .results()
                .recv_timeout(Duration::from_secs(30))
                .unwrap(),
        );
    }
    let xsdd = load("xsdd");
    let replaced = switch.switch(&xsdd).unwrap();
    assert!(std::sync::Arc::ptr_eq(&replaced, &casting));
    assert!(std::sync::Arc::ptr_eq(&switch.current(), &xsdd));
    verdicts.extend(collect(&station, Duration::from_secs(120)));
    let (pending, status) = station.stop();
    assert!(pending.is_empty());

    assert_eq!(
        verdicts.iter().map(|v| v.sequence).collect::<Vec<_>>(),
        (0..24).map(Some).collect::<Vec<_>>(),
        "no part lost or judged twice across the switch"
    );
    assert_eq!(status.inspected(), 24);
    let names: Vec<&str> = verdicts
        .iter()
        .map(|v| v.model.manifest().name.as_str())
        .collect();
    let first_new = names.iter().position(|n| *n == "xsdd-steel").unwrap();
    assert!(
        first_new >= 6,
        "the parts judged before the switch keep their model"
    );
    assert!(
        names[..first_new].iter().all(|n| *n == "casting-defect")
            && names[first_new..].iter().all(|n| *n == "xsdd-steel"),
        "one clean hand-over: {names:?}"
    );
    // Scored by the new model: one probability per xsdd class.
    let classes = xsdd.manifest().labels.len();
    assert!(
        verdicts[first_new..]
            .iter()
            .all(|v| v.inspection.scores.probabilities.len() == classes)
    );
}
