//! The watermark's share of a sampling step: `WatermarkSampler::sample` (temperature 1.0,
//! top-p 0.95) on one 49152-token row of `SyntheticLm` logits, with the default scheme and
//! without a green list, plus `apply_watermark` alone on the same row.
//!
//! The sampler biases the row in place and its cost depends on the distribution (top-p), so
//! every iteration starts from a pristine copy: `iter_batched_ref` with `BatchSize::LargeInput`
//! makes the copies outside the timed region. All three functions go through the same setup.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use watermark_core::hook::apply_watermark;
use watermark_core::{softmax, SyntheticLm};
use watermark_core::{GreenList, Scheme, SecretKey};
use watermark_core::{Sampling, WatermarkSampler};

const VOCAB: u32 = 49_152;
/// Gumbel scale of the synthetic logits: with seed 42 this row has an entropy of 3.55 nats and
/// a top-p 0.95 nucleus of 165 tokens (printed at start-up), a plausible LLM step at T = 1.
const SHARPNESS: f32 = 1.5;
const CONTEXT: [u32; 4] = [11, 2_024, 7, 31_337];

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
}

fn sampler_step(c: &mut Criterion) {
    let key = SecretKey::from_bytes(std::array::from_fn(|i| {
        (i as u8).wrapping_mul(37).wrapping_add(11)
    }));
    let green = GreenList::new(&key, Scheme::default(), VOCAB).expect("valid scheme");
    let sampling = Sampling::new(1.0, None, Some(0.95)).expect("valid sampling");
    let lm = SyntheticLm::new(VOCAB, SHARPNESS, 42);
    let row = lm.logits(&CONTEXT);

    let mut p = softmax(&row);
    let entropy: f64 = -p
        .iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| x * x.ln())
        .sum::<f64>();
    p.sort_by(|a, b| b.total_cmp(a));
    let nucleus = p
        .iter()
        .scan(0.0, |mass, &x| {
            *mass += x;
            Some(*mass)
        })
        .position(|mass| mass >= 0.95)
        .map_or(p.len(), |i| i + 1);
    eprintln!(
        "sampler row: V = {VOCAB}, entropy {entropy:.2} nats, top-p 0.95 nucleus {nucleus} tokens"
    );

    let mut group = c.benchmark_group("sampler_step");
    group.throughput(Throughput::Elements(u64::from(VOCAB)));
    for (name, g) in [("watermarked", Some(green.clone())), ("plain", None)] {
        let mut sampler = WatermarkSampler::new(g, sampling, 7);
        group.bench_function(BenchmarkId::new(name, VOCAB), |b| {
            b.iter_batched_ref(
                || row.clone(),
                |logits| {
                    sampler
                        .sample(black_box(&CONTEXT), black_box(logits))
                        .expect("samples")
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.bench_function(BenchmarkId::new("apply_watermark_only", VOCAB), |b| {
        b.iter_batched_ref(
            || row.clone(),
            |logits| {
                apply_watermark(&green, black_box(&CONTEXT), black_box(logits)).expect("row fits")
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = sampler_step
}
criterion_main!(benches);
