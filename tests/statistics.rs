//! Statistical end-to-end tests of the detector. Each can fail: seeds are fixed, sample sizes are
//! stated, and every threshold comes from a stated confidence level.

#![allow(clippy::unwrap_used)]

use watermark_core::hook::apply_watermark;
use watermark_core::stats::{
    binomial_ln_sf, clopper_pearson, expected_green_fraction_lower_bound, ks_uniform,
    spike_entropy, spike_modulus,
};
use watermark_core::{detect, DetectOptions, DEFAULT_FPR};
use watermark_core::{softmax, SyntheticLm};
use watermark_core::{GreenList, Scheme, SecretKey, Seeding};
use watermark_core::{Sampling, WatermarkSampler};

/// Deterministic uniform stream (SplitMix64) for token ids and randomisation.
struct Stream(u64);
impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn key(i: u64) -> SecretKey {
    let mut s = Stream(0xdead_beef ^ i);
    SecretKey::from_bytes(std::array::from_fn(|_| s.next() as u8))
}

/// The randomised p-value P(X > G) + U·P(X = G): exactly Uniform(0, 1) under H0, so a KS test
/// checks the whole null distribution, not just a conservative bound.
fn randomised_p(n: u64, g: u64, gamma: f64, u: f64) -> f64 {
    let above = binomial_ln_sf(n, g + 1, gamma).exp();
    let at_or_above = binomial_ln_sf(n, g, gamma).exp();
    above + u * (at_or_above - above)
}

/// 1,000,000 random tokens: 10 keys (three schemes among them) × 1000 documents of 100 tokens. Under H0 the
/// randomised p-values are uniform (KS test at level 1e-3) and the plain p-value's false-positive
/// rate at α = 1e-3 lies inside (or below, as the test is conservative) its 99.9% Clopper–Pearson
/// interval.
#[test]
fn null_calibration_on_random_token_streams() {
    let vocab = 49_152;
    let schemes = [
        Scheme::default(),
        Scheme {
            seeding: Seeding::Previous,
            width: 1,
            ..Scheme::default()
        },
        Scheme {
            seeding: Seeding::SelfSeeded,
            width: 4,
            ..Scheme::default()
        },
    ];
    let doc_len = 100;
    let docs_per_key = 1000;
    let mut randomised = Vec::new();
    let mut flagged_rand = 0u64;
    let mut flagged_plain = 0u64;
    let mut tokens_scored_in = 0usize;
    let mut s = Stream(42);
    for k in 0..10u64 {
        let scheme = schemes[(k % 3) as usize].clone();
        let green = GreenList::new(&key(k), scheme, vocab).unwrap();
        for _ in 0..docs_per_key {
            let ids: Vec<u32> = (0..doc_len)
                .map(|_| (s.next() % u64::from(vocab)) as u32)
                .collect();
            tokens_scored_in += ids.len();
            let d = detect(&green, &[], &ids, &DetectOptions::default()).unwrap();
            let p = randomised_p(
                d.header.score.scored,
                d.header.score.green,
                d.header.score.gamma,
                s.uniform(),
            );
            randomised.push(p);
            flagged_rand += u64::from(p <= 1e-3);
            flagged_plain += u64::from(d.header.score.p_value <= 1e-3);
        }
    }
    assert!(tokens_scored_in >= 1_000_000);
    let (dstat, ks_p) = ks_uniform(&randomised);
    eprintln!(
        "null: {} docs, KS D = {dstat:.4} p = {ks_p:.3}, flagged at 1e-3: randomised {flagged_rand}, plain {flagged_plain}",
        randomised.len()
    );
    assert!(
        ks_p > 1e-3,
        "randomised p-values not uniform: D = {dstat}, p = {ks_p}"
    );
    let n = randomised.len() as u64;
    let (lo, hi) = clopper_pearson(flagged_rand, n, 1e-3);
    assert!(
        lo <= 1e-3 && 1e-3 <= hi,
        "randomised FPR {flagged_rand}/{n} CI [{lo}, {hi}]"
    );
    let (lo, _) = clopper_pearson(flagged_plain, n, 1e-3);
    assert!(
        lo <= 1e-3,
        "plain FPR {flagged_plain}/{n} exceeds nominal (CI low {lo})"
    );
}

/// Words of a short passage written for this test, hashed into token ids: a stand-in for human
/// text whose only relevant property is that it repeats exactly.
fn passage_tokens(vocab: u32) -> Vec<u32> {
    let text = "The river ran brown after the storm, and the ferryman waited on the far bank \
        with his hat in his hands. Nobody crossed that morning. By noon the baker's boy came \
        down with bread and news: the bridge upstream had gone, the mill was flooded, and the \
        schoolmaster had lost his spectacles somewhere between the church and the inn. The \
        ferryman laughed, ate the bread, and said that rivers keep their own accounts.";
    text.split_whitespace()
        .map(|w| {
            let h = w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            (h % u64::from(vocab)) as u32
        })
        .collect()
}

