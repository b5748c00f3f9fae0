//! The answer cache of a live audit: the audit's evidence, one JSON object per line, appended
//! and synced to disk as each answer arrives, so that an interrupted audit loses nothing and
//! resumes where it stopped. Its lines are read by the same JSONL reader as `audit --suspect`
//! (`prompt`, `response`), so the audit can be recomputed from it offline.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::client::{Reply, RequestParams};
use super::pool::Job;
use crate::input::{Input, IoWording};

/// One answer, as the cache holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The query's number in the audit (0-based): prompt `query mod P` of the prompts file.
    pub query: u64,
    pub prompt: String,
    pub response: String,
    /// The model the server said answered.
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    /// When the answer arrived, UTC (RFC 3339).
    pub timestamp: String,
    /// The endpoint asked, without credentials or query string.
    pub endpoint: String,
    /// How it was asked; every line of a cache must agree.
    pub request: RequestParams,
}

impl CachedAnswer {
    /// The answer `reply` to `job`, as it arrived now from `endpoint`, asked with `request`.
    pub fn arrived(job: &Job, reply: Reply, endpoint: &str, request: &RequestParams) -> Self {
        CachedAnswer {
            query: job.query,
            prompt: job.prompt.clone(),
            response: reply.text,
            model: reply.model,
            finish_reason: reply.finish_reason,
            timestamp: timestamp_now(),
            endpoint: endpoint.to_string(),
            request: request.clone(),
        }
    }
}

/// An open cache, ready to append to.
#[derive(Debug)]
pub struct AnswerCache {
    path: PathBuf,
    file: File,
}

/// What a cache held when it was opened.
#[derive(Debug, Default)]
pub struct Cached {
    /// The answers, by query number.
    pub answers: BTreeMap<u64, CachedAnswer>,
    /// Bytes of a torn last line (a run killed mid-write) that were cut off.
    pub repaired_bytes: u64,
}

impl AnswerCache {
    /// Opens (or creates) the cache at `path` for answers asked with `params`. A torn last
    /// line is cut off; an answer asked otherwise, a query given twice or a malformed line is
    /// refused, naming `file:line`.
    pub fn open(path: &Path, params: &RequestParams) -> Result<(AnswerCache, Cached)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| path.display().to_string())?;
        let repaired_bytes =
            repair_torn_tail(&mut file).with_context(|| path.display().to_string())?;
        let answers = read_answers(path, params)?;
        let cache = AnswerCache {
            path: path.to_path_buf(),
            file,
        };
        Ok((
            cache,
            Cached {
                answers,
                repaired_bytes,
            },
        ))
    }

    /// Appends one answer and syncs it to disk before returning.
    pub fn append(&mut self, answer: &CachedAnswer) -> Result<()> {
        let mut line = serde_json::to_string(answer)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| self.path.display().to_string())
    }
}

/// Cuts off the bytes after the last newline (a line torn by a kill mid-write); how many.
fn repair_torn_tail(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Look back in blocks for the last newline; a line is at most a few kilobytes.
    let mut end = len;
    let mut block = vec![0u8; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            return truncate(file, len, keep);
        }
        end = start;
    }
    truncate(file, len, 0)
}

fn truncate(file: &mut File, len: u64, keep: u64) -> std::io::Result<u64> {
    if keep < len {
        file.set_len(keep)?;
        file.sync_data()?;
    }
    Ok(len - keep)
}

/// Every answer of the cache at `path`, checked against `params`.
fn read_answers(path: &Path, params: &RequestParams) -> Result<BTreeMap<u64, CachedAnswer>> {
    // Compared as they read back from JSON, so that a float's printing cannot differ.
    let wanted: RequestParams = serde_json::from_str(&serde_json::to_string(params)?)?;
    let mut answers = BTreeMap::new();
    for line in Input::file(path, IoWording::Plain)?.lines()? {
        let line = line?;
        let answer: CachedAnswer = serde_json::from_str(&line.text)
            .with_context(|| format!("{}: not an answer of this cache's format", line.at))?;
        if answer.request != wanted {
            bail!(
                "{}: answered with other request parameters ({}) than this run's ({}); \
                 give this audit another --cache file",
                line.at,
                describe(&answer.request),
                describe(&wanted)
            );
        }
        if answers.insert(answer.query, answer).is_some() {
            bail!("{}: a second answer to the same query", line.at);
        }
    }
    Ok(answers)
}

