//! Fine-tuning: cross-entropy on the answer tokens only (the prompt is context, not a target),
//! AdamW, right-padded mini-batches in a seeded order.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

use super::{NeuralError, NeuralLlama, Result};
use crate::radioactivity::permutation;

/// One training sequence: `tokens[answer_start..]` are the targets (the answer and its stop
/// token), read after everything before them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Prompt, answer, stop token.
    pub tokens: Vec<u32>,
    /// Index of the first answer token (at least 1: the first token has nothing to predict it).
    pub answer_start: usize,
}

impl Example {
    /// `prompt ++ answer ++ [stop]`, the answer (and stop) as targets.
    pub fn new(prompt: &[u32], answer: &[u32], stop: Option<u32>) -> Self {
        let mut tokens = prompt.to_vec();
        tokens.extend_from_slice(answer);
        tokens.extend(stop);
        Example {
            answer_start: prompt.len().max(1),
            tokens,
        }
    }

    /// Tokens that are targets.
    pub fn targets(&self) -> usize {
        self.tokens.len().saturating_sub(self.answer_start)
    }
}

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Passes over the examples.
    pub epochs: usize,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// AdamW learning rate (constant after a linear warm-up of `warmup` steps).
    pub learning_rate: f64,
    /// Steps of linear warm-up.
    pub warmup: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of the example order.
    pub seed: u64,
}

/// One optimizer step, for a progress line.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// Steps done (1-based).
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// Mean cross-entropy (nats per target token) of this step's batch, before the update.
    pub loss: f64,
    /// Target tokens trained on so far.
    pub target_tokens: usize,
    /// Seconds so far.
    pub seconds: f64,
}

/// What a training run did.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Optimizer steps.
    pub steps: usize,
    /// Target (answer) tokens trained on, all epochs.
    pub target_tokens: usize,
    /// Tokens run through the model (prompts, answers and padding), all epochs.
    pub sequence_tokens: usize,
    /// Mean loss of the first epoch's first tenth of steps, and of the last epoch's last tenth.
    pub first_loss: f64,
    /// See `first_loss`.
    pub last_loss: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The frozen bottom of the model's output ([`NeuralLlama::prefix_states`]) for each text seen,
/// so that later epochs, and other students with the same frozen bottom (loaded from the same
/// file with the same [`super::Tuning`]), skip it. Keyed by the input tokens.
#[derive(Debug, Default)]
pub struct PrefixCache {
    states: HashMap<Vec<u32>, Tensor>,
    /// Seconds spent computing entries.
    pub seconds: f64,
}

impl PrefixCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// `(1, T, hidden)` prefix states of `input`, computed on a miss.
    fn get(&mut self, model: &NeuralLlama, input: &[u32]) -> Result<Tensor> {
        if let Some(t) = self.states.get(input) {
            return Ok(t.clone());
        }
        let started = Instant::now();
        let ids = Tensor::new(input, &Device::Cpu)?.unsqueeze(0)?;
        let state = model.prefix_states(&ids)?.detach();
        self.seconds += started.elapsed().as_secs_f64();
        self.states.insert(input.to_vec(), state.clone());
        Ok(state)
    }
}

