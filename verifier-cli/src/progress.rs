//! Progress on stderr: one self-updating line, drawn only when stderr is a terminal, so that
//! pipelines and logs never see it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The line is redrawn at most this often.
const REDRAW_EVERY: Duration = Duration::from_millis(200);
/// Characters between the brackets of a bar.
const BAR_WIDTH: u64 = 30;

/// The self-updating line itself.
#[derive(Debug)]
struct StatusLine {
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
}

impl StatusLine {
    fn new(wanted: bool) -> Self {
        StatusLine {
            enabled: wanted && std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_draw: None,
        }
    }

    /// `amount` per second since the start.
    fn rate(&self, amount: f64) -> f64 {
        amount / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// Redraws the line as `text()` says, unless it was drawn a moment ago.
    fn draw(&mut self, text: impl FnOnce(&Self) -> String) {
        if !self.enabled || self.last_draw.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
            return;
        }
        self.last_draw = Some(Instant::now());
        // Progress is a courtesy: a failed write to stderr is ignored.
        let _ = write!(std::io::stderr(), "\r{} ", text(self));
    }

    /// Blanks the line, leaving the cursor at its start.
    fn clear(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r{}\r", " ".repeat(72));
        }
    }

    /// Replaces the line with a last one that stays.
    fn conclude(&self, text: &str) {
        if self.enabled {
            let _ = writeln!(std::io::stderr(), "\r{text}{}", " ".repeat(20));
        }
    }
}

/// `[#####.........]`: `done` out of `total`.
fn bar(done: u64, total: u64) -> String {
    let filled = (BAR_WIDTH * done.min(total) / total.max(1)) as usize;
    let width = BAR_WIDTH as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// How much of an input is read (`audit`): a bar when its size is known. Cleared when dropped.
#[derive(Debug)]
pub struct ReadProgress {
    line: StatusLine,
    what: String,
    total: Option<u64>,
    done: u64,
}

impl ReadProgress {
    /// Progress of reading `total` bytes (if known), called `what`.
    pub fn new(what: &str, total: Option<u64>) -> Self {
        ReadProgress {
            line: StatusLine::new(true),
            what: what.to_string(),
            total,
            done: 0,
        }
    }

    /// `bytes` more were read.
    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        let (what, total, done) = (&self.what, self.total, self.done);
        self.line.draw(|line| {
            let mb = done as f64 / 1e6;
            let rate = line.rate(mb);
            match total {
                Some(total) if total > 0 => format!(
                    "{} {what} {mb:.1}/{:.1} MB · {rate:.1} MB/s",
                    bar(done, total),
                    total as f64 / 1e6
                ),
                _ => format!("{what} {mb:.1} MB · {rate:.1} MB/s"),
            }
        });
    }
}

impl Drop for ReadProgress {
    fn drop(&mut self) {
        self.line.clear();
    }
}

/// Answers being generated (`generate --prompts`): prompts done, tokens and tokens per second.
#[derive(Debug)]
pub struct GenerateProgress {
    line: StatusLine,
    total: usize,
    tokens: u64,
    /// Prompts known to be under way or done: the bar's position.
    pub done_hint: usize,
}

impl GenerateProgress {
    /// Progress of `total` answers, shown only when `wanted`.
    pub fn new(total: usize, wanted: bool) -> Self {
        GenerateProgress {
            line: StatusLine::new(wanted),
            total,
            tokens: 0,
            done_hint: 0,
        }
    }

    /// One more token was generated.
    pub fn token(&mut self) {
        self.tokens += 1;
        let (total, tokens, done) = (self.total, self.tokens, self.done_hint);
        self.line.draw(|line| {
            format!(
                "{} prompt {done}/{total} · {tokens} tokens · {:.1} tokens/s",
                bar(done as u64, total as u64),
                line.rate(tokens as f64)
            )
        });
    }

    /// The last line, which stays: answers, tokens and speed since `started`.
    pub fn finish(&self, started: Instant) {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        self.line.conclude(&format!(
            "done: {} answers, {} tokens in {secs:.1} s ({:.1} tokens/s)",
            self.total,
            self.tokens,
            self.tokens as f64 / secs
        ));
    }
}

/// A live audit (`audit --suspect-url`): answers in hand, tokens scored and the running
/// log10 p of the (unsupervised) pooled test. In reading mode (`scoring` off) the score is
/// computed once every prediction is in, so only the answers are shown.
#[derive(Debug)]
pub struct LiveProgress {
    line: StatusLine,
    total: u64,
    cached: u64,
    asked: u64,
    scored: u64,
    log10_p: f64,
    scoring: bool,
}

impl LiveProgress {
    /// Progress of `total` answers.
    pub fn new(total: u64) -> Self {
        LiveProgress {
            line: StatusLine::new(true),
            total,
            cached: 0,
            asked: 0,
            scored: 0,
            log10_p: 0.0,
            scoring: true,
        }
    }

    /// Progress of `total` answers that are scored only when all are in.
    pub fn answers_only(total: u64) -> Self {
        LiveProgress {
            scoring: false,
            ..Self::new(total)
        }
    }

    /// One more answer came from the cache.
    pub fn cached(&mut self) {
        self.cached += 1;
    }

    /// One more answer came from the endpoint.
    pub fn asked(&mut self) {
        self.asked += 1;
    }

    /// The running audit now stands at `scored` tokens and `log10_p`.
    pub fn show(&mut self, scored: u64, log10_p: f64) {
        (self.scored, self.log10_p) = (scored, log10_p);
        let (total, done, asked) = (self.total, self.cached + self.asked, self.asked);
        let score = self.score_text();
        self.line.draw(|line| {
            format!(
                "{} answers {done}/{total}{score} · {:.2} answers/s",
                bar(done, total),
                line.rate(asked as f64)
            )
        });
    }

    /// The last line, which stays.
    pub fn finish(&self, started: Instant) {
        self.line.conclude(&format!(
            "answers: {} from the cache, {} asked in {:.1} s{}",
            self.cached,
            self.asked,
            started.elapsed().as_secs_f64(),
            self.score_text()
        ));
    }

    /// " · scored N tokens · log10 p X" while scoring, else nothing.
    fn score_text(&self) -> String {
        if !self.scoring {
            return String::new();
        }
        format!(
            " · scored {} tokens · log10 p {:.1}",
            self.scored, self.log10_p
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_in_proportion_and_never_overflow() {
        assert_eq!(bar(0, 10), format!("[{}]", ".".repeat(30)));
        assert_eq!(
            bar(5, 10),
            format!("[{}{}]", "#".repeat(15), ".".repeat(15))
        );
        assert_eq!(bar(12, 10), format!("[{}]", "#".repeat(30)));
        assert_eq!(bar(0, 0), format!("[{}]", ".".repeat(30)));
    }

    #[test]
    fn progress_is_silent_unless_wanted() {
        let mut p = GenerateProgress::new(3, false);
        p.token();
        p.done_hint = 1;
        p.token();
        assert_eq!(p.tokens, 2);
        assert!(!p.line.enabled);
        p.finish(Instant::now());
    }
}
