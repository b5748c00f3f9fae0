//! Training throughput of the neural student on this machine: a few AdamW steps of SmolLM2-135M
//! (full fine-tuning and LoRA) on sequences the length of the experiment's, then the max
//! difference between this module's logits and the inference llama's on one text.
//!
//! `cargo run --release -p tracemark-lab --example neural_train_bench -- [threads] [batch] [steps]`

use std::time::Instant;

use anyhow::Result;
use tracemark_lab::neural::{load_pretrained, train, Example, PrefixCache, TrainOptions, Tuning};
use tracemark_model::llama::{set_threads, Llama, LoadOptions};

fn main() -> Result<()> {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (threads, batch, steps) = (arg(1, 2), arg(2, 4), arg(3, 3));
    set_threads(threads)?;
    let path = tracemark_model::locate_default_model()?;
    // Sequences like the experiment's: a 50-token prompt and a 96-token answer.
    let examples: Vec<Example> = (0..batch * steps)
        .map(|i| {
            let prompt: Vec<u32> = (0..50)
                .map(|j| (1000 + 37 * i + 11 * j) as u32 % 40_000)
                .collect();
            let answer: Vec<u32> = (0..96)
                .map(|j| (500 + 53 * i + 7 * j) as u32 % 40_000)
                .collect();
            Example::new(&prompt, &answer, Some(2))
        })
        .collect();
    for tuning in [
        Tuning::TopBlocks { blocks: 4 },
        Tuning::TopBlocks { blocks: 2 },
    ] {
        let t = Instant::now();
        let model = load_pretrained(&path, tuning, 1)?;
        let load = t.elapsed().as_secs_f64();
        let options = TrainOptions {
            epochs: 1,
            batch_size: batch,
            learning_rate: 1e-4,
            warmup: 1,
            weight_decay: 0.0,
            seed: 1,
        };
        let mut cache = PrefixCache::new();
        let report = train(&model, &examples, &options, &mut cache, |s| {
            eprintln!(
                "  step {}/{}: loss {:.3}, {:.1} s",
                s.step, s.steps, s.loss, s.seconds
            )
        })?;
        println!(
            "{tuning:?}: {} trainable parameters, loaded in {load:.1} s; {} steps of {batch} sequences: \
             {} sequence tokens ({} targets) in {:.1} s = {:.0} tokens/s ({:.0} target tokens/s)",
            model.trainable_parameters(),
            report.steps,
            report.sequence_tokens,
            report.target_tokens,
            report.seconds,
            report.sequence_tokens as f64 / report.seconds,
            report.target_tokens as f64 / report.seconds,
        );
    }
    let model = load_pretrained(&path, Tuning::Full, 1)?;
    let reference = Llama::load(
        &path,
        &LoadOptions {
            requantize: Some(candle_core::quantized::GgmlDType::F32),
            fast_matmul: false,
        },
    )?;
    let tokens: Vec<u32> = examples[0].tokens.clone();
    let a = model.forward_all(&tokens)?;
    let b = reference.forward_all(&tokens)?;
    let diff = (a.clone() - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let agree = a
        .argmax(1)?
        .eq(&b.argmax(1)?)?
        .to_dtype(candle_core::DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    println!("forward vs tracemark_model (file's Q4_1 kept): max |Δ logit| {diff:.4}, top-1 agreement {agree:.3}");
    Ok(())
}
