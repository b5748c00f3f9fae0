//! `tracemark audit --suspect-url URL --texts OURS.jsonl`: reading mode over an API. Before each
//! position `i` of each of our texts the endpoint is asked to continue the context and the text
//! of our first `i` tokens by one token, greedily (`/completions`, `max_tokens` 1, temperature 0);
//! its answer counts for position `i` when it is exactly one of our tokens. The endpoint reads
//! with its own tokenizer, whatever it is, and what it is asked depends only on the text before
//! position `i`, so the test stays exact (see `tracemark_model::align`). One request a position:
//! every answer goes into the cache, so a rerun asks only what is missing and a run with every
//! answer cached asks nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tracemark_model::align::{our_token, prefixes};
use watermark_core::TextTokenizer;

use super::cache::{self, AnswerCache, CachedAnswer};
use super::client::{RequestParams, Route};
use super::pool::{self, Job};
use super::LiveArgs;
use crate::commands::reading::context_and_text;
use crate::input::{BodyFields, Input, IoWording};
use crate::progress::LiveProgress;

/// One of our texts with the endpoint's predictions over it, ready for the audit.
#[derive(Debug)]
pub struct ReadText {
    /// `file:line` of the text.
    pub source: String,
    /// Our token ids of the context.
    pub prompt: Vec<u32>,
    /// Our token ids of the text.
    pub text: Vec<u32>,
    /// Our token for the endpoint's prediction at each position, where there is one.
    pub predictions: Vec<Option<u32>>,
}

/// Asks the endpoint for its prediction at every position of the texts in `texts_path` the
/// cache does not hold yet, then returns each text with its predictions.
pub fn read_texts(
    args: &LiveArgs,
    url: &str,
    texts_path: &Path,
    cache_path: &Path,
    ours: &TextTokenizer,
) -> Result<Vec<ReadText>> {
    let params = RequestParams {
        route: Route::Completions,
        model: args.model.clone(),
        max_tokens: 1,
        temperature: 0.0,
    };
    let client = super::client(args, url, params.clone())?;
    let (texts, questions) = questions(texts_path, ours)?;

    let (mut cache, cached) = AnswerCache::open(cache_path, &params)?;
    super::warn_repaired(cache_path, cached.repaired_bytes);
    let mut progress = LiveProgress::answers_only(questions.len() as u64);
    let mut pieces: BTreeMap<u64, String> = BTreeMap::new();
    let mut jobs = Vec::new();
    for (query, question) in questions.iter().enumerate() {
        let query = query as u64;
        match cached.answers.get(&query) {
            Some(answer) if answer.prompt == *question => {
                progress.cached();
                pieces.insert(query, answer.response.clone());
            }
            Some(_) => bail!(
                "{}: question {query} was another text than --texts asks now; give this audit \
                 another --cache file",
                cache_path.display()
            ),
            None => jobs.push(Job {
                query,
                prompt: question.clone(),
            }),
        }
    }
    if cached.answers.len() > questions.len() {
        bail!(
            "{}: the cache holds {} answers, more than the {} questions --texts asks; give \
             this audit another --cache file",
            cache_path.display(),
            cached.answers.len(),
            questions.len()
        );
    }
    let endpoint = cache::public_url(client.url());
    let started = Instant::now();
    let asked = pool::ask_all(
        &client,
        &jobs,
        args.concurrency as usize,
        args.rate,
        |job, reply| {
            let answer = CachedAnswer::arrived(job, reply, &endpoint, &params);
            cache.append(&answer)?;
            progress.asked();
            progress.show(0, 0.0);
            pieces.insert(job.query, answer.response);
            Ok(())
        },
    );
    progress.finish(started);
    asked?;

    texts
        .into_iter()
        .map(|t| {
            let predictions = t
                .queries
                .iter()
                .map(|q| match q.and_then(|q| pieces.get(&q)) {
                    Some(piece) => our_token(ours, piece).map_err(anyhow::Error::from),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>>>()
                .with_context(|| t.source.clone())?;
            Ok(ReadText {
                source: t.source,
                prompt: t.prompt,
                text: t.text,
                predictions,
            })
        })
        .collect()
}

/// A text of `--texts` and, for each of its positions, the number of the question asked there.
struct Text {
    source: String,
    prompt: Vec<u32>,
    text: Vec<u32>,
    queries: Vec<Option<u64>>,
}

/// Every text of `path` and every question to ask, numbered in order.
fn questions(path: &Path, ours: &TextTokenizer) -> Result<(Vec<Text>, Vec<String>)> {
    let input = Input::file(path, IoWording::Plain)?;
    let mut lines = input.lines()?;
    let (mut texts, mut questions) = (Vec::new(), Vec::new());
    for line in lines.by_ref() {
        let answer = line?.document(BodyFields::Answer)?;
        let source = answer.source.clone();
        let (context, text) = context_and_text(answer, ours).with_context(|| source.clone())?;
        let prompt = ours.encode_fragment(&context)?;
        let mut queries = Vec::with_capacity(text.len());
        for read in prefixes(ours, &context, &text)? {
            queries.push(read.map(|read| {
                questions.push(read);
                questions.len() as u64 - 1
            }));
        }
        texts.push(Text {
            source,
            prompt,
            text,
            queries,
        });
    }
    lines.finish()?;
    Ok((texts, questions))
}
