//! `tracemark`: the command-line front of watermark-core.
//!
//! The CLI parses arguments, reads files and prints; every decision is watermark-core's.
//! Errors end as one `error: <message>` line on stderr and exit status 1; clap's usage errors
//! exit 2; `--fail-if-watermarked` exits 3 when it flags something (see `exit.rs`).
//! The secret key is never printed: only its fingerprint.

mod cli;
mod commands;
mod endpoint;
mod exit;
mod input;
mod numbers;
mod progress;
mod report;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::{audit, detect, generate, keygen, vllm_keygen};
use crate::commands::{commit, verify_commitment, verify_report};
use crate::exit::ExitStatus;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return exit::usage(&e).into(),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Keygen(args) => keygen::run(args, &mut out).map(|()| ExitStatus::Ok),
        Command::Detect(args) => detect::run(args, &mut out),
        Command::Audit(args) => audit::run(args, &mut out),
        Command::Generate(args) => generate::run(args, &mut out).map(|()| ExitStatus::Ok),
        Command::Commit(args) => commit::run(args, &mut out).map(|()| ExitStatus::Ok),
        Command::VerifyCommitment(args) => verify_commitment::run(args, &mut out),
        Command::VerifyReport(args) => verify_report::run(args, &mut out),
        Command::VllmKeygen(args) => vllm_keygen::run(args, &mut out).map(|()| ExitStatus::Ok),
    }
    .and_then(|status| {
        out.flush()?;
        Ok(status)
    });
    match result {
        Ok(status) => status.into(),
        Err(e) => exit::fail(&e).into(),
    }
}
