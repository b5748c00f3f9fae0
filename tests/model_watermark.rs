//! The watermark on the real default model and on real human text, end to end.
//!
//! - Null calibration: human text (Austen, the King James Bible, fortunes, the Devil's
//!   Dictionary) tokenized with the default tokenizer and cut into 200-token documents is, for
//!   10 keys, scored with uniform p-values and false-positive rates inside their confidence
//!   intervals.
//! - Power: SmolLM2's watermarked answers (200 tokens, γ = 0.25, δ = 2, temperature 1) are all
//!   flagged at the default false-positive rate; its plain answers are not.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use tracemark_model::generate::{GenerateOptions, Generator};
use tracemark_model::llama::LoadOptions;
use tracemark_model::tokenizer::load_default_tokenizer;
use watermark_core::stats::{binomial_ln_sf, clopper_pearson, ks_uniform};
use watermark_core::Sampling;
use watermark_core::TupleSet;
use watermark_core::{detect, detect_in_corpus, DetectOptions};
use watermark_core::{GreenList, Scheme, SecretKey};

const DOC_TOKENS: usize = 200;
/// Documents taken per genre (the corpus has more fortunes than anything else).
const DOCS_PER_GENRE: usize = 600;

fn key(i: u64) -> SecretKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    bytes[8] = 0x5a;
    SecretKey::from_bytes(bytes)
}

