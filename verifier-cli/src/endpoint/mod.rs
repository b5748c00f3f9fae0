//! `tracemark audit --suspect-url`: a live closed-model audit. The suspect's OpenAI-compatible
//! endpoint answers our prompts; every answer goes into the cache file as it arrives, and the
//! audit is then computed from the cache exactly as `audit --suspect CACHE` computes it, so
//! that the verdict can be reproduced offline from the evidence.

mod cache;
mod client;
mod pool;
mod reading;

pub use reading::read_texts;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use watermark_core::TextTokenizer;

use crate::input::{Input, IoWording, Record};
use crate::progress::LiveProgress;
use cache::{AnswerCache, CachedAnswer};
use client::{Client, Patience, Reply, RequestParams, Route};
use pool::Job;

/// The first wait before a retry; each later one doubles.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The arguments of a live audit (a block of `tracemark audit`'s).
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Live model: the suspect's OpenAI-compatible API, e.g. http://HOST:PORT/v1. Closed:
    /// its answers to --prompts are cached in --cache, then audited. Reading mode (with
    /// --texts): its greedy next token after each prefix of our texts (one request a position).
    #[arg(long, value_name = "URL", requires = "cache",
          conflicts_with_all = ["suspect", "suspect_model"])]
    pub suspect_url: Option<String>,
    /// Live audit: the prompts to ask (JSONL, a `prompt` string per line).
    #[arg(
        long,
        value_name = "FILE",
        requires = "suspect_url",
        conflicts_with = "texts"
    )]
    pub prompts: Option<PathBuf>,
    /// Live audit: the answer cache (JSONL), appended to as answers arrive; a rerun resumes
    /// from it, and `audit --suspect CACHE` recomputes the same report offline.
    #[arg(long, value_name = "FILE", requires = "suspect_url")]
    pub cache: Option<PathBuf>,
    /// Live audit: the `model` to ask for (default: the server's).
    #[arg(long, value_name = "NAME", requires = "suspect_url")]
    pub model: Option<String>,
    /// Live audit: the environment variable holding the API key (sent as a bearer token,
    /// never written anywhere).
    #[arg(long, value_name = "VAR", requires = "suspect_url")]
    pub api_key_env: Option<String>,
    /// Live audit: questions to ask, cycling through the prompts (default: one per prompt).
    #[arg(long, value_name = "N", requires = "suspect_url",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub queries: Option<u64>,
    /// Live audit: requests in flight at once.
    #[arg(long, value_name = "C", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Live audit: the most tokens an answer may have.
    #[arg(long, value_name = "M", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Live audit: sampling temperature asked of the suspect.
    #[arg(long, value_name = "T", default_value_t = 1.0, value_parser = temperature)]
    pub temperature: f64,
    /// Live audit: ask the plain `/completions` route instead of `/chat/completions`.
    #[arg(long, requires = "suspect_url")]
    pub completions: bool,
    /// Live audit: the most requests a second (0: no limit).
    #[arg(long, value_name = "R", default_value_t = 5.0, value_parser = rate)]
    pub rate: f64,
    /// Live audit: seconds one request may take, connection to last byte.
    #[arg(long, value_name = "S", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Live audit: further attempts after a 408, 429, 5xx or a failed connection, with
    /// exponential backoff (0.5 s, 1 s, 2 s, ...; the server's Retry-After when it gives one).
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,
}

fn temperature(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..=2.0).contains(&t) => Ok(t),
        _ => Err(format!("{s:?} is not a temperature in [0, 2]")),
    }
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a number of requests a second (0 or more)"
        )),
    }
}

/// When a live audit is asked for: asks the endpoint every question the cache does not answer
/// yet, appending each answer to the cache, and returns the cache's path for the audit to read.
///
/// `running` scores each answer (prompt and response ids, encoded by `tokenizer`) as it comes,
/// for the progress line, and says where the audit stands: (scored tokens, log10 p).
pub fn collect<'t>(
    args: &LiveArgs,
    tokenizer: impl FnOnce() -> Result<&'t TextTokenizer>,
    running: impl FnMut(&[u32], &[u32]) -> Result<(u64, f64)>,
) -> Result<Option<PathBuf>> {
    let (Some(url), Some(prompts_path), Some(cache_path)) =
        (&args.suspect_url, &args.prompts, &args.cache)
    else {
        return Ok(None);
    };
    let prompts = read_prompts(prompts_path)?;
    let queries = args.queries.unwrap_or(prompts.len() as u64);
    let params = RequestParams {
        route: if args.completions {
            Route::Completions
        } else {
            Route::Chat
        },
        model: args.model.clone(),
        max_tokens: args.max_tokens,
        temperature: args.temperature,
    };
    let client = client(args, url, params.clone())?;
    let (mut cache, cached) = AnswerCache::open(cache_path, &params)?;
    warn_repaired(cache_path, cached.repaired_bytes);
    let mut run = Collection {
        cache_path,
        endpoint: cache::public_url(client.url()),
        params,
        model: None,
        running,
        tokenizer: tokenizer()?,
        progress: LiveProgress::new(queries),
    };
    let mut jobs = Vec::new();
    for query in 0..queries {
        let prompt = &prompts[(query % prompts.len() as u64) as usize];
        match cached.answers.get(&query) {
            Some(answer) => run.resume(answer, prompt)?,
            None => jobs.push(Job {
                query,
                prompt: prompt.clone(),
            }),
        }
    }
    let started = Instant::now();
    let asked = pool::ask_all(
        &client,
        &jobs,
        args.concurrency as usize,
        args.rate,
        |job, reply| run.arrived(&mut cache, job, reply),
    );
    run.progress.finish(started);
    asked?;
    Ok(Some(cache_path.clone()))
}

