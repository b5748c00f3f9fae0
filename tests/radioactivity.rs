//! The distillation audit on students that did, and did not, learn from watermarked text.
//!
//! A synthetic teacher ([`SyntheticLm`] with the watermarking sampler) stands in for the
//! default model so that the whole experiment fits CI; `make radioactivity` runs it on the real
//! model. Students are the n-gram models of `tracemark_lab::ngram`. Every test uses fixed seeds,
//! and every threshold comes from a stated confidence level:
//! - power: a student trained on 100% watermarked answers is flagged at p < 1e-6, closed and
//!   reading mode;
//! - null: the student trained on unwatermarked answers, audited under `KEYS` keys, gives
//!   p-values the Kolmogorov–Smirnov test does not reject at level 0.001, and no more p ≤ 0.05
//!   than the 0.999 quantile of Binomial(KEYS, 0.05);
//! - each rule is necessary: turned off, an innocent suspect that repeats itself (dedup) or
//!   copies from what it read (context exclusion) gives more p ≤ 0.05 than the 1 − 1e-6
//!   quantile of Binomial(KEYS, 0.05) — a false-positive rate far above nominal — while with
//!   the rule on the same suspect passes the null check.

#![allow(clippy::unwrap_used)]

#[path = "support/synthetic_teacher.rs"]
mod synthetic_teacher;

use synthetic_teacher::{answers, green, prompts, ANSWER_LEN, VOCAB};

use std::sync::OnceLock;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracemark_lab::ngram::{NgramConfig, NgramModel};
use tracemark_lab::radioactivity::{
    audit_outputs, audit_reading, student_answers, student_predictions, train_student,
    window_filter, NullCheck, Sample,
};
use watermark_core::stats;
use watermark_core::AuditOptions;

/// Keys of each null check.
const KEYS: usize = 40;

/// The innocent student (trained on 300 unwatermarked answers), shared by the tests.
fn innocent() -> &'static NgramModel {
    static STUDENT: OnceLock<NgramModel> = OnceLock::new();
    STUDENT.get_or_init(|| student(&answers(None, &prompts(300, 1), 2000)))
}

fn student(training: &[Sample]) -> NgramModel {
    let refs: Vec<&Sample> = training.iter().collect();
    train_student(VOCAB, NgramConfig::default(), &refs, None).unwrap()
}

/// Critical count: the smallest k with P(Binomial(n, p) ≥ k) ≤ alpha.
fn critical(n: usize, p: f64, alpha: f64) -> u64 {
    stats::binomial_critical_count(n as u64, p, alpha)
}

/// Asserts the null check passes at the levels stated in the module docs.
fn assert_null(name: &str, log10_p: &[f64]) {
    let c = NullCheck::from_log10_p(log10_p);
    eprintln!("{name}: {c:?}");
    assert!(c.ks_p > 1e-3, "{name}: KS rejects uniformity: {c:?}");
    assert!(
        c.flagged_05 < critical(c.keys, 0.05, 1e-3),
        "{name}: too many p ≤ 0.05: {c:?}"
    );
    assert!(c.min_log10_p > -6.0, "{name}: a key flagged at 1e-6: {c:?}");
}

/// Asserts a false-positive rate far above nominal.
fn assert_broken(name: &str, log10_p: &[f64]) {
    let c = NullCheck::from_log10_p(log10_p);
    eprintln!("{name}: {c:?}");
    assert!(
        c.flagged_05 >= critical(c.keys, 0.05, 1e-6),
        "{name}: expected a false-positive rate far above 0.05: {c:?}"
    );
}

#[test]
fn a_student_of_watermarked_answers_is_flagged_closed_and_reading() {
    let g = green(0);
    let ours = answers(Some(&g), &prompts(300, 1), 1000);
    let s = &student(&ours);
    let outputs = student_answers(s, &prompts(100, 2), ANSWER_LEN, 1.0, 5, &[]).unwrap();
    let options = AuditOptions::default();

    let closed = audit_outputs(&g, &outputs, None, &options).unwrap();
    assert!(
        closed.header.score.log10_p_value < -6.0,
        "closed: {closed:?}"
    );
    assert!(closed.header.watermarked);

    let refs: Vec<&Sample> = ours.iter().collect();
    let supervised = audit_outputs(
        &g,
        &outputs,
        Some(window_filter(&g, &refs).unwrap()),
        &options,
    )
    .unwrap();
    assert!(
        supervised.header.score.log10_p_value < -6.0,
        "supervised: {supervised:?}"
    );
    assert!(supervised.header.score.green_fraction > closed.header.score.green_fraction);

    let reads = student_predictions(s, &refs).unwrap();
    let reading = audit_reading(&g, &refs, &reads, None, &options).unwrap();
    assert!(
        reading.header.score.log10_p_value < -6.0,
        "reading: {reading:?}"
    );
}

#[test]
fn an_innocent_student_gives_uniform_p_values_over_keys() {
    // Trained on the same teacher without the watermark; each key audits the student's answers
    // (closed, unsupervised and supervised by the key's own texts) and reads its own texts.
    let s = innocent();
    let outputs = student_answers(s, &prompts(100, 2), ANSWER_LEN, 1.0, 5, &[]).unwrap();
    let options = AuditOptions::default();
    let (mut closed, mut supervised, mut reading) = (Vec::new(), Vec::new(), Vec::new());
    for k in 1..=KEYS as u64 {
        let g = green(k);
        let ours = answers(Some(&g), &prompts(4, 100 + k), 3000 + 10 * k);
        let refs: Vec<&Sample> = ours.iter().collect();
        closed.push(audit_outputs(&g, &outputs, None, &options).unwrap());
        supervised.push(
            audit_outputs(
                &g,
                &outputs,
                Some(window_filter(&g, &refs).unwrap()),
                &options,
            )
            .unwrap(),
        );
        let reads = student_predictions(s, &refs).unwrap();
        reading.push(audit_reading(&g, &refs, &reads, None, &options).unwrap());
    }
    let l = |r: &[watermark_core::AuditReport]| -> Vec<f64> {
        r.iter().map(|x| x.header.score.log10_p_value).collect()
    };
    assert!(supervised.iter().all(|r| r.header.score.scored >= 20));
    assert_null("closed", &l(&closed));
    assert_null("closed, supervised", &l(&supervised));
    assert_null("reading", &l(&reading));
}

