//! Reading mode of the audit for vLLM's watermark (`watermark_core::vllm::ReadingAudit`), on a
//! synthetic model: our texts are written with vLLM's Gumbel-max rule under a key, and a
//! suspect reads them.
//!
//! - The null: the base model itself (never trained on our texts) reads them. Over 200 keys
//!   (`gumbel`) and 120 keys (`dual_key_gumbel`, alpha 0.1, exact tail) the audit's p-values must
//!   be uniform: a Kolmogorov–Smirnov test at level 0.001 (a correct scorer fails it one time in a
//!   thousand; the seeds are fixed, so the outcome is too).
//! - The signal: a suspect that applies the Gumbel rule itself (a perfect student) is flagged at
//!   log10 p < -20 under the key, and not under another key.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use watermark_core::stats::ks_uniform;
use watermark_core::vllm::{uniform, ReadingAudit, VllmScorer, PAD_TOKEN};
use watermark_core::SyntheticLm;

const WIDTH: usize = 4;
const VOCAB: u32 = 120;
const TEXTS: usize = 5;
const LENGTH: usize = 40;
/// Level of the KS tests.
const KS_LEVEL: f64 = 0.001;

/// The base model after `prompt`: its logits depend on the prompt's first token (a topic) and
/// on the previous token, so that texts after different prompts differ.
fn base(prompt: &[u32]) -> SyntheticLm {
    let topic = prompt.first().map_or(0, |&t| u64::from(t));
    SyntheticLm::new(VOCAB, 1.5, 17 ^ (topic << 8))
}

/// vLLM's Gumbel-max choice at `context` under `key`: argmax of logits - ln(-ln u).
fn gumbel_choice(lm: &SyntheticLm, prefix: &[u32], context: &[i64], key: u64) -> u32 {
    let logits = lm.logits(prefix);
    let noisy = |t: u32| {
        let u = f64::from(uniform(key, context, i64::from(t)));
        f64::from(logits[t as usize]) - (-u.ln()).ln()
    };
    (0..VOCAB)
        .max_by(|&a, &b| noisy(a).total_cmp(&noisy(b)))
        .unwrap_or(0)
}

/// The keys a token is sampled with: `gumbel` uses the key; `dual_key_gumbel` routes each token
/// to key B with probability alpha, else key A (vLLM's generator).
fn sampling_key(scorer: &VllmScorer, rng: &mut ChaCha8Rng) -> u64 {
    match *scorer {
        VllmScorer::Gumbel { key } => key,
        VllmScorer::DualKey {
            key_a,
            key_b,
            alpha,
        } => {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if u < alpha {
                key_b
            } else {
                key_a
            }
        }
    }
}

/// One watermarked text after a 3-token prompt; contexts are the generated tokens, padded.
fn watermarked_text(scorer: &VllmScorer, rng: &mut ChaCha8Rng) -> (Vec<u32>, Vec<u32>) {
    let prompt: Vec<u32> = (0..3).map(|_| rng.next_u32() % VOCAB).collect();
    let lm = base(&prompt);
    let mut text: Vec<u32> = Vec::new();
    for _ in 0..LENGTH {
        let context: Vec<i64> = std::iter::repeat_n(PAD_TOKEN, WIDTH)
            .chain(text.iter().map(|&t| i64::from(t)))
            .collect();
        let context = &context[context.len() - WIDTH..];
        let prefix: Vec<u32> = prompt.iter().chain(&text).copied().collect();
        let key = sampling_key(scorer, rng);
        text.push(gumbel_choice(&lm, &prefix, context, key));
    }
    (prompt, text)
}

/// The innocent suspect: the base model's top-1 at every position of prompt ++ text.
fn innocent_predictions(prompt: &[u32], text: &[u32]) -> Vec<Option<u32>> {
    let lm = base(prompt);
    (0..text.len())
        .map(|i| {
            let prefix: Vec<u32> = prompt.iter().chain(&text[..i]).copied().collect();
            let logits = lm.logits(&prefix);
            (0..VOCAB).max_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]))
        })
        .collect()
}

/// The student that learned the rule: Gumbel-max under `key` at our text's context.
fn gumbel_predictions(prompt: &[u32], text: &[u32], key: u64) -> Vec<Option<u32>> {
    let lm = base(prompt);
    (0..text.len())
        .map(|i| {
            let prefix: Vec<u32> = prompt.iter().chain(&text[..i]).copied().collect();
            let context: Vec<i64> = std::iter::repeat_n(PAD_TOKEN, WIDTH)
                .chain(text[..i].iter().map(|&t| i64::from(t)))
                .collect();
            Some(gumbel_choice(
                &lm,
                &prefix,
                &context[context.len() - WIDTH..],
                key,
            ))
        })
        .collect()
}

/// The p-values of reading-mode audits of an innocent suspect under `keys` fresh keys.
fn null_p_values(keys: usize, seed: u64, make: impl Fn(u64) -> VllmScorer) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..keys)
        .map(|_| {
            let scorer = make(rng.next_u64());
            let mut audit = ReadingAudit::new(scorer, WIDTH).expect("audit");
            for _ in 0..TEXTS {
                let (prompt, text) = watermarked_text(&scorer, &mut rng);
                let predictions = innocent_predictions(&prompt, &text);
                audit
                    .add_reading(&prompt, &text, &predictions)
                    .expect("read");
            }
            let report = audit.report();
            assert!(report.score.scored > 50, "{report:?}");
            report.score.p_value
        })
        .collect()
}

#[test]
fn an_innocent_readers_p_values_are_uniform_under_200_gumbel_keys() {
    let p = null_p_values(200, 140, |key| VllmScorer::Gumbel { key });
    let (d, ks_p) = ks_uniform(&p);
    println!("gumbel null: 200 keys, KS D = {d:.4}, p = {ks_p:.3}");
    assert!(ks_p > KS_LEVEL, "KS D {d}, p {ks_p}: {p:?}");
}

#[test]
fn an_innocent_readers_p_values_are_uniform_under_120_dual_keys() {
    let p = null_p_values(120, 141, |key| {
        VllmScorer::dual_key(key, 0.1).expect("alpha in range")
    });
    let (d, ks_p) = ks_uniform(&p);
    println!("dual_key_gumbel null: 120 keys, KS D = {d:.4}, p = {ks_p:.3}");
    assert!(ks_p > KS_LEVEL, "KS D {d}, p {ks_p}: {p:?}");
}

#[test]
fn a_reader_that_applies_the_gumbel_rule_is_flagged() {
    let mut rng = ChaCha8Rng::seed_from_u64(142);
    for _ in 0..3 {
        let key = rng.next_u64();
        let scorer = VllmScorer::Gumbel { key };
        let mut ours = ReadingAudit::new(scorer, WIDTH).expect("audit");
        let mut other =
            ReadingAudit::new(VllmScorer::Gumbel { key: key ^ 1 }, WIDTH).expect("audit");
        for _ in 0..TEXTS {
            let (prompt, text) = watermarked_text(&scorer, &mut rng);
            let predictions = gumbel_predictions(&prompt, &text, key);
            ours.add_reading(&prompt, &text, &predictions)
                .expect("read");
            other
                .add_reading(&prompt, &text, &predictions)
                .expect("read");
        }
        let (ours, other) = (ours.report(), other.report());
        println!(
            "gumbel student: log10 p {:.1} under the key, {:.2} under another, {} scored",
            ours.score.log10_p_value, other.score.log10_p_value, ours.score.scored
        );
        assert!(ours.score.log10_p_value < -20.0, "{ours:?}");
        assert!(other.score.log10_p_value > -3.0, "{other:?}");
    }
}
