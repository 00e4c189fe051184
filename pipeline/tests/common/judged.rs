//! Real verdicts for the store's tests: every sample casting part, judged once by the
//! bundled model.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use inspecta_pipeline::store::NewRecord;
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::Inspection;
use inspecta_vision::model::Model;

#[derive(Clone)]
pub struct Part {
    pub frame: Frame,
    pub inspection: Inspection,
    pub origin: String,
}

/// Every sample casting part, judged once by the bundled model and shared by the tests.
pub fn judged() -> &'static (Arc<Model>, Vec<Part>) {
    static JUDGED: OnceLock<(Arc<Model>, Vec<Part>)> = OnceLock::new();
    JUDGED.get_or_init(|| {
        let model = super::load("casting");
        let parts = judge(&model);
        (model, parts)
    })
}

fn judge(model: &Arc<Model>) -> Vec<Part> {
    let mut session = model.session().unwrap();
    ["good", "defect"]
        .iter()
        .flat_map(|class| super::images_in(&super::samples().join("casting").join(class)))
        .map(|path| {
            let frame = Frame::open(&path).unwrap();
            let inspection = session.inspect(&frame).unwrap();
            Part {
                frame,
                inspection,
                origin: path.display().to_string(),
            }
        })
        .collect()
}

pub fn record<'a>(model: &'a Model, part: &'a Part, sequence: u64) -> NewRecord<'a> {
    NewRecord {
        station: "test-station",
        part_id: None,
        sequence: Some(sequence),
        origin: Some(&part.origin),
        captured_at: SystemTime::now(),
        model: model.manifest(),
        inspection: &part.inspection,
        latency: Some(Duration::from_millis(25)),
        frame: Some(&part.frame),
    }
}

/// Images in the kept archive (the day folders), not the ring of recent parts.
pub fn images_on_disk(dir: &Path) -> usize {
    kept_files(dir).len()
}

/// The kept archive's files and their sizes, as they are on disk.
pub fn kept_files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    std::fs::read_dir(dir.join("images"))
        .map(|days| {
            days.flatten()
                .filter(|d| d.file_name() != "recent")
                .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
                .map(|f| (f.path(), f.metadata().map_or(0, |m| m.len())))
                .collect()
        })
        .unwrap_or_default()
}

/// Images in the ring of recent parts the policy would not keep.
pub fn ring_images_on_disk(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("images").join("recent")).map_or(0, Iterator::count)
}
