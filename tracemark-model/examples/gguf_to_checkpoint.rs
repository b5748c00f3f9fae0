//! Writes a llama GGUF model (by default the cached SmolLM2-135M-Instruct) as a Hugging Face
//! checkpoint directory: f32 safetensors in two shards with an index, `config.json`, and the
//! GGUF's tokenizer as `tokenizer.json` (so its fingerprint is the profile's). The tests use the
//! same export (`tests/support/hf_export.rs`); this makes a checkpoint to audit by hand.
//!
//! ```text
//! cargo run --release -p tracemark-model --example gguf_to_checkpoint -- OUT_DIR [MODEL.gguf]
//! ```
//!
//! About 540 MB of f32 weights for the default model.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use candle_core::quantized::GgmlDType;
use tracemark_model::cache;
use tracemark_model::llama::{Llama, LoadOptions};

#[path = "../../tests/support/hf_export.rs"]
mod hf_export;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: gguf_to_checkpoint OUT_DIR [MODEL.gguf]")?,
    );
    let model = match args.next() {
        Some(path) => PathBuf::from(path),
        None => cache::locate_default_model()?,
    };
    if out.exists() {
        return Err(format!("{} exists: give a new directory", out.display()).into());
    }
    // The hyper-parameters as the crate reads them (the weights are read again, per tensor).
    let options = LoadOptions {
        requantize: Some(GgmlDType::F32),
        ..LoadOptions::default()
    };
    let config = Llama::load(&model, &options)?.config().clone();
    std::fs::create_dir_all(&out)?;
    hf_export::export(&model, &config, &out);
    println!("{}: checkpoint of {}", out.display(), model.display());
    Ok(())
}