/// Trains `model` on `examples`; `progress` sees every step. When the model has a fixed prefix
/// (anything but full fine-tuning), its states come from (and go to) `cache`.
pub fn train(
    model: &NeuralLlama,
    examples: &[Example],
    options: &TrainOptions,
    cache: &mut PrefixCache,
    mut progress: impl FnMut(StepReport),
) -> Result<TrainReport> {
    if examples.is_empty() || options.batch_size == 0 || options.epochs == 0 {
        return Err(NeuralError::Input(
            "training needs examples, a batch size and an epoch".into(),
        ));
    }
    if let Some(e) = examples
        .iter()
        .find(|e| e.answer_start == 0 || e.targets() == 0)
    {
        return Err(NeuralError::Input(format!(
            "an example of {} tokens has no target after a context",
            e.tokens.len()
        )));
    }
    let params = ParamsAdamW {
        lr: options.learning_rate,
        weight_decay: options.weight_decay,
        ..ParamsAdamW::default()
    };
    let mut opt = AdamW::new(model.vars().to_vec(), params)?;
    let per_epoch = examples.len().div_ceil(options.batch_size);
    let steps = per_epoch * options.epochs;
    let started = Instant::now();
    let (mut target_tokens, mut sequence_tokens, mut losses) = (0, 0, Vec::with_capacity(steps));
    for epoch in 0..options.epochs {
        let order = permutation(examples.len(), options.seed.wrapping_add(epoch as u64));
        for chunk in order.chunks(options.batch_size) {
            let batch: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
            let step = losses.len() + 1;
            let warm = (step as f64 / options.warmup.max(1) as f64).min(1.0);
            opt.set_learning_rate(options.learning_rate * warm);
            let (loss, padded) = batch_loss(model, &batch, cache)?;
            let value = f64::from(loss.to_scalar::<f32>()?);
            if !value.is_finite() {
                return Err(NeuralError::Input(format!(
                    "the loss diverged at step {step} ({value}): lower the learning rate"
                )));
            }
            opt.backward_step(&loss)?;
            losses.push(value);
            target_tokens += batch.iter().map(|e| e.targets()).sum::<usize>();
            sequence_tokens += padded;
            progress(StepReport {
                step,
                steps,
                loss: value,
                target_tokens,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
    let tenth = (losses.len() / 10).max(1);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    Ok(TrainReport {
        steps,
        target_tokens,
        sequence_tokens,
        first_loss: mean(&losses[..tenth.min(per_epoch)]),
        last_loss: mean(&losses[losses.len() - tenth..]),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Mean cross-entropy over the answer tokens of a right-padded batch, and the number of tokens
/// (padding included) run through the model.
pub(super) fn batch_loss(
    model: &NeuralLlama,
    batch: &[&Example],
    cache: &mut PrefixCache,
) -> Result<(Tensor, usize)> {
    // Row i of the input predicts token i + 1: the last token is only a target.
    let t = batch.iter().map(|e| e.tokens.len() - 1).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(batch.len() * t);
    let (mut rows, mut targets) = (Vec::new(), Vec::new());
    for (b, e) in batch.iter().enumerate() {
        let input = &e.tokens[..e.tokens.len() - 1];
        ids.extend_from_slice(input);
        ids.extend(std::iter::repeat_n(0u32, t - input.len()));
        for pos in e.answer_start - 1..input.len() {
            rows.push((b * t + pos) as u32);
            targets.push(e.tokens[pos + 1]);
        }
    }
    let dev = Device::Cpu;
    let hidden = match model.has_fixed_prefix() {
        true => {
            let mut states = Vec::with_capacity(batch.len());
            for e in batch {
                let s = cache.get(model, &e.tokens[..e.tokens.len() - 1])?;
                let pad = t - s.dim(1)?;
                states.push(s.pad_with_zeros(1, 0, pad)?);
            }
            model.suffix_hidden(&Tensor::cat(&states, 0)?)?
        }
        false => model.hidden_states(&Tensor::from_vec(ids, (batch.len(), t), &dev)?)?,
    };
    let hidden = hidden.reshape((batch.len() * t, model.config().hidden))?;
    let picked = hidden.index_select(&Tensor::new(rows.as_slice(), &dev)?, 0)?;
    let logits = model.logits(&picked)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &Tensor::new(targets.as_slice(), &dev)?)?;
    Ok((loss, batch.len() * t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neural::NeuralConfig;

    fn tiny() -> NeuralConfig {
        NeuralConfig {
            vocab_size: 20,
            hidden: 32,
            layers: 1,
            heads: 2,
            kv_heads: 1,
            ffn: 32,
            rope_theta: 10_000.0,
            rms_eps: 1e-5,
            context_length: 32,
        }
    }

    #[test]
    fn examples_target_the_answer_and_its_stop_token() {
        let e = Example::new(&[1, 2, 3], &[4, 5], Some(9));
        assert_eq!(e.tokens, vec![1, 2, 3, 4, 5, 9]);
        assert_eq!((e.answer_start, e.targets()), (3, 3));
        assert_eq!(Example::new(&[], &[4, 5], None).answer_start, 1);
    }

    #[test]
    fn training_memorises_a_sequence_and_refuses_bad_input() {
        let m = NeuralLlama::random(tiny(), 5).unwrap();
        let examples = vec![
            Example::new(&[1, 2], &[3, 4, 5, 6, 7, 8], Some(0)),
            Example::new(&[2, 1], &[8, 7, 6, 5], Some(0)),
        ];
        let options = TrainOptions {
            epochs: 40,
            batch_size: 2,
            learning_rate: 1e-2,
            warmup: 2,
            weight_decay: 0.0,
            seed: 1,
        };
        let r = train(&m, &examples, &options, &mut PrefixCache::new(), |_| {}).unwrap();
        assert_eq!(r.steps, 40);
        assert_eq!(r.target_tokens, 40 * (7 + 5));
        assert!(r.first_loss > 2.5 && r.last_loss < 0.5, "{r:?}");
        let predicted = m
            .forward_all(&examples[0].tokens)
            .unwrap()
            .argmax(1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        // Row i predicts token i + 1; the last row predicts past the end.
        let n = examples[0].tokens.len();
        assert_eq!(&predicted[1..n - 1], &examples[0].tokens[2..]);
        let none = train(&m, &[], &options, &mut PrefixCache::new(), |_| {});
        assert!(matches!(none, Err(NeuralError::Input(_))));
        let empty = Example {
            tokens: vec![1, 2],
            answer_start: 2,
        };
        let bad = train(&m, &[empty], &options, &mut PrefixCache::new(), |_| {});
        assert!(matches!(bad, Err(NeuralError::Input(_))));
    }
}
