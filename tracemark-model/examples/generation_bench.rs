//! `make bench-model`: what the watermark costs in real generation with the default model.
//!
//! Alternates runs with and without the watermark (same prompts, seeds and token counts), so
//! both see the same machine load, and also times the hook itself inside the runs: on a
//! shared 2-core machine the end-to-end difference is noise-limited, the hook's own share is not.

use std::time::{Duration, Instant};

use tracemark_model::generate::{GenerateOptions, Generator};
use tracemark_model::llama::LoadOptions;
use watermark_core::hook::apply_watermark;
use watermark_core::Sampling;
use watermark_core::{GreenList, Scheme, SecretKey};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tokens: usize = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let batch: usize = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // BENCH_KERNEL: `packed` (the default: tracemark's kernel on the file's weights), `candle`
    // (candle's per-32 kernel on weights re-quantized to Q8_0, `LoadOptions::candle`) or `fast`
    // (candle's fast Q8_0 kernel, less faithful: see `LoadOptions::fast_matmul`; also
    // BENCH_FAST_MATMUL=1).
    let fast = std::env::var("BENCH_FAST_MATMUL").is_ok_and(|v| v == "1");
    let kernel = std::env::var("BENCH_KERNEL")
        .unwrap_or_else(|_| if fast { "fast" } else { "packed" }.to_string());
    let load = match kernel.as_str() {
        "packed" => LoadOptions::packed(),
        "candle" => LoadOptions::candle(),
        "fast" => LoadOptions {
            fast_matmul: true,
            ..LoadOptions::candle()
        },
        other => {
            return Err(format!("BENCH_KERNEL={other}: expected packed, candle or fast").into())
        }
    };
    let model = tracemark_model::locate_default_model()?;
    let generator = Generator::load(&model, &load)?;
    let vocab = generator.tokenizer().vocab_size();
    let green = GreenList::new(&SecretKey::from_bytes([42; 32]), Scheme::default(), vocab)?;
    let prompts: Vec<String> = (0..batch)
        .map(|i| format!("Write a few sentences about the number {i}."))
        .collect();
    let options = GenerateOptions {
        max_tokens: tokens,
        min_tokens: tokens,
        sampling: Sampling::new(1.0, None, Some(0.95))?,
        seed: 1,
        batch_size: batch,
    };
    let mut with = Duration::ZERO;
    let mut without = Duration::ZERO;
    let mut generated = 0usize;
    for _ in 0..rounds {
        for watermark in [true, false] {
            let start = Instant::now();
            let out =
                generator.generate(&prompts, watermark.then_some(&green), &options, |_, _| {})?;
            let took = start.elapsed();
            if watermark {
                with += took;
                generated += out.iter().map(|c| c.completion_ids.len()).sum::<usize>();
            } else {
                without += took;
            }
        }
    }
    // The hook alone, on the same rows a step produces (one per sequence and token).
    let mut row = vec![0.5f32; vocab as usize];
    let context: Vec<u32> = (0..64).collect();
    let reps = 2000;
    let start = Instant::now();
    for i in 0..reps {
        apply_watermark(&green, &context[..2 + i % 60], &mut row)?;
    }
    let hook = start.elapsed() / reps as u32;
    let per_token_with = with.as_secs_f64() / generated as f64;
    let per_token_without = without.as_secs_f64() / generated as f64;
    println!(
        "default model, batch {batch}, {tokens} tokens per answer, {rounds} rounds each, temperature 1, top-p 0.95, kernel {kernel}"
    );
    println!("| run | tokens/s | ms per token |");
    println!("|---|---|---|");
    println!(
        "| with watermark | {:.1} | {:.2} |",
        1.0 / per_token_with,
        per_token_with * 1e3
    );
    println!(
        "| without | {:.1} | {:.2} |",
        1.0 / per_token_without,
        per_token_without * 1e3
    );
    println!();
    println!(
        "end to end: the watermarked runs took {:+.1}% of the plain runs' time (noise on a shared machine is a few %)",
        (with.as_secs_f64() / without.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "the hook itself: {:.1} µs per {vocab}-logit row = {:.2}% of a generated token's time (target: <= 2%)",
        hook.as_secs_f64() * 1e6,
        hook.as_secs_f64() / per_token_without * 100.0
    );
    Ok(())
}
