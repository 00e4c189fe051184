//! `inspecta export-dataset`: reviews become data. Every part an inspector reviewed is
//! copied out of the record store under the label the part finally has, as the class-folder
//! layout `inspecta eval` and the trainers read (`<out>/<label>/<record id>_<name>.jpg`),
//! with `provenance.csv` saying where each file came from and who labelled it.
//!
//! Re-running into the same folder is idempotent: identical files are kept, the CSV is
//! rewritten, and files an earlier export wrote that are no longer selected (or whose part
//! has been relabelled since) are removed. Files this command did not write are never
//! touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use inspecta_pipeline::store::{
    DATABASE_FILE, ImagePolicy, Record, RecordStore, ReviewAction, StoreConfig,
};
use jiff::Timestamp;

use crate::config::StationConfig;

const PROVENANCE: &str = "provenance.csv";
const COLUMNS: [&str; 14] = [
    "file",
    "label",
    "record_id",
    "part_id",
    "station",
    "time",
    "model",
    "model_version",
    "verdict",
    "reviewer",
    "review_time",
    "action",
    "reason",
    "source_image",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The record store: its folder (records.sqlite + images/), its records.sqlite, or a
    /// station config (.toml) whose [store] section names it.
    #[arg(long, value_name = "PATH")]
    store: PathBuf,
    /// Data set folder: `<out>/<label>/<record id>_<name>.jpg` and `<out>/provenance.csv`.
    #[arg(long, value_name = "FOLDER")]
    out: PathBuf,
    /// Only parts captured at or after this time (RFC 3339, or a UTC date YYYY-MM-DD).
    #[arg(long, value_parser = parse_time)]
    since: Option<Timestamp>,
    /// Only parts captured before this time (RFC 3339, or a UTC date YYYY-MM-DD).
    #[arg(long, value_parser = parse_time)]
    until: Option<Timestamp>,
    /// Only parts whose final label differs from the model's verdict (overridden verdicts
    /// and labelled uncertain parts), not confirmed ones.
    #[arg(long)]
    only_overrides: bool,
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    if let Ok(time) = text.parse::<Timestamp>() {
        return Ok(time);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return format!("{date}T00:00:00Z")
            .parse::<Timestamp>()
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "expected an RFC 3339 time like 2025-11-26T06:00:00Z or a UTC date like 2025-11-26, \
         got {text:?}"
    ))
}

/// What one export did, for the summary.
#[derive(Debug, Default)]
struct Tally {
    per_class: BTreeMap<String, u64>,
    new_files: u64,
    unchanged: u64,
    removed: u64,
    /// No image was kept with the record (image policy).
    not_kept: u64,
    /// An image was kept, but its file is gone (retention, or deleted by hand).
    deleted: u64,
    unreadable: u64,
    /// Labels that cannot be a class folder.
    bad_label: u64,
}

impl Tally {
    fn exported(&self) -> u64 {
        self.per_class.values().sum()
    }

    fn no_image(&self) -> u64 {
        self.not_kept + self.deleted + self.unreadable
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        bail!("--since ({since}) must be before --until ({until})");
    }
    let dir = store_dir(&args.store)?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot read the record store folder {}", dir.display()))?;
    let out = std::path::absolute(&args.out)
        .with_context(|| format!("bad output folder {}", args.out.display()))?;
    if out.starts_with(&dir) {
        bail!(
            "the output folder {} is inside the record store {}: choose a folder outside it",
            out.display(),
            dir.display()
        );
    }
    // Unlimited retention: exporting reads the store, it never prunes its images (nor the
    // ring of a station running on it).
    let config = StoreConfig {
        dir: dir.clone(),
        images: ImagePolicy::None,
        max_image_bytes: u64::MAX,
        max_image_days: u32::MAX,
        recent_images: u32::MAX,
        recent_image_minutes: u32::MAX,
    };
    let store = RecordStore::open(&config)
        .with_context(|| format!("cannot open the record store in {}", dir.display()))?;
    let parts = store
        .reviewed_parts(args.since, args.until)
        .with_context(|| format!("cannot read the reviews in {}", store.path().display()))?;
    drop(store);

    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let previous = previous_export(&out.join(PROVENANCE));

