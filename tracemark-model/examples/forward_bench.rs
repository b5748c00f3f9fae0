//! Throughput of the default model on this machine: greedy generation at batch 1 and 8, and the
//! audit's one-pass reading of a 256-token text.
//!
//! ```text
//! cargo run --release -p tracemark-model --example forward_bench -- \
//!     [--threads N] [--fast] [--candle]
//! ```
//!
//! `--threads N` calls `llama::set_threads(N)` first (default: candle's, one per physical core);
//! `--candle` runs candle's per-32 kernel on weights re-quantized to Q8_0
//! (`LoadOptions::candle`) instead of tracemark's own kernel on the file's Q4_1 (the default);
//! `--fast` runs candle's fast Q8_0 kernel (`LoadOptions::fast_matmul`). The model is found as
//! the tests find it (`TRACEMARK_MODEL`, else the cache).

use std::time::Instant;

use candle_core::Tensor;
use tracemark_model::cache;
use tracemark_model::llama::{set_threads, Llama, LoadOptions};

/// Token ids of a few English phrases (from the GGUF vocabulary), to build prompts without the
/// tokenizer: "Once upon a time, there was a little girl named", "The quick brown fox jumps over
/// the lazy dog.", "The capital of France is".
const WORDS: &[u32] = &[
    6403, 1980, 253, 655, 28, 665, 436, 253, 1838, 8180, 3365, 504, 2365, 6354, 16438, 27003, 690,
    260, 23790, 2767, 30, 504, 3575, 282, 4649, 314,
];
const NEW_TOKENS: usize = 64;
const AUDIT_TOKENS: usize = 256;

/// Prompt `i` of a batch: a slice of `WORDS`, so that the lengths differ.
fn prompt(i: usize) -> &'static [u32] {
    &WORDS[i % 5..WORDS.len() - (i * 3) % 7]
}

fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    Ok(logits.argmax(1)?.to_vec1::<u32>()?)
}

/// Prefill then `NEW_TOKENS` greedy steps for `batch` prompts of different lengths; returns
/// (prefill seconds, decode seconds).
fn generate(model: &Llama, batch: usize) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let prompts: Vec<Vec<u32>> = (0..batch).map(|i| prompt(i).to_vec()).collect();
    let start = Instant::now();
    let (mut session, logits) = model.prefill(&prompts)?;
    let mut next = argmax_rows(&logits)?;
    let prefill = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..NEW_TOKENS {
        next = argmax_rows(&model.step(&mut session, &next)?)?;
    }
    Ok((prefill, start.elapsed().as_secs_f64()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = None;
    let mut options = LoadOptions::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--threads" => threads = Some(it.next().ok_or("--threads needs a value")?.parse()?),
            "--candle" => options = LoadOptions::candle(),
            "--fast" => {
                options = LoadOptions {
                    fast_matmul: true,
                    ..LoadOptions::candle()
                }
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if let Some(n) = threads {
        set_threads(n)?;
    }
    let threads = candle_core::utils::get_num_threads();

    let path = cache::locate_default_model()?;
    let start = Instant::now();
    let model = Llama::load(&path, &options)?;
    let weights = match (options.requantize, options.fast_matmul) {
        (None, false) => "the file's (tracemark's kernel)".to_string(),
        (None, true) => "Q8_0, fast_matmul".to_string(),
        (Some(d), false) => format!("{d:?}"),
        (Some(d), true) => format!("{d:?}, fast_matmul"),
    };
    println!(
        "{}: loaded in {:.2} s, weights {weights}, {threads} thread(s)",
        path.display(),
        start.elapsed().as_secs_f64()
    );

    // Warm-up: page in the weights, start the thread pools.
    model.forward_all(&WORDS[..8])?;

    println!();
    println!("| threads | run                          | tokens | seconds | tokens/s |");
    println!("|--------:|:-----------------------------|-------:|--------:|---------:|");
    let row = |run: String, tokens: usize, secs: f64| {
        let rate = tokens as f64 / secs;
        println!("| {threads:>7} | {run:<28} | {tokens:>6} | {secs:>7.2} | {rate:>8.1} |");
    };
    for batch in [1, 8] {
        let (prefill, decode) = generate(&model, batch)?;
        row(
            format!("generate, batch {batch}, decode"),
            batch * NEW_TOKENS,
            decode,
        );
        let prompt_tokens = (0..batch).map(|i| prompt(i).len()).sum();
        row(
            format!("generate, batch {batch}, prefill"),
            prompt_tokens,
            prefill,
        );
    }
    let text: Vec<u32> = WORDS.iter().copied().cycle().take(AUDIT_TOKENS).collect();
    let start = Instant::now();
    let logits = model.forward_all(&text)?;
    let secs = start.elapsed().as_secs_f64();
    if logits.dims() != [AUDIT_TOKENS, model.config().vocab_size] {
        return Err(format!("forward_all returned {:?}", logits.dims()).into());
    }
    row(
        format!("forward_all, {AUDIT_TOKENS}-token text"),
        AUDIT_TOKENS,
        secs,
    );
    Ok(())
}
