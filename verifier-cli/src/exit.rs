//! How a run ends: its exit status, and an error as exactly one `error: ...` line on stderr.

use std::io::Write;
use std::process::ExitCode;

/// The exit status of `tracemark`, as the long help of `detect` and `audit` states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the command did its work; `detect` and `audit` scored everything, whatever the verdict.
    Ok,
    /// 1: an error (bad input, profile, key, tokenizer or model), told in one `error:` line.
    Error,
    /// 2: a command-line usage error (clap's convention).
    Usage,
    /// 3: with `--fail-if-watermarked`, something was judged watermarked.
    Watermarked,
    /// 4: a document, or the audit, had no token that could be scored: "not watermarked"
    /// would be a claim without evidence.
    NothingToScore,
    /// 5: `verify-commitment`, `verify-report`: the key is not the committed one.
    WrongKey,
    /// 6: `verify-commitment`, `verify-report`: a parameter, input or number differs from the
    /// committed or reported one (something was altered).
    Mismatch,
    /// 7: `verify-commitment`, `verify-report`: the commitment or evidence file is malformed.
    Malformed,
}

impl ExitStatus {
    /// `Watermarked` when asked to fail on a watermark and one was found; else
    /// `NothingToScore` when something had no scorable token; else `Ok`.
    pub fn verdict(fail_if_watermarked: bool, watermarked: bool, nothing_scored: bool) -> Self {
        if fail_if_watermarked && watermarked {
            ExitStatus::Watermarked
        } else if nothing_scored {
            ExitStatus::NothingToScore
        } else {
            ExitStatus::Ok
        }
    }

    /// The number the shell sees.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::Error => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Watermarked => 3,
            ExitStatus::NothingToScore => 4,
            ExitStatus::WrongKey => 5,
            ExitStatus::Mismatch => 6,
            ExitStatus::Malformed => 7,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

/// Reports a failed command on stderr, and says how to exit.
pub fn fail(e: &anyhow::Error) -> ExitStatus {
    // A reader that stops early (`tracemark generate ... | head`) is not an error worth a
    // message; stop quietly, as `head`'s upstream conventionally does.
    if is_broken_pipe(e) {
        return ExitStatus::Ok;
    }
    // Never panic, even when stderr is gone: ignore a failed write.
    let _ = writeln!(std::io::stderr(), "error: {}", one_line(&chain(e)));
    ExitStatus::Error
}

/// Reports a refused commitment or evidence file on stderr, with its own exit status.
pub fn refused(e: &watermark_core::evidence::EvidenceError) -> ExitStatus {
    use watermark_core::evidence::EvidenceError;
    let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e.to_string()));
    match e {
        EvidenceError::WrongKey { .. } => ExitStatus::WrongKey,
        EvidenceError::Tampered(_) => ExitStatus::Mismatch,
        EvidenceError::Malformed { .. } => ExitStatus::Malformed,
    }
}

/// Prints clap's message (usage error, or the help and version it was asked for) and says
/// how to exit, as clap's own `exit` would.
pub fn usage(e: &clap::Error) -> ExitStatus {
    let _ = e.print();
    if e.use_stderr() {
        ExitStatus::Usage
    } else {
        ExitStatus::Ok
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

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let codes = [
            ExitStatus::Ok,
            ExitStatus::Error,
            ExitStatus::Usage,
            ExitStatus::Watermarked,
        ]
        .map(ExitStatus::code);
        assert_eq!(codes, [0, 1, 2, 3]);
        assert_eq!(
            ExitStatus::verdict(true, true, false),
            ExitStatus::Watermarked
        );
        assert_eq!(ExitStatus::verdict(false, true, false), ExitStatus::Ok);
        assert_eq!(ExitStatus::verdict(true, false, false), ExitStatus::Ok);
        assert_eq!(
            ExitStatus::verdict(true, true, true),
            ExitStatus::Watermarked
        );
        assert_eq!(
            ExitStatus::verdict(false, false, true),
            ExitStatus::NothingToScore
        );
        assert_eq!(ExitStatus::NothingToScore.code(), 4);
    }
}
