//! Small self-contained SVG charts for the HTML report. Written by hand because a chart
//! library would need system fonts to lay out text; the browser lays out SVG text itself.

use std::fmt::Write as _;

const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 42.0;

#[derive(Debug, Clone)]
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A vertical marker line, such as a threshold.
#[derive(Debug, Clone, Copy)]
pub struct Marker<'a> {
    pub x: f64,
    pub label: &'a str,
    pub color: &'a str,
}

struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0).max(1e-12) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT
            - BOTTOM
            - (y - self.y.0) / (self.y.1 - self.y.0).max(1e-12) * (HEIGHT - TOP - BOTTOM)
    }

    fn axes(&self, svg: &mut String, x_label: &str, y_label: &str) {
        let (x0, x1, y0, y1) = (
            self.px(self.x.0),
            self.px(self.x.1),
            self.py(self.y.0),
            self.py(self.y.1),
        );
        for i in 0..=4 {
            let fx = self.x.0 + (self.x.1 - self.x.0) * f64::from(i) / 4.0;
            let fy = self.y.0 + (self.y.1 - self.y.0) * f64::from(i) / 4.0;
            let (gx, gy) = (self.px(fx), self.py(fy));
            let _ = write!(
                svg,
                r##"<line x1="{gx:.1}" y1="{y0:.1}" x2="{gx:.1}" y2="{y1:.1}" stroke="#e4e4e4"/><line x1="{x0:.1}" y1="{gy:.1}" x2="{x1:.1}" y2="{gy:.1}" stroke="#e4e4e4"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                y0 + 14.0,
                tick(fx),
                x0 - 4.0,
                gy + 4.0,
                tick(fy)
            );
        }
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(12 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
            x1 - x0,
            y0 - y1,
            (x0 + x1) / 2.0,
            HEIGHT - 6.0,
            escape(x_label),
            (y0 + y1) / 2.0,
            escape(y_label)
        );
    }

    fn marker(&self, svg: &mut String, m: Marker<'_>) {
        let x = self.px(m.x);
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="{}">{}</text>"#,
            self.py(self.y.0),
            self.py(self.y.1),
            m.color,
            x + 3.0,
            self.py(self.y.1) + 12.0,
            m.color,
            escape(m.label)
        );
    }
}

fn tick(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn open() -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    )
}

/// Markers, legend and the closing tag, drawn over the data.
fn finish(frame: &Frame, mut svg: String, series: &[Series<'_>], markers: &[Marker<'_>]) -> String {
    for m in markers {
        frame.marker(&mut svg, *m);
    }
    legend(
        &mut svg,
        series
            .iter()
            .map(|s| (s.name.to_owned(), s.color.to_owned())),
    );
    svg.push_str("</svg>");
    svg
}

fn legend(svg: &mut String, names: impl Iterator<Item = (String, String)>) {
    for (i, (name, color)) in names.enumerate() {
        let y = TOP + 32.0 + 14.0 * i as f64;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            WIDTH - 150.0,
            y - 9.0,
            WIDTH - 136.0,
            y,
            escape(&name)
        );
    }
}

/// Lines through `(x, y)` points over fixed axis ranges.
pub fn line_chart(
    x_label: &str,
    y_label: &str,
    x_range: (f64, f64),
    y_range: (f64, f64),
    series: &[Series<'_>],
    markers: &[Marker<'_>],
) -> String {
    let frame = Frame {
        x: x_range,
        y: y_range,
    };
    let mut svg = open();
    frame.axes(&mut svg, x_label, y_label);
    for s in series {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", frame.px(*x), frame.py(*y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            points.join(" ")
        );
    }
    finish(&frame, svg, series, markers)
}

/// Overlaid histograms of values in 0..=1, one per series (`points` holds `(value, _)`).
pub fn histogram(
    x_label: &str,
    bins: usize,
    series: &[Series<'_>],
    markers: &[Marker<'_>],
) -> String {
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|s| {
            let mut c = vec![0usize; bins];
            for (v, _) in &s.points {
                c[((v.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1)] += 1;
            }
            c
        })
        .collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
    let frame = Frame {
        x: (0.0, 1.0),
        y: (0.0, max as f64),
    };
    let mut svg = open();
    frame.axes(&mut svg, x_label, "images");
    for (s, c) in series.iter().zip(&counts) {
        for (i, n) in c.iter().enumerate().filter(|(_, n)| **n > 0) {
            let (x0, x1) = (
                frame.px(i as f64 / bins as f64),
                frame.px((i + 1) as f64 / bins as f64),
            );
            let y = frame.py(*n as f64);
            let _ = write!(
                svg,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.55"><title>{}: {n}</title></rect>"#,
                (x1 - x0 - 0.5).max(0.5),
                frame.py(0.0) - y,
                s.color,
                escape(s.name)
            );
        }
    }
    finish(&frame, svg, series, markers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_draws_each_series_and_escapes_text() {
        let s = [Series {
            name: "a<b",
            color: "#000",
            points: vec![(0.0, 0.0), (1.0, 1.0)],
        }];
        let svg = line_chart("x", "y", (0.0, 1.0), (0.0, 1.0), &s, &[]);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("a&lt;b") && svg.ends_with("</svg>"));
    }

    #[test]
    fn histogram_bins_values() {
        let s = [Series {
            name: "good",
            color: "#0a0",
            points: vec![(0.01, 0.0), (0.02, 0.0), (0.99, 0.0)],
        }];
        let svg = histogram("score", 10, &s, &[]);
        assert!(svg.contains("good: 2") && svg.contains("good: 1"));
    }
}
