//! Inference benchmark: per-image latency of tract, side by side with ONNX Runtime on the
//! same model, inputs and thread counts, with a parity check; then folder throughput of the
//! default and the peer model, each through Inspecta and through a Python ONNX Runtime
//! script (`ort_eval.py`), with the ratio to that script running the peer model.
//!
//! `make bench` (or `PYTHON=.venv/bin/python cargo bench -p inspecta-vision --bench inference`).
//! Env: BENCH_MODEL (default models/casting), BENCH_PEER (default models/casting-v1),
//! BENCH_FOLDER (default samples/casting), BENCH_ROUNDS (default 10), PYTHON (with
//! onnxruntime; the ORT rows are skipped without it).
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use inspecta_vision::evaluation::dataset::Dataset;
use inspecta_vision::evaluation::metrics::Percentiles;
use inspecta_vision::evaluation::{EvalOptions, evaluate};
use inspecta_vision::frame::Frame;
use inspecta_vision::model::manifest::Layout;
use inspecta_vision::model::preprocess::Preprocessor;
use inspecta_vision::model::{Model, RunnerOptions};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

struct Timing {
    latency: Percentiles,
    scores: Vec<Vec<f32>>,
}

/// `name`'s path from the environment, relative to the repository (cargo runs benches in
/// the crate's folder), else `repo/default`.
fn env_path(name: &str, repo: &Path, default: &str) -> PathBuf {
    repo.join(std::env::var_os(name).map_or_else(|| PathBuf::from(default), PathBuf::from))
}

fn tract(model_dir: &Path, frames: &[Frame], threads: usize, rounds: usize) -> Result<Timing> {
    let model = Arc::new(Model::load(
        model_dir,
        RunnerOptions {
            intra_op_threads: threads,
        },
    )?);
    let mut session = model.session()?;
    let scores = frames
        .iter()
        .map(|f| Ok(session.inspect(f)?.scores.probabilities))
        .collect::<Result<Vec<_>>>()?;
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        for f in frames {
            latencies.push(session.inspect(f)?.timings_ms.inference.as_secs_f64() * 1e3);
        }
    }
    Ok(Timing {
        latency: Percentiles::of(latencies).ok_or("no frames")?,
        scores,
    })
}

