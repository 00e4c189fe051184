//! `inspecta eval`: how good is this model on this folder, and which threshold to run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use inspecta_vision::evaluation::dataset::Dataset;
use inspecta_vision::evaluation::threshold::{BoundedRate, CONFIDENCE, Recommendation};
use inspecta_vision::evaluation::{EvalOptions, EvalReport, compare, evaluate, html};

use super::ModelArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Folder of class sub-folders (`<class>/*.jpg`) or an MVTec AD category.
    folder: PathBuf,
    /// Rename a class folder to a model label, e.g. `--map ok_front=good` (repeatable).
    #[arg(long = "map", value_name = "FOLDER=LABEL", value_parser = parse_mapping)]
    mappings: Vec<(String, String)>,
    /// Where report.json and report.html are written.
    #[arg(long, default_value = "out/eval")]
    out: PathBuf,
    /// Worker threads, one inference each (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Escape rate (defects passed) the recommended threshold must stay within.
    #[arg(long, default_value_t = 0.005)]
    target_escape: f64,
    /// False-reject rate (good parts rejected) the proposed uncertain band aims for.
    #[arg(long, default_value_t = 0.01)]
    target_false_reject: f64,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Evaluate two models on the folder and say which is better (reports in OUT/A, OUT/B).
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
}

