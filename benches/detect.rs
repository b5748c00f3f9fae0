//! Detection throughput on 1,000,000 pre-tokenized ids (V = 49152), deduplication on
//! (`DetectOptions::default()`), no prompt. Single-threaded: the rate is one core's.
//!
//! Streams:
//! - `uniform`: pseudo-random ids, so practically every (seed, token) tuple is distinct and
//!   every token past the first window is scored;
//! - `zipf5000`: ids drawn from a Zipf(1) law over 5000 ids, like word frequencies in text, so
//!   many tuples repeat and the deduplication set sees many hits.
//!
//! Throughput is input tokens; the scored count of each stream is printed once before it runs.
//!
//! `audit/*` pools the same 1M zipf ids as 5000 outputs of 200 tokens, each after a 20-token
//! prompt, through one [`Audit`] (audit-wide dedup, prompt exclusion): `closed` scores the
//! outputs, `reading` scores a second id stream as predictions over them.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use watermark_core::{detect, DetectOptions};
use watermark_core::{Audit, AuditOptions};
use watermark_core::{GreenList, Scheme, SecretKey, Seeding};

const N: usize = 1_000_000;
const VOCAB: u32 = 49_152;
const ZIPF_SUPPORT: usize = 5_000;

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
}

/// SplitMix64 as a stream: state advances by the golden gamma, output is the finaliser.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (multiply-shift; the bias is below 2^-32 for these n).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

fn uniform_ids(seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    (0..N).map(|_| rng.below(u64::from(VOCAB)) as u32).collect()
}

/// Ids with P(rank r) ∝ 1/(r+1) over `ZIPF_SUPPORT` ranks, each rank mapped to a fixed
/// pseudo-random id of the vocabulary (a partial Fisher–Yates shuffle).
fn zipf_ids(seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    let mut vocab: Vec<u32> = (0..VOCAB).collect();
    for i in 0..ZIPF_SUPPORT {
        let j = i + rng.below((VOCAB as usize - i) as u64) as usize;
        vocab.swap(i, j);
    }
    let mut cdf = Vec::with_capacity(ZIPF_SUPPORT);
    let mut total = 0.0f64;
    for r in 0..ZIPF_SUPPORT {
        total += 1.0 / (r + 1) as f64;
        cdf.push(total);
    }
    (0..N)
        .map(|_| {
            let x = rng.unit() * total;
            let rank = cdf.partition_point(|&c| c <= x).min(ZIPF_SUPPORT - 1);
            vocab[rank]
        })
        .collect()
}

fn detect_throughput(c: &mut Criterion) {
    let key = SecretKey::from_bytes(std::array::from_fn(|i| {
        (i as u8).wrapping_mul(37).wrapping_add(11)
    }));
    let default = GreenList::new(&key, Scheme::default(), VOCAB).expect("valid scheme");
    let self4 = GreenList::new(
        &key,
        Scheme {
            seeding: Seeding::SelfSeeded,
            width: 4,
            ..Scheme::default()
        },
        VOCAB,
    )
    .expect("valid scheme");
    let uniform = uniform_ids(0x7472_6163_656d_6172);
    let zipf = zipf_ids(0x7a69_7066);
    let options = DetectOptions::default();

    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(N as u64));
    for (scheme_name, green) in [("default", &default), ("self4", &self4)] {
        for (stream_name, ids) in [("uniform", &uniform), ("zipf5000", &zipf)] {
            let d = detect(green, &[], ids, &options).expect("detects");
            eprintln!(
                "detect/{scheme_name}/{stream_name}: {} tokens, {} scored, {} repeated, {} too little context, green fraction {:.4}",
                d.header.tokens, d.header.score.scored, d.ignored.repeated, d.ignored.too_little_context, d.header.score.green_fraction
            );
            group.bench_function(
                BenchmarkId::new(scheme_name, format!("{stream_name}/1M")),
                |b| b.iter(|| detect(green, &[], black_box(ids), &options).expect("detects")),
            );
        }
    }
    group.finish();
}

fn audit_throughput(c: &mut Criterion) {
    const DOC: usize = 200;
    const PROMPT: usize = 20;
    let key = SecretKey::from_bytes([9; 32]);
    let green = GreenList::new(&key, Scheme::default(), VOCAB).expect("valid scheme");
    let zipf = zipf_ids(0x0061_7564_6974);
    let predictions = zipf_ids(0x7072_6564);
    let prompts = uniform_ids(0x7072_6f6d_7074);
    let run = |reading: bool| {
        let mut audit = Audit::new(green.clone(), AuditOptions::default()).expect("valid");
        for (d, doc) in zipf.chunks(DOC).enumerate() {
            let prompt = &prompts[d * PROMPT..(d + 1) * PROMPT];
            if reading {
                let preds = &predictions[d * DOC..d * DOC + doc.len()];
                audit
                    .add_reading(prompt, doc, preds)
                    .expect("in vocabulary");
            } else {
                audit.add_output(prompt, doc).expect("in vocabulary");
            }
        }
        audit.report()
    };
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(N as u64));
    for (name, reading) in [("closed", false), ("reading", true)] {
        let r = run(reading);
        eprintln!(
            "audit/{name}: {} documents, {} tokens, {} scored, skipped {:?}",
            r.documents, r.header.tokens, r.header.score.scored, r.skipped
        );
        group.bench_function(BenchmarkId::new(name, "zipf5000/1M"), |b| {
            b.iter(|| black_box(run(reading)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = detect_throughput, audit_throughput
}
criterion_main!(benches);
