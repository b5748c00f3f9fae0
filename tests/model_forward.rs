//! The project's llama forward pass (`tracemark_model::llama`) against candle-transformers'
//! reference implementation, and its KV cache and batching against the uncached pass.
//!
//! Needs the model file (`make model`, or scripts/fetch-model.sh). Without it each test prints
//! a note and passes, unless `CI=true` or `TRACEMARK_REQUIRE_MODEL=1`, when it fails.
//!
//! Prompts are token ids taken from the GGUF vocabulary (`Ġ` marks a leading space), so these
//! tests do not depend on the tokenizer.

use std::io::Cursor;
use std::sync::{Mutex, OnceLock};

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, IndexOp, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use tracemark_model::llama::{Llama, LoadOptions, Session};
use tracemark_model::reading::top1_predictions;

mod support;
use support::model_path;

/// "The capital of France is"
const FRANCE: &[u32] = &[504, 3575, 282, 4649, 314];
/// "Once upon a time, there was a little girl named"
const ONCE: &[u32] = &[6403, 1980, 253, 655, 28, 665, 436, 253, 1838, 8180, 3365];
/// "The quick brown fox jumps over the lazy dog."
const FOX: &[u32] = &[504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30];
/// " Paris"
const PARIS: u32 = 7042;

/// f32 weights, two implementations (different summation orders): logits agree within this.
const REFERENCE_TOL: f32 = 1e-3;
/// Cached, uncached, alone and batched runs of our forward agree bit for bit: the forward is
/// batch- and cache-invariant by construction (see `llama.rs`). No tolerance: with quantized
/// activations a lost bit can grow to a logit difference of ~1, so only equality is a real check.
const CACHE_TOL: f32 = 0.0;

/// Loads the model once per test binary with `options`; `None` when it is missing and not
/// required.
fn load_once(
    cell: &'static OnceLock<Option<Llama>>,
    options: LoadOptions,
    what: &str,
) -> Option<&'static Llama> {
    cell.get_or_init(|| {
        let path = model_path()?;
        Some(Llama::load(&path, &options).unwrap_or_else(|e| panic!("load the model, {what}: {e}")))
    })
    .as_ref()
}

/// The model with the file's own quantization (Q4_1), as candle-transformers runs it.
fn file_quant() -> Option<&'static Llama> {
    static MODEL: OnceLock<Option<Llama>> = OnceLock::new();
    let options = LoadOptions {
        requantize: None,
        ..LoadOptions::default()
    };
    load_once(&MODEL, options, "file quantization")
}

/// The model as tracemark runs it by default (re-quantized to Q8_0).
fn default_quant() -> Option<&'static Llama> {
    static MODEL: OnceLock<Option<Llama>> = OnceLock::new();
    load_once(&MODEL, LoadOptions::default(), "Q8_0")
}

/// The model with `fast_matmul` (other kernels, same invariance).
fn fast_quant() -> Option<&'static Llama> {
    static MODEL: OnceLock<Option<Llama>> = OnceLock::new();
    let options = LoadOptions {
        fast_matmul: true,
        ..LoadOptions::default()
    };
    load_once(&MODEL, options, "fast Q8_0")
}

/// candle-transformers' quantized llama on the same file (its forward needs `&mut`).
fn reference() -> Option<&'static Mutex<ModelWeights>> {
    static MODEL: OnceLock<Option<Mutex<ModelWeights>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = model_path()?;
            let mut file = std::fs::File::open(&path).expect("open the model");
            let content = Content::read(&mut file).expect("read the GGUF header");
            let model = ModelWeights::from_gguf(content, &mut file, &Device::Cpu)
                .expect("load the reference model");
            Some(Mutex::new(model))
        })
        .as_ref()
}

/// The model with every matrix dequantized to f32 (the file's values, exactly).
fn f32_model() -> Option<&'static Llama> {
    static MODEL: OnceLock<Option<Llama>> = OnceLock::new();
    let options = LoadOptions {
        requantize: Some(GgmlDType::F32),
        ..LoadOptions::default()
    };
    load_once(&MODEL, options, "f32")
}