#[test]
fn without_deduplication_a_repetitive_innocent_student_is_flagged() {
    // At a low temperature the innocent student loops on its favourite phrases: the same
    // (window, token) tuples recur hundreds of times, and counting each occurrence multiplies
    // whatever chance excess a tuple has.
    let s = innocent();
    let outputs = student_answers(s, &prompts(40, 3), 200, 0.2, 9, &[]).unwrap();
    let on = AuditOptions::default();
    let off = AuditOptions {
        deduplicate: false,
        ..AuditOptions::default()
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    // More keys than elsewhere: auditing is cheap, and the rate estimate gets tighter.
    for k in 1..=(2 * KEYS) as u64 {
        let g = green(k);
        with.push(
            audit_outputs(&g, &outputs, None, &on)
                .unwrap()
                .header
                .score
                .log10_p_value,
        );
        let r = audit_outputs(&g, &outputs, None, &off).unwrap();
        assert_eq!(r.skipped.repeated, 0);
        without.push(r.header.score.log10_p_value);
    }
    assert_null("deduplicated", &with);
    assert_broken("not deduplicated", &without);
}

#[test]
fn without_context_exclusion_a_suspect_that_copies_what_it_read_is_flagged() {
    let s = innocent();
    let on = AuditOptions::default();
    let off = AuditOptions {
        exclude_context: false,
        ..AuditOptions::default()
    };
    let (mut closed_on, mut closed_off, mut reading_on, mut reading_off) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in 1..=KEYS as u64 {
        let g = green(k);
        let ours = answers(Some(&g), &prompts(8, 200 + k), 4000 + 10 * k);

        // Closed: the suspect is asked about our watermarked text (it is in the prompt) and
        // quotes it: spans of 8 tokens copied from the prompt alternate with its own tokens.
        let quoting: Vec<Sample> = ours
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut prompt = o.prompt_ids.clone();
                prompt.extend(&o.response_ids);
                let mut response = Vec::new();
                let mut rng = ChaCha8Rng::seed_from_u64(k * 100 + i as u64);
                for _ in 0..6 {
                    let start = (rng.next_u32() as usize) % (o.response_ids.len() - 8);
                    response.extend(&o.response_ids[start..start + 8]);
                    let mut sampler =
                        tracemark_lab::ngram::NgramSampler::new(s, 1.0, rng.next_u64()).unwrap();
                    let context: Vec<u32> = prompt.iter().chain(&response).copied().collect();
                    response.extend(sampler.generate(&context, 4, &[]).unwrap());
                }
                Sample {
                    prompt_ids: prompt,
                    response_ids: response,
                }
            })
            .collect();
        closed_on.push(
            audit_outputs(&g, &quoting, None, &on)
                .unwrap()
                .header
                .score
                .log10_p_value,
        );
        closed_off.push(
            audit_outputs(&g, &quoting, None, &off)
                .unwrap()
                .header
                .score
                .log10_p_value,
        );

        // Reading: our text is read twice in a row (a document that repeats itself); an
        // innocent model that copies what followed the same window earlier (as language models
        // do in context) predicts our green tokens on the second pass.
        let refs: Vec<Sample> = ours
            .iter()
            .map(|o| Sample {
                prompt_ids: o.prompt_ids.clone(),
                response_ids: o.response_ids.repeat(2),
            })
            .collect();
        let refs: Vec<&Sample> = refs.iter().collect();
        let reads: Vec<Vec<u32>> = refs
            .iter()
            .map(|r| induction_predictions(s, &r.prompt_ids, &r.response_ids))
            .collect();
        reading_on.push(
            audit_reading(&g, &refs, &reads, None, &on)
                .unwrap()
                .header
                .score
                .log10_p_value,
        );
        reading_off.push(
            audit_reading(&g, &refs, &reads, None, &off)
                .unwrap()
                .header
                .score
                .log10_p_value,
        );
    }
    assert_null("closed, context excluded", &closed_on);
    assert_broken("closed, context not excluded", &closed_off);
    assert_null("reading, context excluded", &reading_on);
    assert_broken("reading, context not excluded", &reading_off);
}

/// Top-1 predictions of an innocent model that copies in context: after a window of two
/// tokens seen earlier in what it read, the token that followed it then; otherwise its own.
fn induction_predictions(s: &NgramModel, prompt: &[u32], text: &[u32]) -> Vec<u32> {
    let own = s.predictions(prompt, text).unwrap();
    let read: Vec<u32> = prompt.iter().chain(text).copied().collect();
    let mut followed = std::collections::HashMap::new();
    for pos in 2..prompt.len() {
        followed.insert((read[pos - 2], read[pos - 1]), read[pos]);
    }
    let mut out = Vec::with_capacity(text.len());
    for (i, &p) in own.iter().enumerate() {
        let pos = prompt.len() + i;
        let copied = (pos >= 2)
            .then(|| followed.get(&(read[pos - 2], read[pos - 1])).copied())
            .flatten();
        out.push(copied.unwrap_or(p));
        if pos >= 2 {
            followed.insert((read[pos - 2], read[pos - 1]), read[pos]);
        }
    }
    out
}
