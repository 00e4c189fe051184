//! The self-contained HTML report: one file with inline CSS, SVG charts and thumbnails,
//! so it can be mailed or archived next to the JSON without breaking.

use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::charts::{self, Marker, Series};
use super::metrics::Percentiles;
use super::threshold::{BoundedRate, CONFIDENCE};
use super::{EvalReport, ModelInfo};
use crate::frame::Frame;
use crate::inspection::HeatMap;
use crate::overlay;

/// Most error thumbnails embedded; the JSON lists every misclassified image.
const MAX_THUMBNAILS: usize = 60;
const THUMBNAIL_SIDE: u32 = 128;
const GOOD_COLOR: &str = "#2e7d32";
const DEFECT_COLOR: &str = "#c62828";
const ACCENT: &str = "#1565c0";
const BAND_COLOR: &str = "#e65100";

const STYLE: &str = r#"
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.muted{color:#666}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f5f5f5}td.l,th.l{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:16px}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}.thumb{width:140px;font-size:12px}
.thumb img{width:128px;height:128px;object-fit:contain;border:3px solid #c62828;background:#eee}
.swatch{display:inline-block;width:14px;height:14px;vertical-align:middle;margin:0 4px 0 8px;background:#bbb}
.warn{background:#fff3e0;border-left:4px solid #e65100;padding:6px 10px;margin:6px 0}
"#;

pub fn render(report: &EvalReport) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Inspecta evaluation: " (report.model.name) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Evaluation of " (report.model.name) " " (report.model.version) }
                p.muted { "Images from " code { (report.dataset_root.display()) } " (" (format!("{:?}", report.layout)) "), model " code { (report.model.path.display()) } }
                (summary(report))
                h2 { "Confusion matrix" }
                (confusion(report))
                h2 { "Per class" }
                (per_class(report))
                (binary(report))
                h2 { "Latency per image (ms)" }
                (latency(report))
                (errors(report))
                (failures(report))
            }
        }
    };
    page.into_string()
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn summary(r: &EvalReport) -> Markup {
    let p99 = r.latency_ms.total.map(|p| format!("{:.1} ms", p.p99));
    html! {
        div.cards {
            div.card { "Accuracy (verdict)" b { (pct(r.accuracy)) } }
            @if let Some(top1) = r.top1_accuracy { div.card { "Top-1 accuracy" b { (pct(top1)) } } }
            @if let Some(b) = &r.binary { div.card { "ROC AUC" b { (format!("{:.4}", b.auroc)) } } }
            @if let Some(p) = r.pixel_auroc { div.card { "Pixel ROC AUC" b { (format!("{p:.4}")) } } }
            div.card { "Uncertain" b { (pct(r.uncertain_rate)) } }
            div.card { "Images" b { (r.evaluated) } @if r.failed > 0 { span style=(format!("color:{DEFECT_COLOR}")) { (r.failed) " unreadable" } } }
            div.card { "Throughput" b { (format!("{:.1}/s", r.images_per_second)) } (r.threads) " threads" }
            @if let Some(p99) = p99 { div.card { "p99 latency" b { (p99) } } }
        }
    }
}

fn confusion(r: &EvalReport) -> Markup {
    let c = &r.confusion;
    html! {
        table {
            tr { th.l { "truth \\ verdict" } @for p in &c.predicted { th { (p) } } th { "total" } }
            @for (row, counts) in c.truth.iter().zip(&c.counts) {
                @let total: usize = counts.iter().sum();
                tr {
                    th.l { (row) }
                    @for n in counts {
                        @let shade = if total == 0 { 0.0 } else { *n as f64 / total as f64 };
                        td style=(format!("background:rgba(21,101,192,{:.2})", shade * 0.6)) { (n) }
                    }
                    td { (total) }
                }
            }
        }
    }
}

fn per_class(r: &EvalReport) -> Markup {
    html! {
        table {
            tr { th.l { "class" } th { "precision" } th { "recall" } th { "F1" } th { "support" } }
            @for (class, m) in &r.per_class {
                tr { td.l { (class) } td { (pct(m.precision)) } td { (pct(m.recall)) } td { (format!("{:.4}", m.f1)) } td { (m.support) } }
            }
        }
    }
}