    let mut tally = Tally::default();
    let mut csv = provenance_writer()?;
    let mut written = BTreeSet::new();
    for part in &parts {
        let record = &part.record;
        let Some(review) = &record.review else {
            continue;
        };
        let model_label = record.class.as_deref().unwrap_or(&record.verdict);
        if args.only_overrides && record.label == model_label {
            continue;
        }
        let label = record.label.as_str();
        if !usable_class(label) {
            tracing::warn!(
                id = record.id,
                label,
                "skipped: the label cannot be a class folder"
            );
            tally.bad_label += 1;
            continue;
        }
        let Some(source) = &part.image else {
            tally.not_kept += 1;
            continue;
        };
        let bytes = match std::fs::read(source) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tally.deleted += 1;
                continue;
            }
            Err(e) => {
                tracing::warn!(id = record.id, image = %source.display(), "skipped: cannot read the image: {e}");
                tally.unreadable += 1;
                continue;
            }
        };
        let name = export_name(record, source);
        let relative = format!("{label}/{name}");
        if write_if_changed(&out.join(label), &name, &bytes)? {
            tally.new_files += 1;
        } else {
            tally.unchanged += 1;
        }
        *tally.per_class.entry(label.to_owned()).or_default() += 1;
        csv.write_record([
            relative.as_str(),
            label,
            &record.id.to_string(),
            record.part_id.as_deref().unwrap_or(""),
            &record.station,
            &record.captured_at.to_string(),
            &record.model.name,
            &record.model.version,
            model_label,
            &review.reviewer,
            &review.reviewed_at.to_string(),
            match review.action {
                ReviewAction::Confirm => "confirm",
                ReviewAction::Override => "override",
            },
            review.reason.as_deref().unwrap_or(""),
            &source.display().to_string(),
        ])
        .context("cannot write the provenance CSV")?;
        written.insert(relative);
    }
    tally.removed = remove_stale(&out, &previous, &written)?;
    let csv_path = out.join(PROVENANCE);
    let csv = csv
        .into_inner()
        .map_err(|e| e.into_error())
        .context("cannot write the provenance CSV")?;
    write_atomically(&csv_path, &csv)?;
    print_summary(&tally, &out, &csv_path, parts.is_empty());
    Ok(ExitCode::SUCCESS)
}

/// The folder holding records.sqlite, from what `--store` names.
fn store_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_dir() {
        if !path.join(DATABASE_FILE).is_file() {
            bail!(
                "{} is not a record store: it has no {DATABASE_FILE}",
                path.display()
            );
        }
        return Ok(path.to_owned());
    }
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "toml") {
            let config = StationConfig::from_path(path)?;
            let store = config.store.with_context(|| {
                format!("{} has no [store] section: no records", path.display())
            })?;
            return store_dir(&store.dir)
                .with_context(|| format!("the [store] of {}", path.display()));
        }
        if path.file_name().is_some_and(|n| n == DATABASE_FILE) {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            return Ok(parent.unwrap_or(Path::new(".")).to_owned());
        }
        bail!(
            "{} is not a record store: expected its folder, its {DATABASE_FILE} or a station \
             config (.toml)",
            path.display()
        );
    }
    bail!("no record store at {}", path.display());
}

/// Whether a label can name a class folder directly under the output folder.
fn usable_class(label: &str) -> bool {
    !label.is_empty()
        && label != "uncertain"
        && label != PROVENANCE
        && !label.starts_with('.')
        && !label
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// `<record id>_<name>.jpg`: the name of the file the part came from (the image kept in the
/// store, for cameras), so exports of the same part always agree. The store keeps JPEGs.
fn export_name(record: &Record, kept: &Path) -> String {
    let origin = record
        .origin
        .as_deref()
        .map(Path::new)
        .filter(|p| p.extension().is_some());
    let stem = origin
        .and_then(Path::file_stem)
        .or_else(|| kept.file_stem())
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let mut clean: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if clean.is_empty() {
        clean.push_str("part");
    }
    format!("{}_{clean}.jpg", record.id)
}

/// Writes `bytes` to `dir/name` unless that file already holds exactly them; true when
/// written. The file appears complete or not at all.
fn write_if_changed(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<bool> {
    let path = dir.join(name);
    if let Ok(existing) = std::fs::read(&path)
        && existing == bytes
    {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the class folder {}", dir.display()))?;
    write_atomically(&path, bytes)?;
    Ok(true)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Hidden, so a reader of the data set never takes a half-written file for an image.
    let partial = path.with_file_name(format!(".{name}.partial"));
    std::fs::write(&partial, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
}

/// provenance.csv in memory, its header written: RFC 4180, fields quoted only where they
/// must be (a comma, quote or line break), quotes doubled, CRLF ending each line.
fn provenance_writer() -> anyhow::Result<csv::Writer<Vec<u8>>> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer
        .write_record(COLUMNS)
        .context("cannot write the provenance CSV")?;
    Ok(writer)
}

/// The files the export in `out` wrote last time, from its provenance.csv.
fn previous_export(csv: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(csv) else {
        return Vec::new();
    };
    exported_files(&text)
}

/// The `file` column of a provenance.csv; nothing unless its header is ours.
fn exported_files(text: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let ours = reader
        .headers()
        .is_ok_and(|header| header.get(0) == Some(COLUMNS[0]));
    if !ours {
        return Vec::new();
    }
    reader
        .records()
        .filter_map(|row| row.ok()?.get(0).map(str::to_owned))
        .collect()
}

/// Removes what an earlier export wrote that this one did not: parts no longer selected,
/// and parts relabelled since (the same file under another class). Returns how many.
fn remove_stale(
    out: &Path,
    previous: &[String],
    written: &BTreeSet<String>,
) -> anyhow::Result<u64> {
    let mut stale: BTreeSet<String> = previous
        .iter()
        .filter(|file| is_export_file(file) && !written.contains(*file))
        .cloned()
        .collect();
    // Without the old CSV a relabelled part is still found: same name, other class.
    let classes: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("cannot read {}", out.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for file in written {
        let Some((label, name)) = file.split_once('/') else {
            continue;
        };
        for class in classes.iter().filter(|c| *c != label) {
            let other = format!("{class}/{name}");
            if out.join(&other).is_file() {
                stale.insert(other);
            }
        }
    }
    let mut removed = 0;
    for file in &stale {
        let path = out.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot remove {} of an earlier export", path.display())
                });
            }
        }
        if let Some(dir) = path.parent() {
            // Only an emptied class folder goes; a trainer would take it for a class.
            let _ = std::fs::remove_dir(dir);
        }
    }
    Ok(removed)
}