fn ort(
    python: &str,
    onnx: &Path,
    inputs: &Path,
    shape: &str,
    threads: usize,
    rounds: usize,
) -> Result<(Timing, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ort_reference.py");
    let out = Command::new(python)
        .arg(script)
        .args([
            "--model",
            &onnx.to_string_lossy(),
            "--inputs",
            &inputs.to_string_lossy(),
            "--shape",
            shape,
        ])
        .args([
            "--threads",
            &threads.to_string(),
            "--rounds",
            &rounds.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "ONNX Runtime reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_f64)
            .collect()
    };
    let latencies = floats(&json["latencies_ms"]);
    let scores = json["scores"]
        .as_array()
        .ok_or("no scores")?
        .iter()
        .map(|s| floats(s).into_iter().map(|v| v as f32).collect())
        .collect();
    let version = json["version"].as_str().unwrap_or("?").to_owned();
    Ok((
        Timing {
            latency: Percentiles::of(latencies).ok_or("no latencies")?,
            scores,
        },
        version,
    ))
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Writes each frame's preprocessed tensor, back to back, for the ORT reference.
fn write_inputs(model: &Model, frames: &[Frame], path: &Path) -> Result<String> {
    let spec = &model.manifest().input;
    let mut pre = Preprocessor::new(spec);
    let mut buf = vec![0.0; pre.input_len()];
    let mut bytes = Vec::new();
    for f in frames {
        pre.run(f, &mut buf)?;
        bytes.extend(buf.iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(path, bytes)?;
    let (c, h, w) = (spec.color.channels(), spec.height, spec.width);
    Ok(match spec.layout {
        Layout::Nchw => format!("1,{c},{h},{w}"),
        Layout::Nhwc => format!("1,{h},{w},{c}"),
    })
}

/// One model judging a folder: decode, preprocess and infer each image, `workers` at a time.
struct Pass {
    images_per_s: f64,
    p50: f64,
    p99: f64,
}

fn inspecta_pass(
    model_dir: &Path,
    dataset: &Dataset,
    workers: usize,
    rounds: usize,
) -> Result<(Pass, f64)> {
    let model = Arc::new(Model::load(model_dir, RunnerOptions::default())?);
    let options = EvalOptions {
        threads: workers,
        target_escape_rate: 0.0,
        target_false_reject_rate: 0.01,
    };
    let started = Instant::now();
    let mut images = 0;
    let mut totals = Vec::new();
    let mut top1 = 0.0;
    for _ in 0..rounds {
        let report = evaluate(&model, dataset, &options, &|| {})?;
        images += report.evaluated;
        top1 = report.top1_accuracy.unwrap_or(report.accuracy);
        totals.extend(
            report
                .samples
                .iter()
                .map(|s| s.decode_ms + s.preprocess_ms + s.inference_ms),
        );
    }
    let rate = images as f64 / started.elapsed().as_secs_f64();
    let p = Percentiles::of(totals).ok_or("no samples")?;
    Ok((
        Pass {
            images_per_s: rate,
            p50: p.p50,
            p99: p.p99,
        },
        top1,
    ))
}

/// The peer stack: `ort_eval.py` (PIL, numpy, one ONNX Runtime session per worker process).
fn ort_pass(
    python: &str,
    model_dir: &Path,
    folder: &Path,
    workers: usize,
    rounds: usize,
) -> Result<Pass> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ort_eval.py");
    let out = Command::new(python)
        .arg(script)
        .arg("--model")
        .arg(model_dir)
        .arg("--folder")
        .arg(folder)
        .args([
            "--workers",
            &workers.to_string(),
            "--rounds",
            &rounds.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "ONNX Runtime peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let field = |name: &str| {
        json[name]
            .as_f64()
            .ok_or(format!("ort_eval.py printed no {name}"))
    };
    Ok(Pass {
        images_per_s: field("images_per_s")?,
        p50: field("p50_ms")?,
        p99: field("p99_ms")?,
    })
}

/// Each model through Inspecta and through the ONNX Runtime peer, 1 and 2 workers, in one
/// run; the ratio is to the peer running `peer` (the model a user would otherwise run).
fn throughput(
    models: &[&Path],
    dataset: &Dataset,
    peer: &Path,
    python: Option<&str>,
    rounds: usize,
) -> Result<String> {
    let mut rows = Vec::new();
    let mut baseline = BTreeMap::new();
    for workers in [1, 2] {
        for model_dir in models {
            let name = Model::load(model_dir, RunnerOptions::default())?
                .manifest()
                .version
                .clone();
            let (pass, top1) = inspecta_pass(model_dir, dataset, workers, rounds)?;
            rows.push((
                model_dir.to_path_buf(),
                name.clone(),
                "Inspecta (tract)",
                workers,
                pass,
                top1,
            ));
            if let Some(py) = python {
                let pass = ort_pass(py, model_dir, &dataset.root, workers, rounds)?;
                if *model_dir == peer {
                    baseline.insert(workers, pass.images_per_s);
                }
                rows.push((
                    model_dir.to_path_buf(),
                    name,
                    "Python + ONNX Runtime",
                    workers,
                    pass,
                    top1,
                ));
            }
        }
    }
    let mut out = format!(
        "\n{} images x {rounds} rounds; ratio: images/s over the ONNX Runtime peer running {}\n\n",
        dataset.samples.len(),
        peer.display()
    );
    out.push_str("| model | version | engine | workers | images/s | p50 ms | p99 ms | top-1 on the folder | ratio to the peer |\n|---|---|---|---|---|---|---|---|---|\n");
    for (dir, version, engine, workers, pass, top1) in rows {
        let ratio = baseline
            .get(&workers)
            .map_or("-".to_owned(), |b| format!("{:.2}x", pass.images_per_s / b));
        let name = dir.file_name().unwrap_or(dir.as_os_str()).to_string_lossy();
        writeln!(
            out,
            "| {name} | {version} | {engine} | {workers} | {:.1} | {:.2} | {:.2} | {:.2} % | {ratio} |",
            pass.images_per_s,
            pass.p50,
            pass.p99,
            100.0 * top1
        )?;
    }
    Ok(out)
}

/// Where tract spends one inference: the slowest nodes, averaged over `rounds` runs.
fn profile_ops(onnx_path: &Path, shape: &str, rounds: usize) -> Result<String> {
    use tract_onnx::prelude::*;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let plan = onnx()
        .model_for_path(onnx_path)?
        .with_input_fact(0, f32::fact(&dims).into())?
        .into_optimized()?
        .into_runnable()?;
    let input: TValue = Tensor::zero::<f32>(&dims)?.into();
    let mut state = plan.spawn()?;
    let mut times: BTreeMap<usize, (String, f64)> = BTreeMap::new();
    for round in 0..=rounds {
        let mut last = Instant::now();
        state.run_plan_with_eval(tvec![input.clone()], |session, op_state, node, inputs| {
            let result = tract_core::plan::eval(session, op_state, node, inputs);
            let now = Instant::now();
            if round > 0 {
                let label = format!("{} -> {:?}", node.op().name(), node.outputs[0].fact.shape);
                times.entry(node.id).or_insert((label, 0.0)).1 +=
                    (now - last).as_secs_f64() * 1e3 / rounds as f64;
            }
            last = now;
            result
        })?;
    }
    let mut nodes: Vec<_> = times.into_values().collect();
    nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = nodes.iter().map(|n| n.1).sum();
    let mut by_op: BTreeMap<String, f64> = BTreeMap::new();
    for (label, t) in &nodes {
        *by_op
            .entry(label.split(" -> ").next().unwrap_or_default().to_owned())
            .or_default() += t;
    }
    let mut out = format!(
        "\ntract time per op type, one thread ({total:.2} ms per image in all):\n\n| op | ms | share |\n|---|---|---|\n"
    );
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (op, t) in ops.iter().take(4) {
        writeln!(out, "| {op} | {t:.2} | {:.0}% |", 100.0 * t / total)?;
    }
    out.push_str("\nslowest nodes:\n\n| node -> output shape | ms |\n|---|---|\n");
    for (label, t) in nodes.iter().take(6) {
        writeln!(out, "| {label} | {t:.2} |")?;
    }
    Ok(out)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let model_dir = env_path("BENCH_MODEL", &repo, "models/casting");
    let folder = env_path("BENCH_FOLDER", &repo, "samples/casting");
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let python = std::env::var("PYTHON").ok();

    let dataset = Dataset::discover(&folder, &BTreeMap::new())?;
    let frames = dataset
        .samples
        .iter()
        .map(|s| Frame::open(&s.path))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let model = Arc::new(Model::load(&model_dir, RunnerOptions::default())?);
    let work = repo.join("target/bench");
    std::fs::create_dir_all(&work)?;
    let inputs = work.join("inputs.f32");
    let shape = write_inputs(&model, &frames, &inputs)?;

    let mut table = String::new();
    writeln!(
        table,
        "model {} ({}), {} images x {rounds} rounds, {} logical CPUs, {}\n",
        model.manifest().name,
        model_dir.display(),
        frames.len(),
        std::thread::available_parallelism()?,
        inspecta_vision::model::cpu::instruction_sets()
    )?;
    writeln!(
        table,
        "| engine | intra-op threads | p50 ms | p95 ms | p99 ms | mean ms | ratio to ORT (mean) | max abs score diff vs tract |"
    )?;
    writeln!(table, "|---|---|---|---|---|---|---|---|")?;
    for threads in [1, 2] {
        let t = tract(&model_dir, &frames, threads, rounds)?;
        let row = |name: &str, p: &Percentiles, ratio: &str, diff: &str| {
            format!(
                "| {name} | {threads} | {:.2} | {:.2} | {:.2} | {:.2} | {ratio} | {diff} |\n",
                p.p50, p.p95, p.p99, p.mean
            )
        };
        match python
            .as_deref()
            .map(|py| ort(py, model.onnx_path(), &inputs, &shape, threads, rounds))
        {
            Some(Ok((o, version))) => {
                let ratio = format!("{:.2}x", t.latency.mean / o.latency.mean);
                table.push_str(&row("tract 0.23", &t.latency, &ratio, "-"));
                let diff = format!("{:.2e}", max_abs_diff(&t.scores, &o.scores));
                table.push_str(&row(
                    &format!("ONNX Runtime {version}"),
                    &o.latency,
                    "1.00x",
                    &diff,
                ));
            }
            Some(Err(e)) => return Err(e),
            None => {
                eprintln!("PYTHON not set: ONNX Runtime columns skipped");
                table.push_str(&row("tract 0.23", &t.latency, "-", "-"));
            }
        }
    }

    let peer = env_path("BENCH_PEER", &repo, "models/casting-v1");
    table.push_str(&throughput(
        &[&model_dir, &peer],
        &dataset,
        &peer,
        python.as_deref(),
        rounds.div_ceil(2),
    )?);
    table.push_str(&profile_ops(model.onnx_path(), &shape, rounds)?);
    println!("{table}");
    std::fs::write(work.join("report.md"), &table)?;
    Ok(())
}