fn binary(r: &EvalReport) -> Markup {
    let Some(b) = &r.binary else {
        return html! { p.muted { "No good-vs-defect analysis: the folder or the model lacks a good class." } };
    };
    let current = r.model.defect_threshold;
    let rec = &b.recommended;
    let mut markers = vec![
        Marker {
            x: f64::from(current),
            label: "manifest",
            color: "#555",
        },
        Marker {
            x: f64::from(rec.point.threshold),
            label: "recommended",
            color: ACCENT,
        },
    ];
    if let Some(band) = &rec.band {
        markers.push(Marker {
            x: f64::from(band.high),
            label: "band top",
            color: BAND_COLOR,
        });
    }
    let roc = charts::line_chart(
        "false-reject rate (good parts rejected)",
        "defects caught",
        (0.0, 1.0),
        (0.0, 1.0),
        &[Series {
            name: "ROC",
            color: ACCENT,
            points: b
                .roc
                .iter()
                .map(|p| (p.false_positive_rate, p.true_positive_rate))
                .collect(),
        }],
        &[],
    );
    let sweep = charts::line_chart(
        "reject threshold on defect score",
        "rate",
        (0.0, 1.0),
        (0.0, 1.0),
        &[
            Series {
                name: "escape rate",
                color: DEFECT_COLOR,
                points: b
                    .sweep
                    .iter()
                    .map(|p| (f64::from(p.threshold), p.escape_rate))
                    .collect(),
            },
            Series {
                name: "false-reject rate",
                color: GOOD_COLOR,
                points: b
                    .sweep
                    .iter()
                    .map(|p| (f64::from(p.threshold), p.false_reject_rate))
                    .collect(),
            },
        ],
        &markers,
    );
    let scores = |defect: bool| {
        r.samples
            .iter()
            .filter(|s| s.truth_is_defect == defect)
            .map(|s| (f64::from(s.defect_score), 0.0))
            .collect()
    };
    let histogram = charts::histogram(
        "defect score",
        50,
        &[
            Series {
                name: "good parts",
                color: GOOD_COLOR,
                points: scores(false),
            },
            Series {
                name: "defective parts",
                color: DEFECT_COLOR,
                points: scores(true),
            },
        ],
        &markers,
    );
    html! {
        h2 { "Good vs defect" }
        p { (b.good_images) " good and " (b.defect_images) " defective images. ROC AUC " b { (format!("{:.4}", b.auroc)) } "." }
        table {
            tr { th.l { "operating point" } th { "threshold" } th { "escape rate" } th { "false-reject rate" } }
            tr { td.l { "manifest threshold" } td { (format!("{:.4}", b.at_manifest_threshold.threshold)) } td { (pct(b.at_manifest_threshold.escape_rate)) } td { (pct(b.at_manifest_threshold.false_reject_rate)) } }
            tr { td.l { "recommended for escape rate ≤ " (pct(rec.target_escape_rate)) } td { (format!("{:.4}", rec.point.threshold)) } td { (bounded(&rec.escapes)) } td { (bounded(&rec.false_rejects)) } }
            @if let Some(band) = &rec.band {
                tr { td.l { "with the uncertain band " (format!("{:.4} – {:.4}", band.low, band.high)) } td { "" } td { (bounded(&rec.escapes)) } td { (bounded(&band.false_rejects)) } }
            }
        }
        p {
            "The recommended threshold lies " (format!("{:.4}", rec.margin)) " from the nearest score, in the middle of the gap below the lowest defect score it must catch. "
            "Each rate is followed by its exact upper bound at " (pct(CONFIDENCE)) " confidence (Clopper-Pearson): what the true rate may be, given how few parts were seen."
        }
        @match &rec.band {
            Some(band) => p {
                "Good and defect scores overlap: scores from " (format!("{:.4}", band.low)) " up to " (format!("{:.4}", band.high))
                " would go to the operator as uncertain (" (pct(band.uncertain_rate)) " of these parts: " (band.good_inside) " good, " (band.defect_inside) " defective), "
                "keeping automatic false rejects within " (pct(rec.target_false_reject_rate)) ". Set it as " code { "uncertain_band = [" (format!("{:.4}, {:.4}", band.low, band.high)) "]" } " with " code { "defect_threshold = " (format!("{:.4}", band.low)) } "."
            },
            None => p.muted { "No uncertain band is needed: good parts stay below the threshold at a false-reject rate within " (pct(rec.target_false_reject_rate)) "." },
        }
        @for warning in &rec.warnings { p.warn { (warning) } }
        div.charts {
            figure { (PreEscaped(roc)) figcaption { "ROC curve" } }
            figure { (PreEscaped(sweep)) figcaption { "Threshold sweep" } }
            figure { (PreEscaped(histogram)) figcaption { "Defect-score histogram" } }
        }
    }
}

/// A rate with its count and upper bound, e.g. `0.00 % (0 of 12, ≤ 22.1 %)`.
fn bounded(rate: &BoundedRate) -> String {
    format!(
        "{} ({} of {}, ≤ {})",
        pct(rate.rate),
        rate.count,
        rate.of,
        pct(rate.upper_bound)
    )
}

fn latency(r: &EvalReport) -> Markup {
    let l = &r.latency_ms;
    let rows: [(&str, Option<Percentiles>); 4] = [
        ("decode", l.decode),
        ("preprocess", l.preprocess),
        ("inference", l.inference),
        ("total", l.total),
    ];
    html! {
        table {
            tr { th.l { "stage" } th { "mean" } th { "p50" } th { "p95" } th { "p99" } th { "max" } }
            @for (name, p) in rows {
                @if let Some(p) = p {
                    tr { td.l { (name) } td { (format!("{:.2}", p.mean)) } td { (format!("{:.2}", p.p50)) } td { (format!("{:.2}", p.p95)) } td { (format!("{:.2}", p.p99)) } td { (format!("{:.2}", p.max)) } }
                }
            }
        }
        p.muted { (format!("{:.1}", r.images_per_second)) " images/s over " (format!("{:.1}", r.wall_seconds)) " s with " (r.threads) " worker threads." }
    }
}

