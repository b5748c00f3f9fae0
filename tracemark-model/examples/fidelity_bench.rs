//! How faithful each kernel is to the file's exact weights: top-1 agreement and mean KL
//! divergence against the model run in f32, at every position of a few human-written texts.
//!
//! ```text
//! cargo run --release -p tracemark-model --example fidelity_bench -- [--texts N] [--tokens T] [--dump DIR]
//! ```
//!
//! The texts are the first `N` (default 4) documents of the human corpus (`TRACEMARK_CORPUS`, a
//! `.jsonl.gz` with a `text` field) with at least `T` (default 257) tokens, cut to `T` tokens:
//! `N * T` positions. `--dump DIR` also writes what another engine needs to be scored the same
//! way (`scripts/bench-model.py` runs llama.cpp on them): `tokens.json` (the token ids of each
//! text) and `reference.f32` (the f32 model's logits, row after row, little-endian).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use candle_core::quantized::GgmlDType;
use tracemark_model::llama::{Llama, LoadOptions};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The first `n` corpus texts with at least `len` tokens, cut to `len`.
fn texts(model: &std::path::Path, n: usize, len: usize) -> Res<Vec<Vec<u32>>> {
    let corpus = std::env::var_os("TRACEMARK_CORPUS")
        .map(PathBuf::from)
        .ok_or("set TRACEMARK_CORPUS to the human corpus (scripts/fetch-corpus.sh)")?;
    let tokenizer = tracemark_model::load_default_tokenizer(model)?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(&corpus)?));
    let mut out = Vec::new();
    for line in reader.lines() {
        let doc: serde_json::Value = serde_json::from_str(&line?)?;
        let Some(text) = doc["text"].as_str() else {
            continue;
        };
        let ids = tokenizer.encode(text)?;
        if ids.len() >= len {
            out.push(ids[..len].to_vec());
            if out.len() == n {
                return Ok(out);
            }
        }
    }
    Err(format!("{}: fewer than {n} texts of {len} tokens", corpus.display()).into())
}

/// Logits at every position of every text, row after row.
fn logits(model: &Llama, texts: &[Vec<u32>]) -> Res<Vec<Vec<f32>>> {
    let mut rows = Vec::new();
    for text in texts {
        rows.extend(model.forward_all(text)?.to_vec2::<f32>()?);
    }
    Ok(rows)
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    row.iter().map(|&v| v as f64 - max - z.ln()).collect()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// (top-1 agreement, mean KL(reference || other) in nats).
fn compare(reference: &[Vec<f32>], other: &[Vec<f32>]) -> (f64, f64) {
    let mut agree = 0usize;
    let mut kl = 0f64;
    for (r, o) in reference.iter().zip(other) {
        agree += usize::from(argmax(r) == argmax(o));
        let (lr, lo) = (log_softmax(r), log_softmax(o));
        kl += lr
            .iter()
            .zip(&lo)
            .map(|(a, b)| a.exp() * (a - b))
            .sum::<f64>();
    }
    let n = reference.len() as f64;
    (agree as f64 / n, kl / n)
}

fn dump(dir: &std::path::Path, texts: &[Vec<u32>], reference: &[Vec<f32>]) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("tokens.json"), serde_json::to_string(texts)?)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("reference.f32"))?);
    for row in reference {
        for v in row {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn main() -> Res<()> {
    let (mut n, mut len, mut dump_dir) = (4usize, 257usize, None);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--texts" => n = value()?.parse()?,
            "--tokens" => len = value()?.parse()?,
            "--dump" => dump_dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let path = tracemark_model::locate_default_model()?;
    let texts = texts(&path, n, len)?;
    let exact = LoadOptions {
        requantize: Some(GgmlDType::F32),
        ..LoadOptions::candle()
    };
    let reference = logits(&Llama::load(&path, &exact)?, &texts)?;
    if let Some(dir) = &dump_dir {
        dump(dir, &texts, &reference)?;
    }
    let kernels = [
        (
            "tracemark kernel (packed, the default: the file's Q4_1/Q8_0, activations per 32)",
            LoadOptions::packed(),
        ),
        (
            "candle Q8_0 re-quantized (LoadOptions::candle)",
            LoadOptions::candle(),
        ),
        (
            "candle fast_matmul (activations per 256)",
            LoadOptions {
                fast_matmul: true,
                ..LoadOptions::candle()
            },
        ),
    ];
    println!(
        "fidelity against the f32 weights, {} positions ({n} human texts of {len} tokens)",
        reference.len()
    );
    println!("| kernel | top-1 agreement | mean KL (nats) |");
    println!("|---|---|---|");
    for (name, options) in kernels {
        let other = logits(&Llama::load(&path, &options)?, &texts)?;
        let (agree, kl) = compare(&reference, &other);
        println!("| {name} | {:.1}% | {kl:.4} |", agree * 100.0);
    }
    Ok(())
}
