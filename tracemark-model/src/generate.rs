//! Answering prompts with the default model: chat formatting, batching, the watermarking
//! sampler and stop tokens, in one place so the CLI, the demo and the evaluation share it.

use std::path::Path;

use watermark_core::GreenList;
use watermark_core::TextTokenizer;
use watermark_core::{Sampling, WatermarkSampler};

use crate::error::Result;
use crate::llama::{Llama, LoadOptions};
use crate::tokenizer::{chat_prompt, GgufTokenizer, SpecialTokens};

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
    special: SpecialTokens,
}

impl Generator {
    /// Loads the model and rebuilds its tokenizer from the same GGUF file.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let gguf = GgufTokenizer::from_file(path)?;
        let special = gguf.special_tokens();
        let tokenizer = gguf.text_tokenizer()?;
        let model = Llama::load(path, options)?;
        Ok(Generator {
            model,
            tokenizer,
            special,
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

    /// Answers every prompt, `options.batch_size` at a time. With a green list the answers are
    /// watermarked; `on_token(i, token)` is called as answer `i` grows (for streaming).
    pub fn generate(
        &self,
        prompts: &[String],
        green: Option<&GreenList>,
        options: &GenerateOptions,
        mut on_token: impl FnMut(usize, u32),
    ) -> Result<Vec<Completion>> {
        let mut out = Vec::with_capacity(prompts.len());
        let batch = options.batch_size.max(1);
        for (b, chunk) in prompts.chunks(batch).enumerate() {
            let first = b * batch;
            let completions = self.generate_batch(chunk, first, green, options, &mut on_token)?;
            out.extend(completions);
        }
        Ok(out)
    }

    fn generate_batch(
        &self,
        prompts: &[String],
        first: usize,
        green: Option<&GreenList>,
        options: &GenerateOptions,
        on_token: &mut impl FnMut(usize, u32),
    ) -> Result<Vec<Completion>> {
        let stop = self.special.stop_ids();
        let prompt_ids: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| self.encode_chat(p))
            .collect::<Result<_>>()?;
        let mut samplers: Vec<WatermarkSampler> = (0..prompts.len())
            .map(|i| {
                WatermarkSampler::new(
                    green.cloned(),
                    options.sampling,
                    options.seed.wrapping_add((first + i) as u64),
                )
            })
            .collect();
        let mut contexts = prompt_ids.clone();
        let mut stopped = vec![false; prompts.len()];
        // Sequences still running, in session order (indices into this batch).
        let mut live: Vec<usize> = (0..prompts.len()).collect();
        if options.max_tokens > 0 {
            let (mut session, mut logits) = self.model.prefill(&prompt_ids)?;
            for step in 0..options.max_tokens {
                let rows = logits.to_vec2::<f32>()?;
                let mut next = Vec::with_capacity(live.len());
                let mut keep = Vec::with_capacity(live.len());
                for (slot, (&i, mut row)) in live.iter().zip(rows).enumerate() {
                    if contexts[i].len() - prompt_ids[i].len() < options.min_tokens {
                        for &s in &stop {
                            if let Some(x) = row.get_mut(s as usize) {
                                *x = f32::NEG_INFINITY;
                            }
                        }
                    }
                    let token = samplers[i].sample(&contexts[i], &mut row)?;
                    if stop.contains(&token) {
                        stopped[i] = true;
                        continue;
                    }
                    contexts[i].push(token);
                    on_token(first + i, token);
                    next.push(token);
                    keep.push(slot);
                }
                if keep.is_empty() || step + 1 == options.max_tokens {
                    break;
                }
                if keep.len() < live.len() {
                    session.retain(&keep)?;
                    live = keep.iter().map(|&slot| live[slot]).collect();
                }
                logits = self.model.step(&mut session, &next)?;
            }
        }
        prompts
            .iter()
            .zip(prompt_ids)
            .zip(contexts)
            .zip(stopped)
            .map(|(((prompt, prompt_ids), context), stopped)| {
                let completion_ids = context[prompt_ids.len()..].to_vec();
                Ok(Completion {
                    prompt: prompt.clone(),
                    completion: self.tokenizer.decode(&completion_ids)?,
                    prompt_ids,
                    completion_ids,
                    stopped,
                })
            })
            .collect()
    }
}