/// A passage repeated 50 times is not flagged by any of 20 keys with deduplication; without it,
/// the repetition multiplies the passage's chance excess of green tokens and at least one key
/// flags it (the p-value then says 50 copies are 50× the evidence, which they are not).
#[test]
fn repeated_text_is_not_flagged_thanks_to_deduplication() {
    let vocab = 49_152;
    let once = passage_tokens(vocab);
    let repeated: Vec<u32> = (0..50).flat_map(|_| once.iter().copied()).collect();
    let mut flagged_with = 0;
    let mut flagged_without = 0;
    for k in 0..20 {
        let green = GreenList::new(&key(100 + k), Scheme::default(), vocab).unwrap();
        let with = detect(&green, &[], &repeated, &DetectOptions::default()).unwrap();
        assert!(with.ignored.repeated >= 49 * (once.len() as u64 - 2));
        flagged_with += u32::from(with.header.watermarked);
        let naive = DetectOptions {
            deduplicate: false,
            ..DetectOptions::default()
        };
        let without = detect(&green, &[], &repeated, &naive).unwrap();
        flagged_without += u32::from(without.header.watermarked);
    }
    eprintln!(
        "repeated: flagged by {flagged_with}/20 keys with dedup, {flagged_without}/20 without"
    );
    assert_eq!(
        flagged_with, 0,
        "deduplicated detection flagged repeated human text"
    );
    assert!(
        flagged_without >= 1,
        "without deduplication no key flagged the repeated text"
    );
}

/// Power on a synthetic model with known next-token distributions: 40 documents of 200 tokens at
/// γ = 0.25, δ = 2, multinomial sampling at temperature 1, are each detected at the default
/// false-positive rate, and the mean green fraction is at least Kirchenbauer et al.'s Theorem 4.2
/// lower bound computed from the spike entropy of the same distributions (allowing 3.3 standard
/// errors of sampling noise below it: one-sided 99.95%).
#[test]
fn power_and_theorem_4_2_on_a_synthetic_model() {
    let vocab = 2_000;
    let scheme = Scheme::default();
    let (gamma, delta) = (scheme.effective_gamma(), f64::from(scheme.delta));
    let green = GreenList::new(&key(7), scheme, vocab).unwrap();
    let lm = SyntheticLm::new(vocab, 1.5, 11);
    let modulus = spike_modulus(gamma, delta);
    let (mut spike_sum, mut greens, mut steps) = (0.0, 0u64, 0u64);
    let mut min_z = f64::INFINITY;
    for doc in 0..40u64 {
        let mut sampler = WatermarkSampler::new(
            Some(green.clone()),
            Sampling::new(1.0, None, None).unwrap(),
            doc,
        );
        let mut context = vec![(doc % u64::from(vocab)) as u32];
        for _ in 0..200 {
            let mut logits = lm.logits(&context);
            spike_sum += spike_entropy(&softmax(&logits), modulus);
            let t = sampler.sample(&context, &mut logits).unwrap();
            greens += u64::from(green.is_green(&context, t).unwrap() == Some(true));
            steps += 1;
            context.push(t);
        }
        let d = detect(
            &green,
            &context[..1],
            &context[1..],
            &DetectOptions::default(),
        )
        .unwrap();
        assert!(
            d.header.score.log10_p_value <= DEFAULT_FPR.log10(),
            "doc {doc} missed: {:?}",
            d.header.score
        );
        min_z = min_z.min(d.header.score.z_score);
    }
    let fraction = greens as f64 / steps as f64;
    let bound = expected_green_fraction_lower_bound(gamma, delta, spike_sum / steps as f64);
    let se = (fraction * (1.0 - fraction) / steps as f64).sqrt();
    eprintln!("power: green fraction {fraction:.4} (se {se:.4}), Theorem 4.2 bound {bound:.4}, min z {min_z:.2}");
    assert!(
        fraction >= bound - 3.3 * se,
        "green fraction {fraction:.4} below the Theorem 4.2 bound {bound:.4}"
    );
    assert!(min_z > 4.0, "weakest document z = {min_z}");
}

/// The hook really shifts probability mass to green tokens: on a flat distribution the green
/// share after biasing is γe^δ / (γe^δ + 1 − γ) up to sampling noise of the green list itself.
#[test]
fn hook_moves_the_expected_mass() {
    let vocab = 100_000u32;
    let green = GreenList::new(&key(3), Scheme::default(), vocab).unwrap();
    let mut row = vec![0.0f32; vocab as usize];
    apply_watermark(&green, &[5, 6], &mut row).unwrap();
    let p = softmax(&row);
    let green_mass: f64 = p
        .iter()
        .zip(&row)
        .filter(|(_, &x)| x > 0.0)
        .map(|(p, _)| p)
        .sum();
    let a = 2f64.exp();
    let want = 0.25 * a / (0.25 * a + 0.75);
    assert!((green_mass - want).abs() < 0.01, "{green_mass} vs {want}");
}
