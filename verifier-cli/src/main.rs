//! `tracemark`: the command-line front of watermark-core.
//!
//! The CLI parses arguments, reads files and prints; every decision is watermark-core's.
//! Errors end as one `error: <message>` line on stderr and exit status 1; clap's usage errors
//! exit 2; `detect --fail-if-watermarked` exits 3 when it flags a document (see `cli.rs`).
//! The secret key is never printed: only its fingerprint.

mod cli;
mod detect;
mod generate;
mod keygen;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Keygen(args) => keygen::run(args, &mut out).map(|()| 0),
        Command::Detect(args) => detect::run(args, &mut out),
        Command::Generate(args) => generate::run(args, &mut out).map(|()| 0),
    }
    .and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => ExitCode::from(code),
        // A reader that stops early (`tracemark generate ... | head`) is not an error worth a
        // message; stop quietly, as `head`'s upstream conventionally does.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Never panic, even when stderr is gone: ignore a failed write.
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// Joins a message's lines, so that an error is always exactly one line.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if parts.is_empty() {
        "unknown error".to_string()
    } else {
        parts.join(" ")
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
