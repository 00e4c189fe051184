//! `inspecta`: the edge vision inspection station.

mod api;
mod commands;
mod config;
mod engine;
mod error_text;
#[cfg(feature = "panel")]
mod panel;
#[cfg(feature = "fleet")]
mod plant;
mod service;
mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "inspecta",
    version,
    about = "Edge vision quality inspection: camera -> model -> verdict -> operator and plant"
)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, `inspecta_vision=trace` (overrides RUST_LOG).
    #[arg(long, global = true, env = "INSPECTA_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect image files and print a verdict for each.
    Predict(commands::predict::Args),
    /// Evaluate a model on a labelled image folder and write JSON + HTML reports.
    Eval(commands::eval::Args),
    /// Run a station: frames from a camera, stream or folder, a verdict for each part.
    Run(commands::run::Args),
    /// Train a model on the box: an anomaly model from good parts, or a classifier.
    Train(commands::train::Args),
    /// Copy reviewed parts from the record store into a class-folder data set for training.
    ExportDataset(commands::export_dataset::Args),
    /// The panel's named operators and engineers with hashed PINs ([panel] users).
    Users(commands::users::Args),
    /// List the cameras this machine has, their modes, and the [source] section for each.
    Cameras(commands::cameras::Args),
    /// Teach a model what its training images look like, so frames unlike them go to the operator.
    Familiarize(commands::familiarize::Args),
    /// The plant's central half: the stations' messages from the broker into PostgreSQL.
    #[cfg(feature = "fleet")]
    Fleet(commands::fleet::Args),
}

/// The exit code after a panic: `EX_SOFTWARE`, an internal error.
const EXIT_PANIC: i32 = 70;

/// A panic on any thread ends the process. A station whose capture or inspection thread
/// died would look alive (`/health` ok, the panel up) and judge nothing; ended, it is
/// restarted by its supervisor (systemd `Restart=`) in seconds, and every committed record
/// is safe (WAL, `synchronous = FULL`).
fn end_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        tracing::error!(
            thread,
            "{info}; the process ends (exit code {EXIT_PANIC}) so its supervisor restarts it"
        );
        std::process::exit(EXIT_PANIC);
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in journald or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    end_on_panic();
    // Reads FAILPOINTS in builds with `--features failpoints`; does nothing otherwise.
    let _failpoints = fail::FailScenario::setup();
    let result = match cli.command {
        Command::Predict(args) => commands::predict::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::ExportDataset(args) => commands::export_dataset::run(&args),
        Command::Familiarize(args) => commands::familiarize::run(&args),
        Command::Cameras(args) => commands::cameras::run(&args),
        Command::Users(args) => commands::users::run(&args),
        #[cfg(feature = "fleet")]
        Command::Fleet(args) => commands::fleet::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{}", error_text::describe(&error));
            ExitCode::FAILURE
        }
    }
}
