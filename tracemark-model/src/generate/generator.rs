//! Answering prompts with the default model: chat formatting, then the shared loop with the
//! model's stop tokens.

use std::path::Path;

use watermark_core::GreenList;
use watermark_core::Sampling;
use watermark_core::TextTokenizer;

use super::observer::{Observer, Tokens};
use super::run::{run, Job, Limits, Output};
use crate::error::Result;
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
}

/// The default model and its tokenizer.
#[derive(Debug)]
pub struct Generator {
    model: Llama,
    tokenizer: TextTokenizer,
    stop_ids: Vec<u32>,
}

impl Generator {
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

    /// The model.
    pub fn model(&self) -> &Llama {
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

    /// Tokens that end an answer (from the GGUF metadata); the first is the model's EOS.
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
        let jobs: Vec<Job> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(Job {
                    prompt_ids: self.encode_chat(p)?,
                    green: green.cloned(),
                    sampling: options.sampling,
                    seed: options.seed.wrapping_add(i as u64),
                })
            })
            .collect::<Result<_>>()?;
        let limits = Limits {
            max_tokens: options.max_tokens,
            min_tokens: options.min_tokens,
            batch_size: options.batch_size,
        };
        let outputs = self.run(&jobs, limits, Tokens(on_token))?;
        prompts
            .iter()
            .zip(jobs)
            .zip(outputs)
            .map(|((prompt, job), output)| {
                Ok(Completion {
                    prompt: prompt.clone(),
                    completion: self.tokenizer.decode(&output.tokens)?,
                    prompt_ids: job.prompt_ids,
                    completion_ids: output.tokens,
                    stopped: output.stopped,
                })
            })
            .collect()
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
