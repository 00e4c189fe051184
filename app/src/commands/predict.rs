//! `inspecta predict`: verdicts for image files, for a quick check or a script.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use inspecta_vision::evaluation::dataset::is_image;
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::Inspection;
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
    /// Images to inspect; a folder stands for the images in it and its subfolders.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Line<'a> {
    path: &'a std::path::Path,
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

fn images_under(dir: &std::path::Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
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
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for path in &images(&args.images)? {
        let result = Frame::open(path)
            .map_err(anyhow::Error::from)
            .and_then(|f| Ok(session.inspect(&f)?));
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
