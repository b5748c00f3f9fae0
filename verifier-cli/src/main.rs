//! `tracemark`: the command-line front of watermark-core.
//!
//! The CLI parses arguments, reads files and prints; every decision is watermark-core's.
//! Errors end as one `error: <message>` line on stderr and exit status 1; clap's usage errors
//! exit 2; `detect --fail-if-watermarked` exits 3 when it flags a document (see `cli.rs`).
//! The secret key is never printed: only its fingerprint.

mod audit;
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
        Command::Audit(args) => audit::run(args, &mut out),
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
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&chain(&e)));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes as `outer: inner: root`, like anyhow's `{:#}`, but leaving out a
/// cause whose text the message already ends with: watermark-core's `Io` error both prints
/// its io::Error and returns it as its source, which `{:#}` would print twice.
fn chain(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_on_one_line_without_repeating_a_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        // Like watermark-core's Io error: its message already ends with its source's.
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "p.toml: {}", self.0)
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = anyhow::Error::new(Wrapped(io)).context("loading");
        assert_eq!(chain(&e), "loading: p.toml: gone");
        assert_eq!(one_line("a\n  b\r\n\nc"), "a b c");
        assert_eq!(one_line("\n"), "unknown error");
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&pipe.context("writing")));
    }
}