/// Uniform in [0, 1) from a counter (SplitMix64), for the randomised p-value.
fn uniform(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Each genre's text, tokenized as one stream and cut into 200-token documents.
fn human_documents(tokenizer: &watermark_core::TextTokenizer) -> BTreeMap<String, Vec<Vec<u32>>> {
    let path = support::corpus_path().expect("corpus");
    let mut text_by_genre: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for doc in support::read_corpus(&path) {
        text_by_genre.entry(doc.genre).or_default().push(doc.text);
    }
    let mut out = BTreeMap::new();
    for (genre, texts) in text_by_genre {
        let mut stream = Vec::new();
        for text in texts {
            if stream.len() >= DOCS_PER_GENRE * DOC_TOKENS {
                break;
            }
            if text.trim().is_empty() {
                continue;
            }
            stream.extend(tokenizer.encode(&text).unwrap());
            stream.extend(tokenizer.encode("\n\n").unwrap_or_default());
        }
        let docs: Vec<Vec<u32>> = stream
            .chunks_exact(DOC_TOKENS)
            .take(DOCS_PER_GENRE)
            .map(<[u32]>::to_vec)
            .collect();
        out.insert(genre, docs);
    }
    out
}

#[test]
fn null_calibration_on_human_text() {
    let (Some(model), Some(_)) = (support::model_path(), support::corpus_path()) else {
        return;
    };
    let tokenizer = load_default_tokenizer(&model).unwrap();
    let docs = human_documents(&tokenizer);
    assert_eq!(
        docs.len(),
        4,
        "genres: {:?}",
        docs.keys().collect::<Vec<_>>()
    );
    let mut randomised = Vec::new();
    let mut plain = Vec::new();
    let mut per_genre: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut counter = 0u64;
    for k in 0..10 {
        let green = GreenList::new(&key(k), Scheme::default(), tokenizer.vocab_size()).unwrap();
        // One set per key: no tuple is scored twice under a key, so the documents' p-values are
        // independent (documents that share phrases would otherwise share coin flips, and a
        // KS test, which assumes independent samples, would reject).
        let mut seen = TupleSet::default();
        for (genre, genre_docs) in &docs {
            for ids in genre_docs {
                let d = detect_in_corpus(&green, &[], ids, &DetectOptions::default(), &mut seen)
                    .unwrap();
                let (n, g, gamma) = (
                    d.header.score.scored,
                    d.header.score.green,
                    d.header.score.gamma,
                );
                let above = binomial_ln_sf(n, g + 1, gamma).exp();
                let at = binomial_ln_sf(n, g, gamma).exp();
                counter += 1;
                randomised.push(above + uniform(counter) * (at - above));
                plain.push(d.header.score.p_value);
                let e = per_genre.entry(genre.as_str()).or_default();
                e.0 += 1;
                e.1 += u64::from(d.header.score.p_value <= 1e-2);
            }
        }
    }
    let n = randomised.len() as u64;
    let mut hist = [0usize; 10];
    for &p in &randomised {
        hist[((p * 10.0) as usize).min(9)] += 1;
    }
    eprintln!("deciles {hist:?}");
    let (dstat, ks_p) = ks_uniform(&randomised);
    eprintln!("human null: {n} documents x keys, KS D = {dstat:.4}, p = {ks_p:.3}");
    // Uniform at the 1e-3 level.
    assert!(
        ks_p > 1e-3,
        "randomised p-values on human text are not uniform: D = {dstat}, p = {ks_p}"
    );
    for alpha in [1e-2, 1e-3] {
        let rand_hits = randomised.iter().filter(|&&p| p <= alpha).count() as u64;
        let plain_hits = plain.iter().filter(|&&p| p <= alpha).count() as u64;
        let (lo, hi) = clopper_pearson(rand_hits, n, 1e-3);
        eprintln!("  alpha {alpha}: randomised {rand_hits}/{n} (99.9% CI [{lo:.5}, {hi:.5}]), exact test {plain_hits}/{n}");
        assert!(
            lo <= alpha && alpha <= hi,
            "randomised FPR at {alpha} outside its CI"
        );
        let (lo, _) = clopper_pearson(plain_hits, n, 1e-3);
        assert!(
            lo <= alpha,
            "the exact test's FPR at {alpha} exceeds nominal"
        );
    }
    for (genre, (docs, hits)) in per_genre {
        let (lo, _) = clopper_pearson(hits, docs, 1e-3);
        eprintln!("  {genre}: {hits}/{docs} flagged at 1e-2");
        assert!(
            lo <= 1e-2,
            "genre {genre}: FPR {hits}/{docs} at 1e-2 exceeds nominal"
        );
    }
}

#[test]
fn watermarked_answers_are_flagged_and_plain_ones_are_not() {
    let Some(model) = support::model_path() else {
        return;
    };
    let generator = Generator::load(&model, &LoadOptions::default()).unwrap();
    let vocab = generator.tokenizer().vocab_size();
    let green = GreenList::new(&key(99), Scheme::default(), vocab).unwrap();
    let prompts: Vec<String> = [
        "Write a short story about a fox who learns to sail.",
        "Explain how a refrigerator keeps food cold.",
        "Describe a busy market in a small town on a Saturday morning.",
        "Give advice to someone starting their first job.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let options = GenerateOptions {
        max_tokens: 200,
        min_tokens: 200,
        sampling: Sampling::new(1.0, None, None).unwrap(),
        seed: 7,
        batch_size: 4,
    };
    let marked = generator
        .generate(&prompts, Some(&green), &options, |_, _| {})
        .unwrap();
    let plain = generator
        .generate(&prompts, None, &options, |_, _| {})
        .unwrap();
    for (c, watermarked) in marked
        .iter()
        .map(|c| (c, true))
        .chain(plain.iter().map(|c| (c, false)))
    {
        // Detection from the text alone, re-tokenized, as an auditor would.
        let ids = generator.tokenizer().encode(&c.completion).unwrap();
        let d = detect(&green, &[], &ids, &DetectOptions::default()).unwrap();
        eprintln!(
            "{}: {} tokens, green {:.3}, z {:.2}, log10 p {:.2}",
            if watermarked { "watermarked" } else { "plain" },
            ids.len(),
            d.header.score.green_fraction,
            d.header.score.z_score,
            d.header.score.log10_p_value
        );
        assert_eq!(d.header.watermarked, watermarked, "{:?}", d.header.score);
    }
}
