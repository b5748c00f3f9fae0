//! Reading mode against a suspect whose tokenizer is not the profile's, on the real model.
//!
//! The suspect tokenizer is the default one with a quarter of its BPE merges removed: the same
//! vocabulary, other tokens for many words, another fingerprint. The default model reading
//! through it is an innocent suspect; the same model with the watermark applied to its own
//! reading (a perfectly radioactive stand-in for a student) is a guilty one.
//!
//! - Null, over 20 keys, each auditing its own watermarked answer: the pooled green count is
//!   within the binomial's 1 - 1e-3 bound and the randomised per-key p-values pass KS at 0.001.
//!   A rule that looked at our token i to decide whether position i is scored (say, "both
//!   tokenizations have a boundary there in the whole text") biases this pooled count upwards.
//! - Power: the watermarked reader is flagged at the default false-positive rate on 8 answers.

#![allow(clippy::unwrap_used)]

mod support;

use candle_core::Tensor;
use tracemark_model::align::CrossReader;
use tracemark_model::generate::Generator;
use tracemark_model::generate::{Job, Limits};
use tracemark_model::llama::{Llama, LoadOptions};
use tracemark_model::reading::SequenceLogits;
use tracemark_model::{chat_prompt, tokenizer_json_from_gguf};
use watermark_core::hook::apply_watermark;
use watermark_core::stats::{binomial_ln_sf, ks_uniform};
use watermark_core::{Audit, AuditOptions, AuditReport};
use watermark_core::{GreenList, Sampling, Scheme, SecretKey, TextTokenizer};

const KEYS: u64 = 20;
const ANSWER_TOKENS: usize = 48;
const PROMPTS: [&str; 4] = [
    "Write a short story about a lighthouse keeper.",
    "Explain why the sky is blue.",
    "Describe your favourite season and why.",
    "Give advice to someone learning to cook.",
];

fn key(i: u64) -> SecretKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    bytes[8] = 0xc7;
    SecretKey::from_bytes(bytes)
}

/// The default tokenizer with every fourth merge from rank 100 on removed.
fn other_tokenizer(model: &std::path::Path) -> TextTokenizer {
    let json = tokenizer_json_from_gguf(model).unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let merges = value["model"]["merges"].as_array_mut().unwrap();
    let kept: Vec<serde_json::Value> = merges
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 100 || i % 4 != 1)
        .map(|(_, m)| m.clone())
        .collect();
    *merges = kept;
    TextTokenizer::from_bytes(&serde_json::to_vec(&value).unwrap()).unwrap()
}

/// The model reading with the watermark applied to each row of its own reading: what a student
/// that learned the watermark perfectly would predict.
struct WatermarkedReader<'a> {
    model: &'a Llama,
    green: &'a GreenList,
}

impl SequenceLogits for WatermarkedReader<'_> {
    fn forward_all(&self, tokens: &[u32]) -> tracemark_model::Result<Tensor> {
        let logits = self.model.forward_all(tokens)?;
        let mut rows = logits.to_vec2::<f32>()?;
        for (j, row) in rows.iter_mut().enumerate() {
            apply_watermark(self.green, &tokens[..=j], row)?;
        }
        let (t, v) = (rows.len(), rows[0].len());
        Ok(Tensor::from_vec(
            rows.concat(),
            (t, v),
            &candle_core::Device::Cpu,
        )?)
    }
}

