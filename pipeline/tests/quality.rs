//! Control charts over a recorded line that drifts: the alarms land in the store once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::SystemTime;

use inspecta_pipeline::quality::watch::{ProcessWatch, SpcConfig};
use inspecta_pipeline::store::{ImagePolicy, NewRecord, RecordStore, StoreConfig, Stream};
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::Inspection;

/// The real model's verdict on one sample of `class`.
fn judged(class: &str) -> Inspection {
    let model = common::load("casting");
    let path = &common::images_in(&common::samples().join("casting").join(class))[0];
    model
        .session()
        .unwrap()
        .inspect(&Frame::open(path).unwrap())
        .unwrap()
}

#[test]
fn a_drifting_line_raises_each_alarm_once_and_a_stable_one_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::in_dir(dir.path());
    config.images = ImagePolicy::None;
    let store = RecordStore::open(&config).unwrap();
    let model = common::load("casting");
    let (good, defect) = (judged("good"), judged("defect"));
    let insert = |defective: bool| {
        store
            .insert(&NewRecord {
                station: "spc",
                part_id: None,
                sequence: None,
                origin: None,
                captured_at: SystemTime::now(),
                model: model.manifest(),
                inspection: if defective { &defect } else { &good },
                latency: None,
                frame: None,
            })
            .unwrap();
    };
    let watch = ProcessWatch::new(SpcConfig {
        subgroup: 10,
        baseline: 20,
        window: 40,
        centre: None,
    });
    // 20 subgroups of 10 parts at 10 % defects: the baseline; nothing to report.
    for part in 0..200 {
        insert(part % 10 == 0);
    }
    assert!(watch.check(&store).unwrap().is_empty());
    let charts = watch.charts(&store).unwrap();
    let all = charts.iter().find(|c| c.name == "all").unwrap();
    assert!((all.chart.limits.centre - 0.1).abs() < 1e-9);

    // Then the line drifts to 30 %, subgroup by subgroup, checked as the station does.
    let mut alarms = Vec::new();
    for part in 0..120 {
        insert(part % 10 < 3);
        alarms.extend(watch.check(&store).unwrap());
    }
    let rules: Vec<(&str, &str)> = alarms
        .iter()
        .map(|a| (a.chart.as_str(), a.rule.as_str()))
        .collect();
    assert!(
        rules.contains(&("all", "two_of_three_beyond2_sigma"))
            || rules.contains(&("all", "beyond_limits")),
        "{rules:?}"
    );
    assert!(rules.contains(&("all", "eight_on_one_side")), "{rules:?}");
    assert!(
        rules.iter().any(|(chart, _)| *chart == "defect"),
        "the per-class chart names the drifting class: {rules:?}"
    );
    assert!(
        alarms.iter().all(|a| a.subgroup >= 20),
        "none in the baseline"
    );
    assert!(
        alarms[0].message.contains("30.0 %"),
        "{}",
        alarms[0].message
    );

    // Checking again raises nothing new: each alarm is kept once, ready for the links.
    assert!(watch.check(&store).unwrap().is_empty());
    let kept = store.alarms_after(0, 100).unwrap();
    assert_eq!(kept.len(), alarms.len());
    assert_eq!(store.forwarded("mqtt", Stream::Alarms).unwrap(), 0);
}
