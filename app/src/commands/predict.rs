//! `inspecta predict`: verdicts for image files, for a quick check or a script.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use inspecta_vision::evaluation::dataset::is_image;
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::Inspection;
use inspecta_vision::model::Model;
use inspecta_vision::overlay;
use serde::Serialize;

use super::ModelArg;
use crate::error_text::describe;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Threads inside one inference (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write each image with its heat map drawn over it (flagged region outlined) to this
    /// folder, as PNG; for models that give heat maps.
    #[arg(long, value_name = "DIR")]
    overlays: Option<PathBuf>,
    /// Images to inspect; a folder stands for the images in it and its subfolders.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Line<'a> {
    path: &'a Path,
    #[serde(flatten)]
    inspection: Option<&'a Inspection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The files named, with each folder replaced by its images in path order.
fn images(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            images_under(path, &mut files)?;
            anyhow::ensure!(
                files.len() > before,
                "{} holds no images (jpg, png, bmp, tiff, webp, gif)",
                path.display()
            );
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Where `--overlays` pictures go: one PNG per image, named by the image, never twice the
/// same name in one run.
struct Overlays {
    dir: PathBuf,
    taken: std::collections::HashSet<String>,
}

impl Overlays {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            taken: Default::default(),
        })
    }

    fn write(
        &mut self,
        image: &Path,
        frame: &Frame,
        inspection: &Inspection,
        model: &Model,
    ) -> anyhow::Result<()> {
        let Some(heat) = &inspection.heat_map else {
            return Ok(());
        };
        let region = model.manifest().input.region(frame.width(), frame.height());
        let picture = overlay::picture(frame, heat, model.rule().flag_level(), region);
        let stem = image
            .file_stem()
            .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
        let name = (1..)
            .map(|n| {
                if n == 1 {
                    stem.clone()
                } else {
                    format!("{stem}-{n}")
                }
            })
            .find(|name| !self.taken.contains(name))
            .unwrap_or(stem);
        let path = self.dir.join(format!("{name}.png"));
        self.taken.insert(name);
        picture
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

fn images_under(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            images_under(&entry, files)?;
        } else if is_image(&entry) {
            files.push(entry);
        }
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let model = crate::engine::load_model(
        &args.model.path()?,
        args.threads
            .unwrap_or_else(crate::engine::available_threads),
    )?;
    let mut session = model.session()?;
    let labels = &model.manifest().labels;
    let mut overlays = args.overlays.as_deref().map(Overlays::new).transpose()?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for path in &images(&args.images)? {
        let result = Frame::open(path)
            .map_err(anyhow::Error::from)
            .and_then(|f| Ok((session.inspect(&f)?, f)));
        if let (Some(overlays), Ok((inspection, frame))) = (&mut overlays, &result) {
            overlays.write(path, frame, inspection, &model)?;
        }
        let result = result.map(|(inspection, _)| inspection);
        if let Err(e) = &result {
            failed += 1;
            tracing::error!(path = %path.display(), "{}", describe(e));
        }
        if args.json {
            let line = Line {
                path,
                inspection: result.as_ref().ok(),
                error: result.as_ref().err().map(describe),
            };
            serde_json::to_writer(&mut out, &line).context("writing JSON")?;
            writeln!(out)?;
        } else if let Ok(i) = &result {
            let top = i.scores.top;
            let why = i
                .verdict
                .uncertain_reason()
                .map_or(String::new(), |r| format!(" ({})", r.name()));
            let familiarity = i
                .scores
                .familiarity
                .map_or(String::new(), |f| format!("  familiarity {f:.2}"));
            writeln!(
                out,
                "{:<10} defect score {:.4}  top {} ({:.4}){familiarity}  {:.1} ms  {}{why}",
                i.verdict.name().to_uppercase(),
                i.scores.defect_score,
                labels[top],
                i.scores.probabilities[top],
                (i.timings_ms.preprocess + i.timings_ms.inference).as_secs_f64() * 1e3,
                path.display()
            )?;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
