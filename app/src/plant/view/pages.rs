//! The plant view's pages, rendered on the server (maud escapes every value). Overview
//! pages reload themselves every 30 s, so a wall screen stays live without a script.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::chart;
use super::store::{Alarm, Part, PartRecord, Presence, RolloutRow, ShiftYield, Summary};

const STYLE: &str = r#"
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; color: #1d232a; background: #f4f6f8; }
header { background: #1d3557; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: center; }
header a { color: #fff; }
header .who { margin-left: auto; }
header form { display: inline; }
nav.crumbs { padding: 8px 20px; background: #e3e8ee; }
main { padding: 12px 20px 40px; max-width: 1200px; }
h1 { font-size: 22px; margin: 8px 0 12px; }
h2 { font-size: 17px; margin: 22px 0 8px; }
table { border-collapse: collapse; background: #fff; }
th, td { padding: 5px 10px; border-bottom: 1px solid #dde3ea; text-align: left; white-space: nowrap; }
td:last-child { white-space: normal; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; }
.tile { background: #fff; padding: 10px 16px; border-radius: 6px; min-width: 120px; }
.tile b { display: block; font-size: 24px; }
.online { color: #1a7f37; font-weight: 600; }
.offline { color: #b42318; font-weight: 600; }
.defect { color: #b42318; } .uncertain { color: #9a6700; } .good { color: #1a7f37; }
svg.chart { width: 100%; max-width: 760px; background: #fff; }
svg .grid { stroke: #dde3ea; } svg .axis { font-size: 11px; fill: #57606a; }
svg .bar { fill: #457b9d; } svg .bar.selected { fill: #1d3557; stroke: #e63946; stroke-width: 2; }
table.pareto .barcell { width: 260px; } .hbar { background: #e63946; height: 12px; }
.empty { color: #57606a; } .error { color: #b42318; font-weight: 600; }
form.login { background: #fff; padding: 20px; max-width: 320px; display: grid; gap: 10px; }
img.part { max-width: 100%; max-height: 520px; background: #fff; border: 1px solid #dde3ea; }
pre { background: #fff; padding: 10px; overflow: auto; max-height: 400px; }
.note { background: #fff8c5; padding: 8px 12px; border-radius: 6px; display: inline-block; }
.promoted { color: #1a7f37; font-weight: 600; } .awaiting_approval { color: #9a6700; font-weight: 600; }
.rejected, .failed { color: #b42318; font-weight: 600; }
table.rollouts td { white-space: normal; } table.rollouts td.id { font-size: 12px; max-width: 200px; word-break: break-all; }
table.rollouts td.why { max-width: 280px; } table.rollouts td.act { white-space: nowrap; }
"#;

/// A path from segments, each percent-encoded: names come from the stations.
pub fn href(segments: &[&str]) -> String {
    segments.iter().fold(String::new(), |mut path, s| {
        path.push('/');
        path.extend(percent_encoding::utf8_percent_encode(
            s,
            percent_encoding::NON_ALPHANUMERIC,
        ));
        path
    })
}

fn percent(part: i64, of: i64) -> String {
    if of == 0 {
        "–".into()
    } else {
        format!("{:.2} %", part as f64 / of as f64 * 100.0)
    }
}

fn layout(
    title: &str,
    who: Option<&str>,
    crumbs: &[(String, String)],
    live: bool,
    body: &Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if live { meta http-equiv="refresh" content="30"; }
                title { (title) " · Inspecta plant view" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { b { "Inspecta" } " plant view" }
                    a href="/alarms" { "Alarms" }
                    @if let Some(who) = who {
                        span.who { "Signed in as " (who) }
                        form method="post" action="/logout" { button type="submit" { "Sign out" } }
                    }
                }
                @if !crumbs.is_empty() {
                    nav.crumbs {
                        a href="/" { "Plant" }
                        @for (label, link) in crumbs { " › " a href=(link) { (label) } }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn login(next: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        &[],
        false,
        &html! {
            h1 { "Sign in" }
            @if let Some(error) = error { p.error { (error) } }
            form.login method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Name " input name="name" autocomplete="username" required autofocus; }
                label { "Password " input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn error(who: Option<&str>, title: &str, message: &str) -> Markup {
    layout(
        title,
        who,
        &[],
        false,
        &html! {
            h1 { (title) }
            p.error { (message) }
        },
    )
}

/// What a plant, site or line page shows.
#[derive(Debug)]
pub struct Level<'a> {
    pub who: &'a str,
    pub title: String,
    /// Path segments of this page: none for the plant, then site, then line.
    pub path: Vec<&'a str>,
    /// What the rows are: "Site", "Line" or "Station".
    pub rows_are: &'static str,
    pub shift: Option<&'a str>,
    pub rows: Vec<Summary>,
    pub presence: Vec<Presence>,
    pub yields: Vec<ShiftYield>,
    pub pareto: Vec<(String, i64)>,
    pub alarms: Vec<Alarm>,
}

fn crumbs(path: &[&str]) -> Vec<(String, String)> {
    (0..path.len())
        .map(|i| (path[i].to_owned(), href(&site_path(&path[..=i]))))
        .collect()
}

/// `/sites/<site>/<line>/<station>` segments from the plant's levels.
fn site_path<'a>(levels: &[&'a str]) -> Vec<&'a str> {
    std::iter::once("sites")
        .chain(levels.iter().copied())
        .collect()
}

/// The page of a plant level: `/` for the plant, `/sites/...` below it.
fn level_href(levels: &[&str]) -> String {
    if levels.is_empty() {
        "/".into()
    } else {
        href(&site_path(levels))
    }
}

fn shift_heading(shift: Option<&str>) -> String {
    shift.map_or_else(
        || "this shift".to_owned(),
        |s| format!("the shift of {}", chart::shift_label(s)),
    )
}

fn totals(rows: &[Summary]) -> Markup {
    let sum = |f: fn(&Summary) -> i64| rows.iter().map(f).sum::<i64>();
    let (parts, good) = (sum(|r| r.parts), sum(|r| r.good));
    html! {
        div.tiles {
            div.tile { "Parts" b { (parts) } }
            div.tile { "Yield" b { (percent(good, parts)) } }
            div.tile { "Uncertain" b { (percent(sum(|r| r.uncertain), parts)) } }
            div.tile { "Overridden" b { (percent(sum(|r| r.overridden), parts)) } }
            div.tile { "Stations online" b { (sum(|r| r.online)) " / " (sum(|r| r.stations)) } }
            div.tile { "Alarms, 24 h" b { (sum(|r| r.alarms)) } }
        }
    }
}

pub fn level(page: &Level<'_>) -> Markup {
    let here = level_href(&page.path);
    let shift_link = |s: &str| format!("{here}?shift={s}");
    let live = page.shift.is_none();
    layout(
        &page.title,
        Some(page.who),
        &crumbs(&page.path),
        live,
        &html! {
            h1 { (page.title) " — " (shift_heading(page.shift)) }
            @if page.shift.is_some() { p { a href=(here) { "Back to this shift" } } }
            (totals(&page.rows))
            h2 { "Yield per shift, last 7 days" }
            (chart::yield_bars(&page.yields, shift_link, page.shift))
            h2 { (page.rows_are) "s" }
            (summary_table(page))
            h2 { "Defect Pareto, " (shift_heading(page.shift)) }
            (chart::pareto(&page.pareto))
            h2 { "Alarms" }
            (alarm_table(&page.alarms))
        },
    )
}

fn summary_table(page: &Level<'_>) -> Markup {
    let stations = page.rows_are == "Station";
    html! {
        @if page.rows.is_empty() { p.empty { "Nothing reported yet." } } @else {
            table.summary {
                tr {
                    th { (page.rows_are) }
                    @if stations { th { "state" } th { "since" } th { "model" } } @else { th.num { "online" } }
                    th.num { "parts" } th.num { "yield" } th.num { "uncertain" } th.num { "overridden" }
                    th.num { "false rejects" } th.num { "alarms 24 h" } th { "last part" }
                }
                @for row in &page.rows {
                    tr {
                        td { a href=(level_href(&[page.path.as_slice(), &[row.name.as_str()]].concat())) { (row.name) } }
                        @if stations {
                            @let presence = page.presence.iter().find(|p| p.station == row.name);
                            td { @if let Some(p) = presence { span class=(p.state) { (p.state) } } @else { "unknown" } }
                            td { @if let Some(p) = presence { (p.since) } }
                            td { @if let Some(model) = presence.and_then(|p| p.model.as_deref()) { (model) } }
                        } @else {
                            td.num { (row.online) " / " (row.stations) }
                        }
                        td.num { (row.parts) }
                        td.num { (percent(row.good, row.parts)) }
                        td.num { (percent(row.uncertain, row.parts)) }
                        td.num { (percent(row.overridden, row.parts)) }
                        td.num { (percent(row.false_rejects, row.defects_called)) }
                        td.num { (row.alarms) }
                        td { @if let Some(last) = &row.last_part { (last) } }
                    }
                }
            }
        }
    }
}

fn alarm_table(alarms: &[Alarm]) -> Markup {
    html! {
        @if alarms.is_empty() { p.empty { "No alarms." } } @else {
            table.alarms {
                tr { th { "raised" } th { "station" } th { "chart" } th { "rule" } th { "message" } }
                @for a in alarms {
                    tr {
                        td { (a.raised_at) }
                        td { a href=(href(&["sites", &a.site, &a.line, &a.station])) { (a.site) " / " (a.line) " / " (a.station) } }
                        td { (a.chart) } td { (a.rule) } td { (a.message) }
                    }
                }
            }
        }
    }
}

pub fn alarms(who: &str, alarms: &[Alarm]) -> Markup {
    layout(
        "Alarms",
        Some(who),
        &[],
        true,
        &html! {
            h1 { "Alarms, newest first" }
            (alarm_table(alarms))
        },
    )
}

/// One station: its state, this shift, its yield per shift, its newest parts.
#[derive(Debug)]
pub struct StationPage<'a> {
    pub who: &'a str,
    pub path: [&'a str; 3],
    pub summary: Option<Summary>,
    pub presence: Option<Presence>,
    pub yields: Vec<ShiftYield>,
    pub parts: Vec<Part>,
    pub alarms: Vec<Alarm>,
    pub rollouts: Vec<RolloutRow>,
    /// The session's form token when the signed-in person may approve a rollout here.
    pub approve: Option<&'a str>,
    /// What became of the last action (an approval sent, refused).
    pub note: Option<&'a str>,
}

pub fn station(page: &StationPage<'_>) -> Markup {
    let base = href(&site_path(&page.path));
    let line = level_href(&page.path[..2]);
    let shift_link = |s: &str| format!("{line}?shift={s}");
    layout(
        page.path[2],
        Some(page.who),
        &crumbs(&page.path),
        true,
        &html! {
            h1 { "Station " (page.path[2]) }
            div.tiles {
                @if let Some(p) = &page.presence {
                    div.tile { "State" b class=(p.state) { (p.state) } "since " (p.since) }
                    div.tile { "Model" b { (p.model.as_deref().unwrap_or("–")) } }
                    div.tile { "API" b { (p.api.as_deref().unwrap_or("not announced")) } }
                }
                @if let Some(s) = &page.summary {
                    div.tile { "Parts this shift" b { (s.parts) } }
                    div.tile { "Yield" b { (percent(s.good, s.parts)) } }
                    div.tile { "Uncertain" b { (percent(s.uncertain, s.parts)) } }
                    div.tile { "False rejects" b { (percent(s.false_rejects, s.defects_called)) } }
                }
            }
            h2 #rollouts { "Model rollouts" }
            @if let Some(note) = page.note { p.note { (note) } }
            (rollout_table(&base, &page.rollouts, page.approve))
            h2 { "Yield per shift, last 7 days (the line's page per shift)" }
            (chart::yield_bars(&page.yields, shift_link, None))
            h2 { "Newest parts" }
            @if page.parts.is_empty() { p.empty { "No parts yet." } } @else {
                table.parts {
                    tr { th.num { "id" } th { "captured" } th { "verdict" } th { "held as" } th.num { "defect score" } th { "model" } th { "review" } }
                    @for p in &page.parts {
                        tr {
                            td.num { a href=(format!("{base}/parts/{}", p.id)) { (p.id) } }
                            td { (p.captured_at) }
                            td class=(p.verdict) { (p.verdict) }
                            td { (p.label) }
                            td.num { @if let Some(score) = p.defect_score { (format!("{score:.3}")) } }
                            td { (p.model.as_deref().unwrap_or("")) }
                            td { (p.review.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            h2 { "Alarms" }
            (alarm_table(&page.alarms))
        },
    )
}

/// Each rollout with its figures; one waiting for approval gets the button when allowed.
fn rollout_table(base: &str, rollouts: &[RolloutRow], approve: Option<&str>) -> Markup {
    html! {
        @if rollouts.is_empty() { p.empty { "No model was rolled out to this station." } } @else {
            table.rollouts {
                tr { th { "rollout" } th { "model" } th { "phase" } th.num { "shadow parts" } th.num { "agreement" } th { "by" } th { "at" } th { "note" } th {} }
                @for r in rollouts {
                    tr {
                        td.id { (r.rollout) }
                        td { (r.model) }
                        td class=(r.phase) { (r.phase.replace('_', " ")) }
                        td.num { (r.judged.min(r.shadow_parts)) " / " (r.shadow_parts) }
                        td.num { @if let Some(a) = r.agreement { (format!("{:.2} %", a * 100.0)) } }
                        td { (r.who.as_deref().unwrap_or("")) }
                        td { (r.at) }
                        td.why { (r.reason.as_deref().unwrap_or("")) }
                        td.act {
                            @if let (Some(token), "awaiting_approval") = (approve, r.phase.as_str()) {
                                form method="post" action=(format!("{base}/rollouts{}/approve", href(&[&r.rollout]))) {
                                    input type="hidden" name="token" value=(token);
                                    button type="submit" { "Approve" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn part(who: &str, path: [&str; 3], record: &PartRecord) -> Markup {
    let p = &record.part;
    let station = href(&site_path(&path));
    let mut trail = crumbs(&path);
    trail.push((
        format!("part {}", p.id),
        format!("{station}/parts/{}", p.id),
    ));
    layout(
        &format!("Part {}", p.id),
        Some(who),
        &trail,
        false,
        &html! {
            h1 { "Part " (p.id) " at " (path[2]) }
            div.tiles {
                div.tile { "Verdict" b class=(p.verdict) { (p.verdict) } }
                div.tile { "Held as" b { (p.label) } }
                div.tile { "Defect score" b { @if let Some(s) = p.defect_score { (format!("{s:.3}")) } @else { "–" } } }
                div.tile { "Captured" b { (p.captured_at) } }
                div.tile { "Model" b { (p.model.as_deref().unwrap_or("–")) } }
            }
            h2 { "Image, from the station" }
            img.part src=(format!("{station}/parts/{}/image", p.id)) alt=(format!("part {} as the station kept it", p.id));
            h2 { "Reviews" }
            @if record.reviews.is_empty() { p.empty { "Not reviewed." } } @else {
                table.reviews {
                    tr { th { "when" } th { "who" } th { "action" } th { "before" } th { "after" } th { "reason" } }
                    @for r in &record.reviews {
                        tr { td { (r.reviewed_at) } td { (r.reviewer) } td { (r.action) } td { (r.before) } td { (r.after) } td { (r.reason.as_deref().unwrap_or("")) } }
                    }
                }
            }
            h2 { "The record as published" }
            pre { (record.payload) }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_encoded_in_links() {
        assert_eq!(
            href(&["sites", "plant a", "line/2"]),
            "/sites/plant%20a/line%2F2"
        );
    }

    #[test]
    fn a_name_is_escaped_in_the_page() {
        let html = error(Some("<b>x</b>"), "t", "<script>alert(1)</script>").into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
