//! The one generation loop: batched prefill and steps over a [`LogitsSource`], a watermarking
//! sampler per job, stop tokens, the `min_tokens` stop mask, and finished rows dropped from the
//! batch. The CLI, the evaluation, the radioactivity teacher and the synthetic model all run
//! through it, so a seeded output cannot depend on which of them asked.

use watermark_core::GreenList;
use watermark_core::{Sampling, WatermarkSampler};

use super::observer::{Observer, Step};
use super::source::LogitsSource;
use crate::error::Result;

/// One text to generate.
#[derive(Clone, Debug)]
pub struct Job {
    /// The context the text continues (for the instruct model, the chat-formatted prompt).
    pub prompt_ids: Vec<u32>,
    /// The watermark, or `None` for a plain text.
    pub green: Option<GreenList>,
    /// Greedy, or temperature with top-k / top-p.
    pub sampling: Sampling,
    /// Seed of the job's sampler (its ChaCha stream), whatever batch the job lands in.
    pub seed: u64,
}

/// Lengths and batching shared by the jobs of one call.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most tokens per text (a stop token not counted).
    pub max_tokens: usize,
    /// Stop tokens are masked out until a text has this many tokens (Hugging Face's
    /// `min_new_tokens`).
    pub min_tokens: usize,
    /// Jobs run through the source together.
    pub batch_size: usize,
}

/// Why a text ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The model drew a stop token.
    StopToken,
    /// The text reached `max_tokens`.
    #[default]
    MaxTokens,
    /// Prompt and text filled the model's context: the last token kept was predicted from a
    /// full context and no further one can be. A prompt longer than the context ends here with
    /// no token at all.
    ContextFull,
}

impl End {
    /// The name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            End::StopToken => "stop_token",
            End::MaxTokens => "max_tokens",
            End::ContextFull => "context_full",
        }
    }
}

/// What one job produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// The text's token ids (the stop token excluded).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub end: End,
}

impl Output {
    /// Whether the model ended the text itself, with a stop token.
    pub fn stopped(&self) -> bool {
        self.end == End::StopToken
    }
}

/// Generates every job, `limits.batch_size` at a time, in order; a token drawn from `stop_ids`
/// ends its job, and so does a full context (see [`LogitsSource::max_context`]): that job
/// ends with [`End::ContextFull`] while the others go on. `observer` sees every step, and
/// each batch's end.
///
/// A job's tokens depend only on the job, the limits and the source's rows for its context:
/// not on the batch size nor on the other jobs of its batch.
pub fn run<S: LogitsSource + ?Sized>(
    source: &S,
    stop_ids: &[u32],
    jobs: &[Job],
    limits: Limits,
    mut observer: impl Observer,
) -> Result<Vec<Output>> {
    let batch = limits.batch_size.max(1);
    let mut out = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(batch) {
        let first = out.len();
        out.extend(run_batch(
            source,
            stop_ids,
            chunk,
            first,
            limits,
            &mut observer,
        )?);
        observer.batch_done(out.len(), jobs.len());
    }
    Ok(out)
}

/// One batch: jobs `first..first + jobs.len()` of the call.
fn run_batch<S: LogitsSource + ?Sized>(
    source: &S,
    stop_ids: &[u32],
    jobs: &[Job],
    first: usize,
    limits: Limits,
    observer: &mut impl Observer,
) -> Result<Vec<Output>> {
    let mut outputs = vec![Output::default(); jobs.len()];
    if limits.max_tokens == 0 || jobs.is_empty() {
        return Ok(outputs);
    }
    // A context the source can still be fed: one longer than its window cannot.
    let fits = |len: usize| source.max_context().is_none_or(|max| len <= max);
    let mut samplers: Vec<WatermarkSampler> = jobs
        .iter()
        .map(|j| WatermarkSampler::new(j.green.clone(), j.sampling, j.seed))
        .collect();
    let mut contexts: Vec<Vec<u32>> = jobs.iter().map(|j| j.prompt_ids.clone()).collect();
    // Jobs still running, in session order (indices into this batch).
    let mut live: Vec<usize> = (0..jobs.len()).collect();
    live.retain(|&i| {
        let fit = fits(contexts[i].len());
        if !fit {
            outputs[i].end = End::ContextFull;
        }
        fit
    });
    if live.is_empty() {
        return Ok(outputs);
    }
    let prompts: Vec<Vec<u32>> = live.iter().map(|&i| contexts[i].clone()).collect();
    let (mut session, mut rows) = source.prefill(&prompts)?;
    // The row the sampler masks and biases; the observer sees the source's row untouched.
    let mut sampled: Vec<f32> = Vec::new();
    for step in 0..limits.max_tokens {
        let mut next = Vec::with_capacity(live.len());
        let mut keep = Vec::with_capacity(live.len());
        for (slot, (&i, row)) in live.iter().zip(&rows).enumerate() {
            let out = &mut outputs[i];
            let stops_masked = out.tokens.len() < limits.min_tokens;
            sampled.clear();
            sampled.extend_from_slice(row);
            if stops_masked {
                mask(&mut sampled, stop_ids);
            }
            let token = samplers[i].sample(&contexts[i], &mut sampled)?;
            let stopped = stop_ids.contains(&token);
            observer.step(&Step {
                job: first + i,
                logits: row,
                stops_masked,
                token,
                stopped,
            });
            if stopped {
                out.end = End::StopToken;
                continue;
            }
            out.tokens.push(token);
            contexts[i].push(token);
            if !fits(contexts[i].len()) {
                out.end = End::ContextFull;
                continue;
            }
            next.push(token);
            keep.push(slot);
        }
        if keep.is_empty() || step + 1 == limits.max_tokens {
            break;
        }
        if keep.len() < live.len() {
            source.retain(&mut session, &keep)?;
            live = keep.iter().map(|&slot| live[slot]).collect();
        }
        rows = source.step(&mut session, &next)?;
    }
    Ok(outputs)
}

