//! Charts drawn on the server as inline SVG and plain HTML: no script, no build step, and
//! they print.

use maud::{Markup, html};

use super::store::ShiftYield;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;

/// `2026-12-03T06:00:00Z` as `12-03 06:00`.
pub fn shift_label(shift: &str) -> String {
    shift
        .get(5..16)
        .map_or_else(|| shift.to_owned(), |s| s.replace('T', " "))
}

/// The lowest yield axis value: a tenth below the worst shift, so a 2 % drop is visible
/// and a bad shift is never cut off.
fn axis_floor(shifts: &[ShiftYield]) -> f64 {
    let worst = shifts
        .iter()
        .filter(|s| s.parts > 0)
        .map(|s| s.good as f64 / s.parts as f64)
        .fold(1.0_f64, f64::min);
    ((worst * 10.0).floor() / 10.0 - 0.1).clamp(0.0, 0.9)
}

/// Yield per shift as bars, each a link to that shift; `selected` is outlined.
pub fn yield_bars(
    shifts: &[ShiftYield],
    link: impl Fn(&str) -> String,
    selected: Option<&str>,
) -> Markup {
    if shifts.is_empty() {
        return html! { p.empty { "No parts in the last 7 days." } };
    }
    let floor = axis_floor(shifts);
    let plot = HEIGHT - BOTTOM;
    let y = |v: f64| plot - (v - floor) / (1.0 - floor) * (plot - 8.0);
    // 21 shifts fill the width; fewer keep their bars narrow, from the left.
    let slot = ((WIDTH - LEFT) / shifts.len() as f64).min(32.0);
    let ticks = [floor, floor + (1.0 - floor) / 2.0, 1.0];
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label="Yield per shift" {
            @for t in ticks {
                line.grid x1=(LEFT) x2=(WIDTH) y1=(y(t)) y2=(y(t)) {}
                text.axis x=(LEFT - 4.0) y=(y(t) + 4.0) text-anchor="end" { (format!("{:.0} %", t * 100.0)) }
            }
            @for (i, s) in shifts.iter().enumerate() {
                @let rate = if s.parts > 0 { s.good as f64 / s.parts as f64 } else { 0.0 };
                @let x = LEFT + i as f64 * slot + slot * 0.15;
                @let top = y(rate.max(floor));
                a href=(link(&s.shift)) {
                    rect.bar.selected[selected == Some(s.shift.as_str())]
                        x=(x) y=(top) width=(slot * 0.7) height=((plot - top).max(1.0)) {
                        title { (format!("{}: {:.2} % good of {} parts", shift_label(&s.shift), rate * 100.0, s.parts)) }
                    }
                }
                @if i % 3 == 0 {
                    text.axis x=(x + slot * 0.35) y=(HEIGHT - 6.0) text-anchor="middle" { (shift_label(&s.shift)) }
                }
            }
        }
    }
}

/// Defects held, largest first, as bars relative to the largest.
pub fn pareto(defects: &[(String, i64)]) -> Markup {
    let Some(largest) = defects.iter().map(|(_, n)| *n).max() else {
        return html! { p.empty { "No defects held in this shift." } };
    };
    let total: i64 = defects.iter().map(|(_, n)| n).sum();
    let cumulative = defects.iter().scan(0, |sum, (_, n)| {
        *sum += n;
        Some(*sum as f64 / total as f64)
    });
    html! {
        table.pareto {
            tr { th { "defect" } th { "parts" } th {} th { "cumulative" } }
            @for ((label, count), share) in defects.iter().zip(cumulative) {
                tr {
                    td { (label) }
                    td.num { (count) }
                    td.barcell { div.hbar style=(format!("width: {:.1}%", *count as f64 / largest as f64 * 100.0)) {} }
                    td.num { (format!("{:.0} %", share * 100.0)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shift(shift: &str, parts: i64, good: i64) -> ShiftYield {
        ShiftYield {
            shift: shift.into(),
            parts,
            good,
        }
    }

    #[test]
    fn the_axis_starts_below_the_worst_shift() {
        assert!((axis_floor(&[shift("a", 100, 97)]) - 0.8).abs() < 1e-9);
        assert!((axis_floor(&[shift("a", 100, 42)]) - 0.3).abs() < 1e-9);
        assert!(axis_floor(&[shift("a", 100, 3)]).abs() < 1e-9);
    }

    #[test]
    fn each_shift_is_a_bar_linking_to_it() {
        let svg = yield_bars(
            &[
                shift("2026-12-03T06:00:00Z", 10, 9),
                shift("2026-12-03T14:00:00Z", 10, 10),
            ],
            |s| format!("?shift={s}"),
            Some("2026-12-03T14:00:00Z"),
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("href=\"?shift=2026-12-03T06:00:00Z\""));
        assert!(svg.contains("12-03 06:00: 90.00 % good of 10 parts"));
        assert_eq!(svg.matches("selected").count(), 1);
    }

    #[test]
    fn the_pareto_accumulates_to_all_defects() {
        let html = pareto(&[("crack".into(), 3), ("scratch".into(), 1)]).into_string();
        assert!(html.contains("75 %") && html.contains("100 %"), "{html}");
    }
}
