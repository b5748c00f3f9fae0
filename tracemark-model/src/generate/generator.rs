//! Answering prompts with the default model: chat formatting, then the shared loop with the
//! model's stop tokens.

use std::path::Path;

use watermark_core::GreenList;
use watermark_core::Sampling;
use watermark_core::TextTokenizer;

use super::observer::{Observer, Tokens};
use super::run::{run, End, Job, Limits, Output};
use super::source::LogitsSource;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::llama::{Llama, LoadOptions};
use crate::tokenizer::{chat_prompt, GgufTokenizer};

/// How answers are drawn.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most tokens per answer (the stop token not counted).
    pub max_tokens: usize,
    /// Fewest tokens per answer: stop tokens are masked out until then (Hugging Face's
    /// `min_new_tokens`), for experiments that need answers of a given length.
    pub min_tokens: usize,
    /// Greedy, or temperature with top-k / top-p.
    pub sampling: Sampling,
    /// Answer `i` of a call is drawn with seed `seed + i`, whatever the batching.
    pub seed: u64,
    /// Prompts run together through the model.
    pub batch_size: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 200,
            min_tokens: 0,
            sampling: Sampling::Random {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
            seed: 0,
            batch_size: 8,
        }
    }
}

/// One answer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Completion {
    /// The user prompt, as given.
    pub prompt: String,
    /// Token ids of the chat-formatted prompt the model saw.
    pub prompt_ids: Vec<u32>,
    /// Token ids of the answer (the stop token excluded).
    pub completion_ids: Vec<u32>,
    /// The answer's text.
    pub completion: String,
    /// Whether the model ended the answer itself (rather than running into `max_tokens`).
    pub stopped: bool,
    /// Why the answer ended.
    pub end: End,
}

/// A model and its tokenizer: the default model (a GGUF file run by the crate's own llama), or
/// a Hugging Face checkpoint (`Generator<Checkpoint>`).
#[derive(Debug)]
pub struct Generator<M = Llama> {
    model: M,
    tokenizer: TextTokenizer,
    stop_ids: Vec<u32>,
}

impl Generator<Checkpoint> {
    /// Loads a Hugging Face checkpoint directory with its `tokenizer.json`; its stop tokens are
    /// `config.json`'s `eos_token_id` (none: every answer runs to `max_tokens`).
    pub fn load_checkpoint(dir: &Path) -> Result<Self> {
        let (model, tokenizer) = Checkpoint::load(dir)?;
        let stop_ids = model.config().eos_token_ids.clone();
        Ok(Generator {
            model,
            tokenizer,
            stop_ids,
        })
    }
}

impl Generator<Llama> {
    /// Loads the model and rebuilds its tokenizer from the same GGUF file.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let gguf = GgufTokenizer::from_file(path)?;
        let stop_ids = gguf.special_tokens().stop_ids();
        let tokenizer = gguf.text_tokenizer()?;
        let model = Llama::load(path, options)?;
        Ok(Generator {
            model,
            tokenizer,
            stop_ids,
        })
    }
}

impl<M: LogitsSource> Generator<M> {
    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The tokenizer (its fingerprint is what profiles bind).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Token ids of `user` wrapped in the instruct model's chat template.
    pub fn encode_chat(&self, user: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(&chat_prompt(None, user))?)
    }

    /// Tokens that end an answer (from the GGUF metadata or `config.json`); the first is the
    /// model's EOS.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Answers every prompt, `options.batch_size` at a time. With a green list the answers are
    /// watermarked; `on_token(i, token)` is called as answer `i` grows (for streaming).
    pub fn generate(
        &self,
        prompts: &[String],
        green: Option<&GreenList>,
        options: &GenerateOptions,
        on_token: impl FnMut(usize, u32),
    ) -> Result<Vec<Completion>> {
        let mut collect = Collect {
            on_token,
            answers: Vec::with_capacity(prompts.len()),
        };
        self.generate_into(prompts, green, options, &mut collect)?;
        Ok(collect.answers)
    }

    /// [`Generator::generate`] into a sink, which gets each answer, in prompt order, as soon as
    /// its batch is done: what was answered before an error (or before the sink stops the run
    /// by returning one) is not lost.
    pub fn generate_into<S: AnswerSink + ?Sized>(
        &self,
        prompts: &[String],
        green: Option<&GreenList>,
        options: &GenerateOptions,
        sink: &mut S,
    ) -> std::result::Result<(), S::Error> {
        let limits = Limits {
            max_tokens: options.max_tokens,
            min_tokens: options.min_tokens,
            batch_size: options.batch_size,
        };
        let batch = options.batch_size.max(1);
        for (b, chunk) in prompts.chunks(batch).enumerate() {
            let first = b * batch;
            let jobs: Vec<Job> = chunk
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    Ok(Job {
                        prompt_ids: self.encode_chat(p)?,
                        green: green.cloned(),
                        sampling: options.sampling,
                        seed: options.seed.wrapping_add((first + j) as u64),
                    })
                })
                .collect::<Result<_>>()?;
            let observer = Tokens(|j: usize, token| sink.token(first + j, token));
            let outputs = self.run(&jobs, limits, observer)?;
            for ((prompt, job), output) in chunk.iter().zip(jobs).zip(outputs) {
                let completion = self.tokenizer.decode(&output.tokens).map_err(Error::from)?;
                sink.answer(Completion {
                    prompt: prompt.clone(),
                    completion,
                    prompt_ids: job.prompt_ids,
                    stopped: output.stopped(),
                    end: output.end,
                    completion_ids: output.tokens,
                })?;
            }
        }
        Ok(())
    }

    /// Runs `jobs` (token ids in, token ids out) on the model, ending each at a stop token;
    /// `observer` sees every step. See [`run`].
    pub fn run(
        &self,
        jobs: &[Job],
        limits: Limits,
        observer: impl Observer,
    ) -> Result<Vec<Output>> {
        run(&self.model, &self.stop_ids, jobs, limits, observer)
    }
}

/// Where [`Generator::generate_into`] puts what it generates.
pub trait AnswerSink {
    /// What the sink may fail with; the generator's own errors convert into it.
    type Error: From<Error>;

    /// Answer `answer` (its index in the call) grew by `token` (stop tokens are not reported).
    fn token(&mut self, answer: usize, token: u32) {
        let _ = (answer, token);
    }

    /// The next answer, in prompt order; an error ends the run.
    fn answer(&mut self, completion: Completion) -> std::result::Result<(), Self::Error>;
}

/// The sink behind [`Generator::generate`]: every answer kept, tokens passed to a closure.
struct Collect<F> {
    on_token: F,
    answers: Vec<Completion>,
}

impl<F: FnMut(usize, u32)> AnswerSink for Collect<F> {
    type Error = Error;

    fn token(&mut self, answer: usize, token: u32) {
        (self.on_token)(answer, token);
    }

    fn answer(&mut self, completion: Completion) -> Result<()> {
        self.answers.push(completion);
        Ok(())
    }
}