/// `<class>/<digits>_<name>.jpg`, as this command names files, and nothing outside `out`.
fn is_export_file(file: &str) -> bool {
    let Some((class, name)) = file.split_once('/') else {
        return false;
    };
    let Some((id, rest)) = name.split_once('_') else {
        return false;
    };
    usable_class(class)
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && rest.ends_with(".jpg")
        && !rest.contains(['/', '\\'])
}

fn print_summary(tally: &Tally, out: &Path, csv: &Path, none_reviewed: bool) {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "exported {} reviewed parts to {}",
        tally.exported(),
        out.display()
    );
    if none_reviewed {
        let _ = writeln!(text, "  (no reviewed parts in the store for this span)");
    }
    let width = tally.per_class.keys().map(String::len).max().unwrap_or(0);
    for (class, n) in &tally.per_class {
        let _ = writeln!(text, "  {class:<width$}  {n}");
    }
    let _ = write!(
        text,
        "files: {} new, {} unchanged, {} removed",
        tally.new_files, tally.unchanged, tally.removed
    );
    if tally.removed > 0 {
        let _ = write!(
            text,
            " (from an earlier export: no longer selected, or relabelled)"
        );
    }
    text.push('\n');
    let _ = writeln!(
        text,
        "skipped (no image): {} ({} none on record, {} file gone, {} unreadable)",
        tally.no_image(),
        tally.not_kept,
        tally.deleted,
        tally.unreadable
    );
    if tally.bad_label > 0 {
        let _ = writeln!(
            text,
            "skipped (label unusable as a folder): {}",
            tally.bad_label
        );
    }
    let _ = write!(text, "provenance: {}", csv.display());
    println!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_quotes_what_needs_it_and_reads_back() -> anyhow::Result<()> {
        let files = [
            "good/1_a,b.jpg",
            "good/2_say \"hi\".jpg",
            "good/3_two\nlines.jpg",
        ];
        let mut csv = provenance_writer()?;
        for (file, reason) in files.into_iter().zip(["plain", "", " edge\r\n"]) {
            let mut row = [""; COLUMNS.len()];
            row[0] = file;
            row[12] = reason;
            csv.write_record(row)?;
        }
        let text = String::from_utf8(csv.into_inner().map_err(|e| e.into_error())?)?;
        let blanks = ",".repeat(11);
        assert_eq!(
            text,
            format!(
                "{}\r\n\
                 \"good/1_a,b.jpg\"{blanks},plain,\r\n\
                 \"good/2_say \"\"hi\"\".jpg\"{blanks},,\r\n\
                 \"good/3_two\nlines.jpg\"{blanks},\" edge\r\n\",\r\n",
                COLUMNS.join(",")
            )
        );
        assert_eq!(exported_files(&text), files);
        assert!(exported_files("name,label\r\ngood/1_a.jpg,good\r\n").is_empty());
        Ok(())
    }

    #[test]
    fn only_our_own_file_names_are_ever_removed() {
        assert!(is_export_file("good/12_cast_ok_0_10.jpg"));
        assert!(is_export_file("surface scratch/3_a.jpg"));
        assert!(!is_export_file("../12_x.jpg"));
        assert!(!is_export_file("good/../../12_x.jpg"));
        assert!(!is_export_file("good/mine.jpg"));
        assert!(!is_export_file("good/12_x.png"));
        assert!(!is_export_file("12_x.jpg"));
        assert!(!is_export_file("good/sub/12_x.jpg"));
    }

    #[test]
    fn labels_that_cannot_be_folders_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "uncertain",
            ".hidden",
            "a\\b",
            "provenance.csv",
        ] {
            assert!(!usable_class(bad), "{bad:?}");
        }
        for good in ["good", "defect", "surface scratch", "red iron"] {
            assert!(usable_class(good), "{good:?}");
        }
    }

    #[test]
    fn times_are_rfc3339_or_utc_dates() {
        assert_eq!(
            parse_time("2025-11-26").unwrap_or_default(),
            parse_time("2025-11-26T00:00:00Z").unwrap_or_default()
        );
        assert!(parse_time("2025-11-26T06:00:00+01:00").is_ok());
        assert!(parse_time("yesterday").is_err());
    }
}
