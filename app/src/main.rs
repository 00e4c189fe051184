//! `inspecta`: the edge vision inspection station.

mod api;
mod commands;
mod config;
mod engine;
#[cfg(feature = "panel")]
mod panel;
mod service;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Predict(args) => commands::predict::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::ExportDataset(args) => commands::export_dataset::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
