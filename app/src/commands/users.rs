//! `inspecta users`: the panel's named operators and engineers, each with a PIN kept only
//! as an Argon2 hash (`[panel] users` names the file).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::users::{Role, Users};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Add a person, or give them a new role or PIN. The PIN is read from standard input
    /// (one line), so it is never in the shell history: `read -rs pin; echo "$pin" | ...`.
    Add {
        /// The users file (created when missing, readable by its owner only).
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List the people in a users file, with their roles.
    List { file: PathBuf },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Operator,
    Engineer,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.action {
        Action::Add { file, name, role } => {
            let mut users = if file.exists() {
                Users::load(file)?
            } else {
                Users::default()
            };
            let mut pin = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut pin)
                .context("cannot read the PIN from standard input")?;
            let role = match role {
                RoleArg::Operator => Role::Operator,
                RoleArg::Engineer => Role::Engineer,
            };
            users.set(name, role, pin.trim_end_matches(['\r', '\n']))?;
            users.save(file)?;
            println!("{name} ({role:?}) is in {}", file.display());
        }
        Action::List { file } => {
            for user in Users::load(file)?.users {
                println!("{:<24} {:?}", user.name, user.role);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