/// candle-transformers on the same weights dequantized to f32: a GGUF rewritten in memory.
///
/// With quantized matrices the two implementations cannot be compared tightly: `QMatMul`
/// quantizes its input activations, so the ~1e-7 rounding differences between two correct
/// attention implementations flip some roundings and grow to logit differences of order 0.1-1
/// over 30 blocks. In f32 nothing amplifies them.
fn f32_reference() -> Option<&'static Mutex<ModelWeights>> {
    static MODEL: OnceLock<Option<Mutex<ModelWeights>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = model_path()?;
            let mut file = std::fs::File::open(&path).expect("open the model");
            let content = Content::read(&mut file).expect("read the GGUF header");
            let mut tensors = Vec::new();
            for name in content.tensor_infos.keys() {
                let q = content
                    .tensor(&mut file, name, &Device::Cpu)
                    .expect("tensor");
                let f = q.dequantize(&Device::Cpu).expect("dequantize");
                tensors.push((
                    name.clone(),
                    QTensor::quantize(&f, GgmlDType::F32).expect("f32"),
                ));
            }
            let metadata: Vec<(&str, &Value)> = content
                .metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v))
                .collect();
            let tensors: Vec<(&str, &QTensor)> =
                tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let mut buffer = Cursor::new(Vec::new());
            gguf_file::write(&mut buffer, &metadata, &tensors).expect("write the f32 GGUF");
            buffer.set_position(0);
            let content = Content::read(&mut buffer).expect("read the f32 GGUF");
            let model = ModelWeights::from_gguf(content, &mut buffer, &Device::Cpu)
                .expect("load the f32 reference model");
            Some(Mutex::new(model))
        })
        .as_ref()
}