/// `route chat, model M, max_tokens 48, temperature 1`.
pub fn describe(p: &RequestParams) -> String {
    format!(
        "route {}, model {}, max_tokens {}, temperature {}",
        match p.route {
            super::client::Route::Chat => "chat",
            super::client::Route::Completions => "completions",
        },
        p.model.as_deref().unwrap_or("(server default)"),
        p.max_tokens,
        p.temperature
    )
}

/// `url` without user information or query string, for the record.
pub fn public_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Now, UTC, as RFC 3339 to the second.
pub fn timestamp_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// The UTC date and time `secs` after the Unix epoch.
fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::super::client::Route;
    use super::*;

    fn params(temperature: f64) -> RequestParams {
        RequestParams {
            route: Route::Chat,
            model: None,
            max_tokens: 48,
            temperature,
        }
    }

    fn answer(query: u64, temperature: f64) -> CachedAnswer {
        CachedAnswer {
            query,
            prompt: format!("prompt {query}"),
            response: format!("answer {query}"),
            model: Some("m".into()),
            finish_reason: Some("length".into()),
            timestamp: timestamp_now(),
            endpoint: "http://127.0.0.1:1/v1/chat/completions".into(),
            request: params(temperature),
        }
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tracemark-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn answers_survive_reopening_and_a_torn_tail_is_cut_off() {
        let path = temp_path("torn.jsonl");
        let (mut cache, cached) = AnswerCache::open(&path, &params(0.7)).expect("new cache");
        assert!(cached.answers.is_empty());
        cache.append(&answer(0, 0.7)).expect("append");
        cache.append(&answer(2, 0.7)).expect("append");
        drop(cache);
        let torn = br#"{"query":3,"prompt":"prompt 3","resp"#;
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(torn).expect("tear");
        drop(file);
        let (_, cached) = AnswerCache::open(&path, &params(0.7)).expect("reopen");
        assert_eq!(cached.repaired_bytes, torn.len() as u64);
        assert_eq!(
            cached.answers.keys().copied().collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert_eq!(
            cached.answers[&2],
            answer(2, 0.7).with_timestamp(&cached.answers[&2])
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.ends_with("}\n") && text.lines().count() == 2);
    }

    #[test]
    fn other_parameters_and_repeated_queries_are_refused() {
        let path = temp_path("mixed.jsonl");
        let (mut cache, _) = AnswerCache::open(&path, &params(1.0)).expect("new cache");
        cache.append(&answer(0, 1.0)).expect("append");
        drop(cache);
        let refusal = AnswerCache::open(&path, &params(0.5)).expect_err("other temperature");
        let message = format!("{refusal:#}");
        assert!(message.contains("mixed.jsonl:1: answered with other request parameters"));
        assert!(message.contains("temperature 1") && message.contains("temperature 0.5"));
        let (mut cache, _) = AnswerCache::open(&path, &params(1.0)).expect("same parameters");
        cache.append(&answer(0, 1.0)).expect("append");
        let refusal = AnswerCache::open(&path, &params(1.0)).expect_err("query 0 twice");
        assert!(format!("{refusal:#}").contains("mixed.jsonl:2: a second answer"));
    }

    #[test]
    fn a_file_that_is_not_a_cache_is_refused_by_line() {
        let path = temp_path("other.jsonl");
        std::fs::write(&path, "{\"prompt\":\"p\",\"response\":\"r\"}\n").expect("write");
        let refusal = AnswerCache::open(&path, &params(1.0)).expect_err("not a cache");
        assert!(format!("{refusal:#}").contains("other.jsonl:1: not an answer"));
    }

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            public_url("https://user:pw@api.example/v1/chat/completions?key=k"),
            "https://api.example/v1/chat/completions"
        );
        assert_eq!(public_url("http://127.0.0.1:8/v1"), "http://127.0.0.1:8/v1");
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_003_588), "2026-11-30T01:53:08Z");
    }

    impl CachedAnswer {
        /// This answer with `other`'s timestamp (timestamps differ between runs).
        fn with_timestamp(mut self, other: &CachedAnswer) -> CachedAnswer {
            self.timestamp = other.timestamp.clone();
            self
        }
    }
}