/// The client of a live audit at `url`, asking with `params`.
fn client(args: &LiveArgs, url: &str, params: RequestParams) -> Result<Client> {
    let patience = Patience {
        timeout: Duration::from_secs(args.timeout),
        retries: args.retries,
        backoff: FIRST_BACKOFF,
    };
    Ok(Client::new(
        url,
        api_key(args.api_key_env.as_deref())?,
        params,
        patience,
    ))
}

/// Says that a torn last line was cut off the cache, when one was.
fn warn_repaired(cache_path: &Path, repaired_bytes: u64) {
    if repaired_bytes > 0 {
        eprintln!(
            "warning: {}: cut off a torn last line ({repaired_bytes} bytes) left by an \
             interrupted run; its question is asked again",
            cache_path.display()
        );
    }
}

/// The API key from environment variable `var`; the refusal names the variable only.
fn api_key(var: Option<&str>) -> Result<Option<String>> {
    let Some(var) = var else { return Ok(None) };
    match std::env::var(var) {
        Ok(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_string())),
        _ => bail!("--api-key-env {var}: the environment variable {var} is not set or is empty"),
    }
}

/// The prompts of a `--prompts` file, in order.
fn read_prompts(path: &Path) -> Result<Vec<String>> {
    let input = Input::file(path, IoWording::Plain)?;
    let mut prompts = Vec::new();
    let mut lines = input.lines()?;
    for line in lines.by_ref() {
        let line = line?;
        let prompt = Record::parse_prompt(&line.text)
            .with_context(|| format!("{}: malformed JSONL line", line.at))?;
        prompts.push(prompt.prompt);
    }
    lines.finish()?;
    Ok(prompts)
}

/// A live collection under way: the cache's answers so far, scored as they come for the
/// progress line (the report itself is computed from the cache afterwards).
struct Collection<'a, F> {
    cache_path: &'a Path,
    endpoint: String,
    params: RequestParams,
    /// The model the server says answers, once known: a cache holds one model's answers.
    model: Option<String>,
    running: F,
    tokenizer: &'a TextTokenizer,
    progress: LiveProgress,
}

impl<F: FnMut(&[u32], &[u32]) -> Result<(u64, f64)>> Collection<'_, F> {
    /// Takes a cached answer to `prompt`, which must be the question the cache answered.
    fn resume(&mut self, answer: &CachedAnswer, prompt: &str) -> Result<()> {
        if answer.prompt != prompt {
            bail!(
                "{}: query {} answers another prompt than line {} of --prompts says now; \
                 give this audit another --cache file",
                self.cache_path.display(),
                answer.query,
                answer.query + 1
            );
        }
        self.check_model(answer.model.as_deref())?;
        self.progress.cached();
        self.score(&answer.prompt, &answer.response)
    }

    /// Writes a new answer to the cache, then scores it.
    fn arrived(&mut self, cache: &mut AnswerCache, job: &Job, reply: Reply) -> Result<()> {
        self.check_model(reply.model.as_deref())?;
        let answer = CachedAnswer::arrived(job, reply, &self.endpoint, &self.params);
        cache.append(&answer)?;
        self.progress.asked();
        self.score(&answer.prompt, &answer.response)
    }

    /// Refuses answers from another model than the cache's first.
    fn check_model(&mut self, model: Option<&str>) -> Result<()> {
        match (&self.model, model) {
            (Some(known), Some(now)) if known != now => bail!(
                "{}: an answer of model {now:?} among answers of {known:?}: one cache holds \
                 one model's answers; give this audit another --cache file",
                self.cache_path.display()
            ),
            (None, Some(now)) => self.model = Some(now.to_string()),
            _ => {}
        }
        Ok(())
    }

    /// Adds an answer to the running audit and shows where it stands.
    fn score(&mut self, prompt: &str, response: &str) -> Result<()> {
        // As `audit --suspect` encodes a line: a blank prompt or an empty answer is no tokens.
        let encode = |text: &str, blank: bool| -> Result<Vec<u32>> {
            if blank {
                Ok(Vec::new())
            } else {
                Ok(self.tokenizer.encode(text)?)
            }
        };
        let prompt = encode(prompt, prompt.trim().is_empty())?;
        let response = encode(response, response.is_empty())?;
        let (scored, log10_p) = (self.running)(&prompt, &response)?;
        self.progress.show(scored, log10_p);
        Ok(())
    }
}