fn parse_mapping(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok((from.into(), to.into())),
        _ => Err(format!("expected FOLDER=LABEL, got {text:?}")),
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    for (flag, rate) in [
        ("--target-escape", args.target_escape),
        ("--target-false-reject", args.target_false_reject),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            bail!("{flag} must be within 0..=1, got {rate}");
        }
    }
    let mappings: BTreeMap<String, String> = args.mappings.iter().cloned().collect();
    let dataset = Dataset::discover(&args.folder, &mappings)?;
    let threads = args
        .threads
        .unwrap_or_else(crate::engine::available_threads)
        .max(1);
    tracing::info!(images = dataset.samples.len(), layout = ?dataset.layout, threads, "evaluating");
    let options = EvalOptions {
        threads,
        target_escape_rate: args.target_escape,
        target_false_reject_rate: args.target_false_reject,
    };
    let Some(pair) = &args.compare else {
        let report = evaluate_one(&args.model.path()?, &dataset, &options, args.quiet)?;
        let (json, page) = write_reports(&report, &args.out)?;
        print_summary(&report);
        println!("report: {}\n        {}", page.display(), json.display());
        return Ok(ExitCode::SUCCESS);
    };
    let mut reports = Vec::new();
    for (name, path) in ["A", "B"].iter().zip(pair) {
        println!("== {name}: {} ==", path.display());
        let report = evaluate_one(path, &dataset, &options, args.quiet)?;
        let (_, page) = write_reports(&report, &args.out.join(name))?;
        print_summary(&report);
        println!("report: {}\n", page.display());
        reports.push(report);
    }
    let comparison = compare::compare(&reports[0], &reports[1]);
    print_comparison(&comparison);
    let json = args.out.join("compare.json");
    let text = serde_json::to_string_pretty(&comparison).context("serialising the comparison")?;
    std::fs::write(&json, text).with_context(|| format!("cannot write {}", json.display()))?;
    let page = args.out.join("compare.html");
    std::fs::write(&page, html::render_comparison(&comparison))
        .with_context(|| format!("cannot write {}", page.display()))?;
    println!(
        "comparison: {}\n            {}",
        page.display(),
        json.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn evaluate_one(
    model: &Path,
    dataset: &Dataset,
    options: &EvalOptions,
    quiet: bool,
) -> anyhow::Result<EvalReport> {
    let model = crate::engine::load_model(model, 1)?;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(dataset.samples.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  eta {eta}")
            .context("progress bar template")?,
    );
    let report = evaluate(&model, dataset, options, &|| bar.inc(1))?;
    bar.finish_and_clear();
    Ok(report)
}

fn print_comparison(c: &compare::Comparison) {
    println!("== A: {}   B: {} ==", c.a, c.b);
    for k in &c.criteria {
        let direction = if k.higher_is_better {
            "higher"
        } else {
            "lower"
        };
        println!(
            "{:<46} A {:>8.4}   B {:>8.4}   ({direction} is better)",
            k.name, k.a, k.b
        );
    }
    println!(
        "images only A judged right: {}; only B: {}",
        c.only_a_right.len(),
        c.only_b_right.len()
    );
    println!(
        "paired test (exact McNemar): p = {:.4}, {}",
        c.mcnemar_p,
        if c.mcnemar_p < compare::NOISE_P {
            "beyond noise"
        } else {
            "within noise"
        }
    );
    match c.better {
        Some(_) => println!("verdict: {}", c.reason),
        None => println!("verdict: no clear winner ({})", c.reason),
    }
}

fn write_reports(report: &EvalReport, out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = out.join("report.json");
    let text = serde_json::to_string_pretty(report).context("serialising the report")?;
    std::fs::write(&json, text).with_context(|| format!("cannot write {}", json.display()))?;
    let page = out.join("report.html");
    std::fs::write(&page, html::render(report))
        .with_context(|| format!("cannot write {}", page.display()))?;
    Ok((json, page))
}

fn print_recommendation(r: &Recommendation) {
    let pct = |v: f64| format!("{:.2}%", v * 100.0);
    let bounded = |b: &BoundedRate| {
        format!(
            "{} ({} of {}, at most {} at {:.0}% confidence)",
            pct(b.rate),
            b.count,
            b.of,
            pct(b.upper_bound),
            CONFIDENCE * 100.0
        )
    };
    println!(
        "threshold {:.4} (recommended for escape <= {}, margin {:.4} to the nearest score)",
        r.point.threshold,
        pct(r.target_escape_rate),
        r.margin
    );
    println!("          escape {}", bounded(&r.escapes));
    println!("          false reject {}", bounded(&r.false_rejects));
    match &r.band {
        Some(band) => println!(
            "band      uncertain from {:.4} to {:.4}: {} of parts to the operator ({} good, {} defective), \
             false reject above it {}",
            band.low,
            band.high,
            pct(band.uncertain_rate),
            band.good_inside,
            band.defect_inside,
            bounded(&band.false_rejects)
        ),
        None => println!(
            "band      none needed: good parts stay below the threshold at false reject <= {}",
            pct(r.target_false_reject_rate)
        ),
    }
    for warning in &r.warnings {
        println!("warning   {warning}");
    }
}

fn print_summary(r: &EvalReport) {
    let pct = |v: f64| format!("{:.2}%", v * 100.0);
    println!("model     {} {}", r.model.name, r.model.version);
    println!(
        "images    {} evaluated, {} unreadable",
        r.evaluated, r.failed
    );
    println!(
        "accuracy  {} (verdicts; uncertain {})",
        pct(r.accuracy),
        pct(r.uncertain_rate)
    );
    if let Some(top1) = r.top1_accuracy {
        println!("top-1     {}", pct(top1));
    }
    if let Some(b) = &r.binary {
        println!("ROC AUC   {:.4}", b.auroc);
        if let Some(p) = r.pixel_auroc {
            println!("pixel AUC {p:.4} (heat map against the defect masks)");
        }
        println!(
            "threshold {:.4} (manifest): escape {}, false reject {}",
            b.at_manifest_threshold.threshold,
            pct(b.at_manifest_threshold.escape_rate),
            pct(b.at_manifest_threshold.false_reject_rate)
        );
        print_recommendation(&b.recommended);
    }
    if let Some(t) = r.latency_ms.total {
        println!(
            "latency   p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms per image",
            t.p50, t.p95, t.p99
        );
    }
    println!(
        "speed     {:.1} images/s with {} threads",
        r.images_per_second, r.threads
    );
    let width = r
        .per_class
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(5);
    println!(
        "\n{:<width$} {:>9} {:>9} {:>8} {:>7}",
        "class", "precision", "recall", "F1", "support"
    );
    for (class, m) in &r.per_class {
        println!(
            "{class:<width$} {:>9} {:>9} {:>8.4} {:>7}",
            pct(m.precision),
            pct(m.recall),
            m.f1,
            m.support
        );
    }
    let wrong = r.misclassified().count();
    if wrong > 0 {
        println!("\n{wrong} misclassified:");
        for s in r.misclassified().take(20) {
            println!(
                "  {} (truth {}, verdict {}, score {:.3})",
                s.path.display(),
                s.truth,
                s.verdict,
                s.defect_score
            );
        }
        if wrong > 20 {
            println!("  ... and {} more in report.json", wrong - 20);
        }
    }
    for f in &r.failures {
        println!("unreadable: {}: {}", f.path.display(), f.error);
    }
}
