//! The `inspecta` binary as a user runs it: real files in, exit codes and output checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn inspecta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .env_remove("INSPECTA_MODEL")
        .args(args)
        .output()
        .expect("run inspecta")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn first_image(folder: &str) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files[0].to_string_lossy().into_owned()
}

#[test]
fn predict_json_gives_one_verdict_per_image() {
    let good = first_image("samples/casting/good");
    let defect = first_image("samples/casting/defect");
    let out = inspecta(&["predict", "--json", &good, &defect]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["verdict"], "good");
    assert_eq!(lines[1]["verdict"], "defect");
    assert_eq!(lines[1]["class"], "defect");
    assert!(lines[1]["defect_score"].as_f64().unwrap() > 0.5);
    assert_eq!(lines[0]["probabilities"].as_array().unwrap().len(), 2);
}

/// A folder stands for every image under it, in path order; a folder without images is an
/// error that says so rather than an empty success.
#[test]
fn predict_judges_every_image_in_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir_all(parts.join("b")).unwrap();
    std::fs::copy(first_image("samples/casting/good"), parts.join("a.jpeg")).unwrap();
    std::fs::copy(
        first_image("samples/casting/defect"),
        parts.join("b/c.jpeg"),
    )
    .unwrap();
    std::fs::write(parts.join("notes.txt"), "not an image").unwrap();
    let out = inspecta(&["predict", "--json", parts.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0]["path"].as_str().unwrap().ends_with("a.jpeg"));
    assert_eq!(lines[0]["verdict"], "good");
    assert!(lines[1]["path"].as_str().unwrap().ends_with("b/c.jpeg"));
    assert_eq!(lines[1]["verdict"], "defect");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = inspecta(&["predict", empty.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("holds no images"), "{}", stderr(&out));
}

#[test]
fn predict_reports_a_corrupt_file_and_still_judges_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("cut.jpeg");
    let jpeg = std::fs::read(first_image("samples/casting/good")).unwrap();
    std::fs::write(&bad, &jpeg[..jpeg.len() / 2]).unwrap();
    let good = first_image("samples/casting/good");
    let out = inspecta(&["predict", "--json", bad.to_str().unwrap(), &good]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines[0]["error"].as_str().unwrap().contains("truncated"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["verdict"], "good");
}

#[test]
fn eval_writes_both_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let out = inspecta(&[
        "eval",
        "samples/casting",
        "--quiet",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ROC AUC") && text.contains("recommended"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["evaluated"], 24);
    assert!(
        std::fs::read_to_string(out_dir.join("report.html"))
            .unwrap()
            .contains("<svg")
    );
}

#[test]
fn eval_with_an_unmapped_folder_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ok_front")).unwrap();
    std::fs::copy(
        first_image("samples/casting/good"),
        dir.path().join("ok_front/a.jpeg"),
    )
    .unwrap();
    let out = inspecta(&["eval", dir.path().to_str().unwrap(), "--quiet"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--map ok_front=<label>"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn broken_manifest_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("models/casting/model.onnx"),
        dir.path().join("model.onnx"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(repo().join("models/casting/model.toml")).unwrap();
    std::fs::write(
        dir.path().join("model.toml"),
        manifest.replace("[input]", "[input]\nchannels = 3"),
    )
    .unwrap();
    let out = inspecta(&[
        "predict",
        "--model",
        dir.path().to_str().unwrap(),
        &first_image("samples/casting/good"),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("model.toml") && err.contains("channels"),
        "{err}"
    );
}

/// An error names each cause once, and a log read through a pipe (journald, a file) carries
/// no colour codes.
#[test]
fn a_missing_image_is_said_once_and_without_colour_codes() {
    let out = inspecta(&["predict", "/nonexistent/part.jpg"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/part.jpg"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
}

/// Outside a checkout, with no installed model either, the command says what it looked for.
#[test]
fn predict_without_a_model_anywhere_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(dir.path())
        .env_remove("INSPECTA_MODEL")
        .args(["predict", &first_image("samples/casting/good")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("models/casting") && err.contains("share/inspecta/models/casting"),
        "{err}"
    );
    assert!(err.contains("--model"), "{err}");
}

/// The camera list runs on any machine; on one without cameras (CI) it says what to check.
#[test]
fn cameras_lists_what_the_machine_has() {
    let out = inspecta(&["cameras"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("no cameras found") || text.contains("[source]") || text.contains("V4L2"),
        "{text}"
    );
    let out = inspecta(&["cameras", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in stdout(&out).lines() {
        let camera: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(camera["modes"].is_array(), "{camera}");
    }
}

/// The PIN comes on standard input and only its hash reaches the file, which only its owner
/// may read; a second add replaces the person's role.
#[test]
fn users_add_keeps_only_a_hash_of_the_pin() {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let add = |name: &str, role: &str, pin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_inspecta"))
            .args([
                "users",
                "add",
                file.to_str().unwrap(),
                "--name",
                name,
                "--role",
                role,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{pin}").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(add("anna", "operator", "4711").status.success());
    assert!(add("anna", "engineer", "4712").status.success());
    let short = add("bert", "operator", "12");
    assert!(!short.status.success());
    assert!(stderr(&short).contains("at least 4"), "{}", stderr(&short));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("4712") && text.contains("$argon2id$"),
        "{text}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let list = inspecta(&["users", "list", file.to_str().unwrap()]);
    assert!(list.status.success());
    assert_eq!(
        stdout(&list).split_whitespace().collect::<Vec<_>>(),
        ["anna", "Engineer"]
    );
}

#[test]
fn bad_mapping_argument_is_rejected_by_the_parser() {
    let out = inspecta(&["eval", "samples/casting", "--map", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("FOLDER=LABEL"), "{}", stderr(&out));
}