fn errors(r: &EvalReport) -> Markup {
    let wrong: Vec<_> = r.misclassified().collect();
    html! {
        h2 { "Misclassified (" (wrong.len()) ")" }
        @if wrong.len() > MAX_THUMBNAILS { p.muted { "The first " (MAX_THUMBNAILS) " are shown; the JSON report lists all." } }
        @if wrong.iter().any(|s| s.heat_map.is_some()) { (heat_legend(r.model.flag_level)) }
        div.thumbs {
            @for s in wrong.iter().take(MAX_THUMBNAILS) {
                div.thumb {
                    @if let Some(uri) = thumbnail(&s.path, s.heat_map.as_ref(), &r.model) { img src=(uri) alt=(s.path.display()); }
                    div { "truth " b { (s.truth) } }
                    div { "verdict " b { (s.verdict) } " (" (format!("{:.3}", s.defect_score)) ")" }
                    div.muted title=(s.path.display()) { (s.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()) }
                }
            }
        }
    }
}

/// What the colours on the thumbnails mean.
fn heat_legend(level: f32) -> Markup {
    let css = |[r, g, b, a]: [u8; 4]| {
        format!(
            "background:rgba({r},{g},{b},{:.2})",
            f32::from(a.max(140)) / 255.0
        )
    };
    let [r, g, b] = overlay::OUTLINE_RGB;
    html! {
        p.legend {
            "Heat map: "
            @for stop in &overlay::legend(level)[1..3] {
                span.swatch style=(css(stop.rgba)) {} (stop.label) " "
            }
            span.swatch style=(format!("border:2px solid rgb({r},{g},{b})")) {}
            "outlined: defect score " (format!("{level:.2}")) " or more (the flag level), where to look."
        }
    }
}

fn failures(r: &EvalReport) -> Markup {
    html! {
        @if !r.failures.is_empty() {
            h2 { "Unreadable images (" (r.failures.len()) ")" }
            table {
                tr { th.l { "file" } th.l { "error" } }
                @for f in &r.failures { tr { td.l { (f.path.display()) } td.l { (f.error) } } }
            }
        }
    }
}

/// A small JPEG of the image as a data URI; `None` if it cannot be read.
/// A small JPEG of the image as a data URI, with the heat map drawn on when there is one.
fn thumbnail(path: &Path, heat: Option<&HeatMap>, model: &ModelInfo) -> Option<String> {
    let frame = Frame::open(path).ok()?;
    let image = image::RgbImage::from_raw(frame.width(), frame.height(), frame.rgb().to_vec())?;
    let scale = f64::from(THUMBNAIL_SIDE) / f64::from(frame.width().max(frame.height()));
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    let mut small = image::imageops::thumbnail(&image, side(frame.width()), side(frame.height()));
    if let Some(heat) = heat {
        let region = model.input.region(frame.width(), frame.height());
        overlay::draw_on(
            &mut small,
            region,
            &overlay::overlay(heat, model.flag_level),
            2,
        );
    }
    let mut jpeg = Cursor::new(Vec::new());
    small.write_to(&mut jpeg, image::ImageFormat::Jpeg).ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg.into_inner())
    ))
}

/// The page for `eval --compare`: each figure side by side, the winner and whether the
/// accuracy gap is more than chance, with links to both full reports (`A/`, `B/`).
pub fn render_comparison(c: &super::compare::Comparison) -> String {
    let verdict = match c.better {
        Some(_) => c.reason.clone(),
        None => format!("no clear winner: {}", c.reason),
    };
    let noise = if c.mcnemar_p < super::compare::NOISE_P {
        "more than chance"
    } else {
        "within chance"
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Inspecta comparison: " (c.a) " vs " (c.b) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "A: " (c.a) " vs B: " (c.b) }
                p { b { (verdict) } }
                table {
                    tr { th.l { "Figure" } th { "A" } th { "B" } th { "Better" } th { "Noise below" } }
                    @for k in &c.criteria {
                        tr {
                            td.l { (k.name) }
                            td { (format!("{:.4}", k.a)) }
                            td { (format!("{:.4}", k.b)) }
                            td { (if k.higher_is_better { "higher" } else { "lower" }) }
                            td { (format!("{:.4}", k.tolerance)) }
                        }
                    }
                }
                h2 { "Images only one model judged right" }
                p {
                    "Only A: " b { (c.only_a_right.len()) } ", only B: " b { (c.only_b_right.len()) }
                    ". Exact McNemar test p = " (format!("{:.4}", c.mcnemar_p)) ": the accuracy gap is " (noise) "."
                }
                p.muted { "Full reports: " a href="A/report.html" { "A" } ", " a href="B/report.html" { "B" } "." }
            }
        }
    };
    page.into_string()
}
