//! `tracemark generate`: documents from the synthetic model, as JSONL that `detect` reads back.

use std::io::Write;

use anyhow::{bail, Result};
use serde::Serialize;
use watermark_core::profile::Profile;
use watermark_core::sampler::{Sampling, WatermarkSampler};
use watermark_core::synthetic::SyntheticLm;

use crate::cli::GenerateArgs;

/// Every document starts from this one-token prompt.
const PROMPT: [u32; 1] = [0];

/// One output line.
#[derive(Debug, Serialize)]
struct Generated<'a> {
    id: u64,
    watermarked: bool,
    prompt_tokens: &'a [u32],
    tokens: &'a [u32],
}

pub fn run(args: &GenerateArgs, out: &mut impl Write) -> Result<()> {
    if !args.synthetic {
        bail!("the default language model is not available yet; pass --synthetic to generate from the synthetic model");
    }
    if !args.sharpness.is_finite() {
        bail!("sharpness {} must be finite", args.sharpness);
    }
    let profile = Profile::load(&args.profile)?;
    let green = if args.no_watermark {
        None
    } else {
        Some(profile.green_list()?)
    };
    let sampling = Sampling::new(args.temperature, args.top_k, args.top_p)?;
    let lm = SyntheticLm::new(profile.vocab_size, args.sharpness, args.seed);
    let max_tokens = args.max_tokens as usize;
    for id in 0..args.count {
        let mut sampler =
            WatermarkSampler::new(green.clone(), sampling, args.seed.wrapping_add(id));
        let mut context = Vec::with_capacity(PROMPT.len() + max_tokens);
        context.extend_from_slice(&PROMPT);
        for _ in 0..max_tokens {
            let mut logits = lm.logits(&context);
            let token = sampler.sample(&context, &mut logits)?;
            context.push(token);
        }
        let doc = Generated {
            id,
            watermarked: green.is_some(),
            prompt_tokens: &context[..PROMPT.len()],
            tokens: &context[PROMPT.len()..],
        };
        // Serialised first, so that a closed pipe surfaces as an io::Error, not a serde one.
        let line = serde_json::to_string(&doc)?;
        writeln!(out, "{line}")?;
    }
    Ok(())
}