/// A reference model's logits after `tokens` (a fresh pass: index 0 resets its cache).
fn reference_last(model: &Mutex<ModelWeights>, tokens: &[u32]) -> Vec<f32> {
    let mut model = model.lock().expect("reference lock");
    let input = Tensor::new(tokens, &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("input tensor");
    let logits = model.forward(&input, 0).expect("reference forward");
    logits.squeeze(0).and_then(|t| t.to_vec1()).expect("logits")
}

fn row(logits: &Tensor, i: usize) -> Vec<f32> {
    logits.i(i).and_then(|t| t.to_vec1()).expect("logits row")
}

fn rows(logits: &Tensor) -> Vec<Vec<f32>> {
    logits.to_vec2().expect("logits rows")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// (a) The architecture matches candle-transformers: on the same f32 weights, at every
/// position, the row of `forward_all` equals the reference's last-position logits for that
/// prefix; on the file's Q4_1 weights the top predictions agree.
#[test]
fn forward_all_matches_candle_transformers() {
    let Some(model) = f32_model() else { return };
    let cfg = model.config();
    assert_eq!(
        (
            cfg.vocab_size,
            cfg.hidden,
            cfg.layers,
            cfg.heads,
            cfg.kv_heads
        ),
        (49152, 576, 30, 9, 3)
    );
    assert_eq!(
        (cfg.head_dim, cfg.rope_theta, cfg.rms_eps as f32),
        (64, 100_000.0, 1e-5)
    );
    let f32_ref = f32_reference().expect("loads when the model does");
    let all = model.forward_all(ONCE).expect("forward_all");
    assert_eq!(all.dims(), &[ONCE.len(), cfg.vocab_size]);
    let mut worst = 0f32;
    for len in 1..=ONCE.len() {
        let ours = row(&all, len - 1);
        let theirs = reference_last(f32_ref, &ONCE[..len]);
        worst = worst.max(max_abs_diff(&ours, &theirs));
        assert_eq!(argmax(&ours), argmax(&theirs), "prefix {len}: argmax");
    }
    eprintln!("f32: max |ours - candle-transformers| = {worst:.2e}");
    assert!(worst < REFERENCE_TOL, "f32 logits differ by {worst}");

    let Some(model) = file_quant() else { return };
    let q4_ref = reference().expect("loads when the model does");
    let all = model.forward_all(ONCE).expect("forward_all");
    let mut worst = 0f32;
    for len in 1..=ONCE.len() {
        let ours = row(&all, len - 1);
        let theirs = reference_last(q4_ref, &ONCE[..len]);
        worst = worst.max(max_abs_diff(&ours, &theirs));
        assert_eq!(argmax(&ours), argmax(&theirs), "Q4_1, prefix {len}: argmax");
    }
    eprintln!("Q4_1: max |ours - candle-transformers| = {worst:.2e}");
}

/// (d) A known prompt: the same top prediction as candle-transformers, and it is " Paris".
#[test]
fn known_prompt_argmax() {
    let Some(model) = file_quant() else { return };
    let ours = model.forward_all(FRANCE).expect("forward_all");
    let ours = row(&ours, FRANCE.len() - 1);
    let theirs = reference_last(reference().expect("loads"), FRANCE);
    assert_eq!(argmax(&ours), argmax(&theirs));
    assert_eq!(argmax(&ours), PARIS, "The capital of France is ...");
    // The default (Q8_0) model agrees.
    let q8 = default_quant().expect("loads when the file model does");
    let q8 = q8.forward_all(FRANCE).expect("forward_all");
    assert_eq!(argmax(&row(&q8, FRANCE.len() - 1)), PARIS);
}

/// Reading mode: the prediction for each position of the text is the argmax of the row before
/// it, with or without a prompt in front.
#[test]
fn reading_mode_predicts_the_argmax_at_every_position() {
    let Some(model) = default_quant() else { return };
    let all = rows(&model.forward_all(ONCE).expect("forward_all"));
    let (prompt, text) = ONCE.split_at(4);
    let predictions = top1_predictions(model, prompt, text).expect("reads");
    assert_eq!(predictions.len(), text.len());
    for (i, &p) in predictions.iter().enumerate() {
        assert_eq!(p, argmax(&all[prompt.len() + i - 1]), "position {i}");
    }
    let predictions = top1_predictions(model, &[], ONCE).expect("reads");
    assert_eq!(predictions[0], ONCE[0]);
    for i in 1..ONCE.len() {
        assert_eq!(predictions[i], argmax(&all[i - 1]), "position {i}");
    }
    assert!(top1_predictions(model, prompt, &[])
        .expect("reads")
        .is_empty());
}

/// (b) The KV cache: prefill then one step per token gives, at every position, the logits of
/// the uncached pass over the whole text (bit for bit).
#[test]
fn cached_steps_match_forward_all() {
    let Some(model) = default_quant() else { return };
    cached_steps(model);
    cached_steps(fast_quant().expect("loads when the model does"));
}

fn cached_steps(model: &Llama) {
    let all = rows(&model.forward_all(ONCE).expect("forward_all"));
    let split = 4;
    let (mut session, logits) = model.prefill(&[ONCE[..split].to_vec()]).expect("prefill");
    let mut worst = max_abs_diff(&rows(&logits)[0], &all[split - 1]);
    for (i, &token) in ONCE.iter().enumerate().skip(split) {
        let logits = model.step(&mut session, &[token]).expect("step");
        worst = worst.max(max_abs_diff(&rows(&logits)[0], &all[i]));
    }
    assert_eq!(session.seq_len(0), Some(ONCE.len()));
    eprintln!("max |cached - uncached| = {worst:.2e}");
    assert!(worst <= CACHE_TOL, "cached logits differ by {worst}");
}

/// Greedy generation of `steps` tokens from a prepared session; the logits rows of every call.
fn greedy(
    model: &Llama,
    session: &mut Session,
    first: &Tensor,
    steps: usize,
) -> Vec<Vec<Vec<f32>>> {
    let mut out = vec![rows(first)];
    for _ in 0..steps {
        let next: Vec<u32> = out
            .last()
            .map(|l| l.iter().map(|r| argmax(r)).collect())
            .unwrap_or_default();
        let logits = model.step(session, &next).expect("step");
        out.push(rows(&logits));
    }
    out
}

/// (c) A batch of prompts of different lengths (left-padded) behaves as each prompt alone:
/// same logits (bit for bit) at every step and the same greedy continuation; dropping a
/// sequence midway (`Session::retain`) changes nothing for the others.
#[test]
fn batch_matches_single() {
    let Some(model) = default_quant() else { return };
    batch_vs_single(model);
    batch_vs_single(fast_quant().expect("loads when the model does"));
}

fn batch_vs_single(model: &Llama) {
    const STEPS: usize = 10;
    let prompts = [FRANCE.to_vec(), ONCE.to_vec(), FOX.to_vec()];
    let alone: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .map(|p| {
            let (mut s, first) = model
                .prefill(std::slice::from_ref(p))
                .expect("prefill alone");
            greedy(model, &mut s, &first, STEPS)
                .into_iter()
                .map(|mut r| r.remove(0))
                .collect()
        })
        .collect();

    let (mut session, first) = model.prefill(&prompts).expect("prefill batch");
    assert_eq!(session.batch_size(), 3);
    let batch = greedy(model, &mut session, &first, STEPS);
    let mut worst = 0f32;
    for (step, rows) in batch.iter().enumerate() {
        for (b, r) in rows.iter().enumerate() {
            worst = worst.max(max_abs_diff(r, &alone[b][step]));
            assert_eq!(
                argmax(r),
                argmax(&alone[b][step]),
                "sequence {b}, step {step}"
            );
        }
    }
    eprintln!("max |batched - alone| = {worst:.2e}");
    assert!(worst <= CACHE_TOL, "batched logits differ by {worst}");
    for (b, prompt) in prompts.iter().enumerate() {
        assert_eq!(session.seq_len(b), Some(prompt.len() + STEPS));
    }

    // Drop the longest prompt after 3 steps and swap the other two: their outputs go on as alone.
    let (mut session, first) = model.prefill(&prompts).expect("prefill batch");
    let mut last = rows(&first);
    let alone_at = |b: usize, step: usize| &alone[b][step];
    for step in 1..=STEPS {
        if step == 4 {
            session.retain(&[2, 0]).expect("retain");
            last = vec![last[2].clone(), last[0].clone()];
        }
        let next: Vec<u32> = last.iter().map(|r| argmax(r)).collect();
        last = rows(&model.step(&mut session, &next).expect("step"));
        let ids: &[usize] = if step >= 4 { &[2, 0] } else { &[0, 1, 2] };
        for (r, &b) in last.iter().zip(ids) {
            let diff = max_abs_diff(r, alone_at(b, step));
            assert!(
                diff <= CACHE_TOL,
                "after retain: sequence {b}, step {step}: {diff}"
            );
        }
    }
    assert_eq!(session.batch_size(), 2);
    assert_eq!(session.seq_len(0), Some(FOX.len() + STEPS));
}

/// Bad input is refused with an input error that names the problem, never a panic.
#[test]
fn bad_input_is_an_input_error() {
    let Some(model) = default_quant() else { return };
    let vocab = model.config().vocab_size as u32;
    let context = model.config().context_length;
    let long = vec![1u32; context + 1];
    for (tokens, needle) in [
        (&[][..], "empty token sequence"),
        (&[1, vocab][..], "outside the vocabulary"),
        (&long[..], "exceeds the context length"),
    ] {
        match model.forward_all(tokens) {
            Err(tracemark_model::Error::Input(message)) => {
                assert!(message.contains(needle), "{message}")
            }
            other => panic!("expected an input error for {needle}, got {other:?}"),
        }
    }
    let input_error =
        |r: tracemark_model::Result<()>| matches!(r, Err(tracemark_model::Error::Input(_)));
    assert!(input_error(
        top1_predictions(model, &[vocab], &[1]).map(drop)
    ));
    assert!(input_error(model.prefill(&[]).map(drop)));
    assert!(input_error(model.prefill(&[vec![1], vec![]]).map(drop)));
    let (mut session, _) = model.prefill(&[vec![1], vec![1, 2]]).expect("prefill");
    assert!(input_error(model.step(&mut session, &[1]).map(drop)));
    assert!(input_error(session.retain(&[2])));
}
