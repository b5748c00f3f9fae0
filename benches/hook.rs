//! The sampling hook against the step it sits in front of: one softmax + sample over the row.
//!
//! Groups:
//! - `hook_row`: `apply_watermark` on one row at several vocabulary sizes (default scheme, and
//!   self-seeded width 4 at 128256), with `softmax_sample/V` as the baseline over the same sizes;
//! - `hook_batch`: `apply_watermark_batch` on 32 rows of 128256, against 32 softmax + samples;
//! - `hook_candidates`: `apply_watermark_candidates` on a 50-token shortlist out of 128256.
//!
//! The hook re-biases the same buffer every iteration instead of restoring a pristine copy: its
//! work does not depend on the logit values (it only adds δ to green entries), so the growing
//! bias is harmless, and no copy enters the measurement or evicts the row from cache. The
//! baseline only reads its row. The context changes every iteration, as it does when decoding.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use watermark_core::hook::{apply_watermark, apply_watermark_batch, apply_watermark_candidates};
use watermark_core::SyntheticLm;
use watermark_core::{GreenList, Scheme, SecretKey, Seeding};

const VOCABS: [u32; 5] = [32_000, 49_152, 128_256, 151_936, 256_000];
const BIG_VOCAB: u32 = 128_256;
const BATCH: usize = 32;
const CANDIDATES: usize = 50;
/// The fixed uniform draw of the baseline sampler.
const U: f32 = 0.5;

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
}

fn key() -> SecretKey {
    SecretKey::from_bytes(std::array::from_fn(|i| {
        (i as u8).wrapping_mul(37).wrapping_add(11)
    }))
}

fn green(scheme: Scheme, vocab: u32) -> GreenList {
    GreenList::new(&key(), scheme, vocab).expect("valid scheme and vocabulary")
}

fn self_seeded_4() -> Scheme {
    Scheme {
        seeding: Seeding::SelfSeeded,
        width: 4,
        ..Scheme::default()
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The last four tokens of a decoding context at `step` (enough for any scheme used here).
fn context(step: u64, vocab: u32) -> [u32; 4] {
    std::array::from_fn(|i| (splitmix64(step.wrapping_mul(4) + i as u64) % u64::from(vocab)) as u32)
}

/// A model-like row: Gumbel logits from the synthetic LM.
fn row(vocab: u32) -> Vec<f32> {
    SyntheticLm::new(vocab, 1.0, 42).logits(&[7])
}

/// What a typical engine does after the forward pass: softmax in f32 (max, exp(x - max) into a
/// scratch buffer, sum), then an inverse-CDF walk with a uniform draw `u`. The probabilities are
/// left unnormalised and `u` is scaled by the sum instead, which saves a pass: a cheap baseline.
fn softmax_sample(logits: &[f32], probs: &mut [f32], u: f32) -> usize {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for (p, &x) in probs.iter_mut().zip(logits) {
        let e = (x - max).exp();
        *p = e;
        sum += e;
    }
    let mut r = u * sum;
    for (i, &p) in probs.iter().enumerate() {
        r -= p;
        if r < 0.0 {
            return i;
        }
    }
    probs.len() - 1
}

fn hook_row(c: &mut Criterion) {
    let mut group = c.benchmark_group("hook_row");
    let mut cases: Vec<(&str, Scheme, u32)> = VOCABS
        .iter()
        .map(|&v| ("apply_watermark", Scheme::default(), v))
        .collect();
    cases.insert(3, ("apply_watermark_self4", self_seeded_4(), BIG_VOCAB));
    for (name, scheme, vocab) in cases {
        let green = green(scheme, vocab);
        let mut logits = row(vocab);
        let mut step = 0u64;
        group.throughput(Throughput::Elements(u64::from(vocab)));
        group.bench_function(BenchmarkId::new(name, vocab), |b| {
            b.iter(|| {
                step += 1;
                let ctx = context(step, vocab);
                apply_watermark(&green, black_box(&ctx), black_box(&mut logits))
                    .expect("row fits the vocabulary")
            })
        });
        if name == "apply_watermark" {
            let logits = row(vocab);
            let mut probs = vec![0.0f32; logits.len()];
            group.bench_function(BenchmarkId::new("softmax_sample", vocab), |b| {
                b.iter(|| softmax_sample(black_box(&logits), &mut probs, black_box(U)))
            });
        }
    }
    group.finish();
}

fn hook_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("hook_batch");
    let vocab = BIG_VOCAB;
    let rows: Vec<f32> = (0..BATCH).flat_map(|_| row(vocab)).collect();
    group.throughput(Throughput::Elements((BATCH * vocab as usize) as u64));

    let green = green(Scheme::default(), vocab);
    let mut logits = rows.clone();
    let mut step = 0u64;
    group.bench_function(
        BenchmarkId::new("apply_watermark_batch", format!("{BATCH}x{vocab}")),
        |b| {
            b.iter(|| {
                step += 1;
                let contexts: [[u32; 4]; BATCH] =
                    std::array::from_fn(|r| context(step * BATCH as u64 + r as u64, vocab));
                apply_watermark_batch(&green, black_box(&contexts), black_box(&mut logits))
                    .expect("batch shape")
            })
        },
    );

    let mut probs = vec![0.0f32; vocab as usize];
    group.bench_function(
        BenchmarkId::new("softmax_sample", format!("{BATCH}x{vocab}")),
        |b| {
            b.iter(|| {
                let mut picked = [0usize; BATCH];
                for (p, r) in picked.iter_mut().zip(rows.chunks_exact(vocab as usize)) {
                    *p = softmax_sample(black_box(r), &mut probs, black_box(U));
                }
                picked
            })
        },
    );
    group.finish();
}

fn hook_candidates(c: &mut Criterion) {
    let mut group = c.benchmark_group("hook_candidates");
    let vocab = BIG_VOCAB;
    // 50 distinct shortlist ids, as a top-k / top-p engine would hand over.
    let mut ids: Vec<u32> = Vec::with_capacity(CANDIDATES);
    let mut i = 0u64;
    while ids.len() < CANDIDATES {
        let t = (splitmix64(1_000 + i) % u64::from(vocab)) as u32;
        if !ids.contains(&t) {
            ids.push(t);
        }
        i += 1;
    }
    let full = row(vocab);
    let shortlist: Vec<f32> = ids.iter().map(|&t| full[t as usize]).collect();
    group.throughput(Throughput::Elements(CANDIDATES as u64));
    for (name, scheme) in [
        ("apply_watermark_candidates", Scheme::default()),
        ("apply_watermark_candidates_self4", self_seeded_4()),
    ] {
        let green = green(scheme, vocab);
        let mut logits = shortlist.clone();
        let mut step = 0u64;
        group.bench_function(
            BenchmarkId::new(name, format!("{CANDIDATES}of{vocab}")),
            |b| {
                b.iter(|| {
                    step += 1;
                    let ctx = context(step, vocab);
                    apply_watermark_candidates(
                        &green,
                        black_box(&ctx),
                        black_box(&ids),
                        black_box(&mut logits),
                    )
                    .expect("valid candidates")
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = hook_row, hook_batch, hook_candidates
}
criterion_main!(benches);