/// One answer per job, watermarked under the job's key.
fn answers(generator: &Generator, jobs: &[(GreenList, &str)]) -> Vec<(String, Vec<u32>)> {
    let jobs_in: Vec<Job> = jobs
        .iter()
        .enumerate()
        .map(|(i, (green, prompt))| Job {
            prompt_ids: generator.encode_chat(prompt).unwrap(),
            green: Some(green.clone()),
            sampling: Sampling::Random {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
            seed: 1000 + i as u64,
        })
        .collect();
    let limits = Limits {
        max_tokens: ANSWER_TOKENS,
        min_tokens: ANSWER_TOKENS,
        batch_size: jobs_in.len(),
    };
    let out = generator.run(&jobs_in, limits, ()).unwrap();
    jobs.iter()
        .zip(out)
        .map(|((_, prompt), o)| (chat_prompt(None, prompt), o.tokens))
        .collect()
}

/// Reading-mode audit of `texts` (context as text, our answer's ids) by `model` through `reader`.
fn audit(
    green: &GreenList,
    ours: &TextTokenizer,
    reader: &CrossReader<'_, impl SequenceLogits + ?Sized>,
    texts: &[(String, Vec<u32>)],
) -> AuditReport {
    let mut audit = Audit::new(green.clone(), AuditOptions::default()).unwrap();
    for (context, text) in texts {
        let prompt = ours.encode(context).unwrap();
        let read = reader.predictions(context, text).unwrap();
        audit
            .add_reading_aligned(&prompt, text, &read.predictions)
            .unwrap();
    }
    audit.report()
}

#[test]
fn reading_through_another_tokenizer_is_exact_under_the_null_and_flags_a_student() {
    let Some(path) = support::model_path() else {
        return;
    };
    let generator = Generator::load(&path, &LoadOptions::default()).unwrap();
    let ours = generator.tokenizer();
    let theirs = other_tokenizer(&path);
    assert_ne!(theirs.fingerprint(), ours.fingerprint());
    let sample = "Unbelievably, the lighthouse keeper's grandmother disappeared.";
    assert_ne!(
        theirs.encode(sample).unwrap(),
        ours.encode(sample).unwrap(),
        "the merges removed change how words split"
    );
    let vocab = ours.vocab_size();
    let greens: Vec<GreenList> = (0..KEYS)
        .map(|i| GreenList::new(&key(i), Scheme::default(), vocab).unwrap())
        .collect();
    // One answer per key for the null, and seven more under key 0 for the power check (with
    // three, 4 x 48 tokens in all, the result sat near the -6 threshold: with tracemark's
    // kernel in place of candle's it was -5.92).
    let mut jobs: Vec<(GreenList, &str)> = greens
        .iter()
        .enumerate()
        .map(|(i, g)| (g.clone(), PROMPTS[i % PROMPTS.len()]))
        .collect();
    jobs.extend((1..8).map(|i| (greens[0].clone(), PROMPTS[i % PROMPTS.len()])));
    let started = std::time::Instant::now();
    let texts = answers(&generator, &jobs);
    eprintln!(
        "generated {} answers in {:.0?}",
        texts.len(),
        started.elapsed()
    );

    let innocent = CrossReader::new(generator.model(), &theirs, ours);
    let (mut scored, mut green, mut unaligned) = (0u64, 0u64, 0u64);
    let mut p_values = Vec::new();
    for (i, g) in greens.iter().enumerate() {
        let r = audit(g, ours, &innocent, &texts[i..=i]);
        let (n, k) = (r.header.score.scored, r.header.score.green);
        scored += n;
        green += k;
        unaligned += r.skipped.unaligned;
        // Randomised p-value P(X > k) + U P(X = k), uniform under the null.
        let above = binomial_ln_sf(n, k + 1, 0.25).exp();
        let at = binomial_ln_sf(n, k, 0.25).exp() - above;
        let u = ((i as f64) * 0.618_033_988_749_895).fract();
        p_values.push(above + u * at);
    }
    eprintln!("read by the innocent suspect in {:.0?}", started.elapsed());
    let pooled = binomial_ln_sf(scored, green, 0.25) / std::f64::consts::LN_10;
    let (d, ks_p) = ks_uniform(&p_values);
    eprintln!(
        "null over {KEYS} keys: {green}/{scored} green ({:.3}), pooled log10 p {pooled:.2}, \
         KS D {d:.3} p {ks_p:.3}, {unaligned} positions unaligned",
        green as f64 / scored as f64
    );
    assert!(scored > 600, "too few scored tokens to test: {scored}");
    assert!(pooled > -3.0, "innocent suspect biased: log10 p {pooled}");
    assert!(ks_p > 1e-3, "p-values not uniform: KS p {ks_p}");

    let model = generator.model();
    let student = WatermarkedReader {
        model,
        green: &greens[0],
    };
    let guilty = CrossReader::new(&student, &theirs, ours);
    let ours_texts: Vec<(String, Vec<u32>)> = std::iter::once(texts[0].clone())
        .chain(texts[KEYS as usize..].iter().cloned())
        .collect();
    let r = audit(&greens[0], ours, &guilty, &ours_texts);
    eprintln!(
        "watermarked reader: {}/{} green, log10 p {:.1}, {} unaligned",
        r.header.score.green,
        r.header.score.scored,
        r.header.score.log10_p_value,
        r.skipped.unaligned
    );
    assert!(r.header.watermarked, "{r:?}");
}