/// Sets the stop tokens' logits to −∞ so that they cannot be drawn.
fn mask(row: &mut [f32], stop_ids: &[u32]) {
    for &s in stop_ids {
        if let Some(x) = row.get_mut(s as usize) {
            *x = f32::NEG_INFINITY;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use watermark_core::{Scheme, SecretKey};

    use super::*;
    use crate::generate::{PerContext, Tokens};

    const VOCAB: u32 = 64;
    const STOP: u32 = 3;

    /// Logits that depend on the whole context, with a stop token likely enough to end some
    /// texts early.
    fn toy_logits(context: &[u32]) -> Vec<f32> {
        let h = context.iter().fold(0x9e37_79b9_u64, |h, &t| {
            (h ^ u64::from(t)).wrapping_mul(0x100_0000_01b3)
        });
        (0..VOCAB)
            .map(|t| {
                let x = (h ^ u64::from(t).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(31);
                let base = (x >> 40) as f32 / (1u64 << 24) as f32 * 4.0;
                if t == STOP {
                    base + 0.5
                } else {
                    base
                }
            })
            .collect()
    }

    fn jobs() -> Vec<Job> {
        let green =
            GreenList::new(&SecretKey::from_bytes([7; 32]), Scheme::default(), VOCAB).unwrap();
        let random = Sampling::new(1.0, None, None).unwrap();
        let top = Sampling::new(0.7, Some(10), Some(0.9)).unwrap();
        (0..7u32)
            .map(|i| Job {
                prompt_ids: (0..=i % 3).map(|k| 10 + k + i).collect(),
                green: (i % 2 == 0).then(|| green.clone()),
                sampling: match i % 3 {
                    0 => random,
                    1 => top,
                    _ => Sampling::Greedy,
                },
                seed: 100 + u64::from(i),
            })
            .collect()
    }

    fn limits(batch_size: usize) -> Limits {
        Limits {
            max_tokens: 30,
            min_tokens: 0,
            batch_size,
        }
    }

    /// The loop written the plain way: one job at a time, no batch, no session.
    fn one_by_one(job: &Job, limits: Limits, stop_ids: &[u32]) -> Output {
        let mut sampler = WatermarkSampler::new(job.green.clone(), job.sampling, job.seed);
        let mut context = job.prompt_ids.clone();
        let mut out = Output::default();
        for _ in 0..limits.max_tokens {
            let mut row = toy_logits(&context);
            if out.tokens.len() < limits.min_tokens {
                mask(&mut row, stop_ids);
            }
            let token = sampler.sample(&context, &mut row).unwrap();
            if stop_ids.contains(&token) {
                out.end = End::StopToken;
                break;
            }
            out.tokens.push(token);
            context.push(token);
        }
        out
    }

    #[test]
    fn batched_equals_one_job_at_a_time() {
        let source = PerContext(toy_logits);
        let jobs = jobs();
        for min_tokens in [0, 12] {
            let expected: Vec<Output> = jobs
                .iter()
                .map(|j| {
                    one_by_one(
                        j,
                        Limits {
                            min_tokens,
                            ..limits(1)
                        },
                        &[STOP],
                    )
                })
                .collect();
            assert!(expected.iter().any(Output::stopped), "the test needs stops");
            assert!(
                expected.iter().any(|o| !o.stopped()),
                "and texts that run out"
            );
            for batch_size in [1, 2, 3, 7, 50] {
                let l = Limits {
                    min_tokens,
                    ..limits(batch_size)
                };
                let got = run(&source, &[STOP], &jobs, l, ()).unwrap();
                assert_eq!(got, expected, "batch {batch_size}, min_tokens {min_tokens}");
            }
        }
    }

    #[derive(Default)]
    struct Record {
        steps: Vec<(usize, Vec<f32>, bool, u32, bool)>,
        batches: Vec<(usize, usize)>,
    }

    impl Observer for Record {
        fn step(&mut self, s: &Step<'_>) {
            let row = s.logits.to_vec();
            self.steps
                .push((s.job, row, s.stops_masked, s.token, s.stopped));
        }

        fn batch_done(&mut self, done: usize, total: usize) {
            self.batches.push((done, total));
        }
    }

    #[test]
    fn the_observer_sees_every_draw_with_the_unbiased_row() {
        let source = PerContext(toy_logits);
        let jobs = jobs();
        let l = Limits {
            min_tokens: 5,
            ..limits(3)
        };
        let mut record = Record::default();
        let outputs = run(&source, &[STOP], &jobs, l, &mut record).unwrap();
        assert_eq!(record.batches, vec![(3, 7), (6, 7), (7, 7)]);
        for (j, (job, out)) in jobs.iter().zip(&outputs).enumerate() {
            let steps: Vec<_> = record.steps.iter().filter(|s| s.0 == j).collect();
            let kept: Vec<u32> = steps.iter().filter(|s| !s.4).map(|s| s.3).collect();
            assert_eq!(kept, out.tokens);
            assert_eq!(steps.last().unwrap().4, out.stopped());
            let mut context = job.prompt_ids.clone();
            for (n, (_, row, masked, token, stopped)) in steps.iter().enumerate() {
                assert_eq!(*row, toy_logits(&context), "job {j} step {n}");
                assert_eq!(*masked, n < l.min_tokens);
                assert_eq!(*stopped, *token == STOP);
                assert!(!(*masked && *stopped), "a masked stop token was drawn");
                context.push(*token);
            }
        }
    }

    #[test]
    fn the_tokens_adapter_streams_each_kept_token() {
        let source = PerContext(toy_logits);
        let jobs = jobs();
        let mut streamed = vec![Vec::new(); jobs.len()];
        let outputs = run(
            &source,
            &[STOP],
            &jobs,
            limits(4),
            Tokens(|j: usize, t| streamed[j].push(t)),
        )
        .unwrap();
        let tokens: Vec<Vec<u32>> = outputs.into_iter().map(|o| o.tokens).collect();
        assert_eq!(streamed, tokens);
    }

    #[test]
    fn without_stop_ids_every_text_runs_to_max_tokens() {
        let source = PerContext(toy_logits);
        let outputs = run(&source, &[], &jobs(), limits(2), ()).unwrap();
        assert!(outputs
            .iter()
            .all(|o| o.tokens.len() == 30 && o.end == End::MaxTokens));
    }

    #[test]
    fn zero_tokens_or_no_jobs_ask_nothing_of_the_source() {
        let source = PerContext(|_: &[u32]| -> Vec<f32> { panic!("no row is needed") });
        let none = Limits {
            max_tokens: 0,
            ..limits(2)
        };
        let outputs = run(&source, &[STOP], &jobs(), none, ()).unwrap();
        assert_eq!(outputs, vec![Output::default(); 7]);
        assert!(run(&source, &[STOP], &[], limits(2), ())
            .unwrap()
            .is_empty());
    }

    type Toy = PerContext<fn(&[u32]) -> Vec<f32>>;

    /// The toy model with a context window of `.1` tokens.
    struct Windowed(Toy, usize);

    impl LogitsSource for Windowed {
        type Session = Vec<Vec<u32>>;

        fn prefill(&self, contexts: &[Vec<u32>]) -> Result<(Self::Session, Vec<Vec<f32>>)> {
            assert!(
                contexts.iter().all(|c| c.len() <= self.1),
                "fed past the window"
            );
            self.0.prefill(contexts)
        }

        fn step(&self, session: &mut Self::Session, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
            assert!(
                session.iter().all(|c| c.len() < self.1),
                "fed past the window"
            );
            self.0.step(session, tokens)
        }

        fn retain(&self, session: &mut Self::Session, keep: &[usize]) -> Result<()> {
            self.0.retain(session, keep)
        }

        fn max_context(&self) -> Option<usize> {
            Some(self.1)
        }
    }

    #[test]
    fn a_full_context_ends_only_its_own_job() {
        // Prompts of 1 to 3 tokens (see `jobs`), a window of 12: a job that has not stopped by
        // then ends after 12 - prompt + 1 tokens; one prompt is longer than the window.
        let mut jobs = jobs();
        jobs.push(Job {
            prompt_ids: vec![5; 13],
            ..jobs[0].clone()
        });
        let window = Windowed(PerContext(toy_logits), 12);
        let unlimited = run(&PerContext(toy_logits), &[STOP], &jobs[..7], limits(1), ()).unwrap();
        for batch_size in [1, 3, 8] {
            let got = run(&window, &[STOP], &jobs, limits(batch_size), ()).unwrap();
            let last = got.last().unwrap();
            assert_eq!((last.tokens.len(), last.end), (0, End::ContextFull));
            let mut full = 0;
            for ((job, got), free) in jobs.iter().zip(&got).zip(&unlimited) {
                let room = 12 - job.prompt_ids.len() + 1;
                if free.tokens.len() < room {
                    assert_eq!(got, free, "a job that fits is untouched");
                } else {
                    full += 1;
                    assert_eq!(got.end, End::ContextFull);
                    assert_eq!(
                        got.tokens,
                        free.tokens[..room],
                        "the tokens that fit are kept"
                    );
                }
            }
            assert!(full >= 2, "the test needs jobs that fill the window");
        }
    }
}
