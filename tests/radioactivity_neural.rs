//! Neural students: the differentiable llama of `tracemark_lab::neural` against the inference
//! llama, and small transformers trained by gradient descent on the synthetic teacher's
//! answers, saved as GGUF files and audited through `tracemark_model` like any suspect model.
//!
//! Thresholds (fixed seeds):
//! - training works: the mean loss of the last tenth of the steps is at least 0.5 nats below
//!   that of the first tenth;
//! - power: the student of 100% watermarked answers is flagged at p < 1e-6 in reading mode;
//! - null: the student of plain answers is not flagged at the 0.001 level (log10 p > −3) in
//!   reading mode nor closed: under the null hypothesis each audit has at most a 0.001 chance
//!   of failing this.
//!
//! `make radioactivity-neural` runs the experiment on the real model.

#![allow(clippy::unwrap_used)]

mod support;
#[path = "support/synthetic_teacher.rs"]
mod synthetic_teacher;

use std::path::Path;

use tracemark_lab::neural::{
    load_pretrained, train, write_gguf, Example, NeuralConfig, NeuralLlama, PrefixCache,
    SavedDType, TrainOptions, Tuning,
};
use tracemark_lab::radioactivity::{audit_outputs, audit_reading, Sample};
use tracemark_model::generate::{run, Job, Limits, Tokens};
use tracemark_model::llama::{Llama, LoadOptions};
use tracemark_model::reading::top1_predictions;
use watermark_core::{AuditOptions, GreenList, Sampling};

use synthetic_teacher::{answers, green, prompts, ANSWER_LEN, VOCAB};

/// A small llama: 2 blocks of width 64 over the synthetic vocabulary.
fn small_config() -> NeuralConfig {
    NeuralConfig {
        vocab_size: VOCAB as usize,
        hidden: 64,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        ffn: 128,
        rope_theta: 10_000.0,
        rms_eps: 1e-5,
        context_length: 128,
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tracemark-neural-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small student trained on `training`, saved as a GGUF file at `path` and loaded back by the
/// inference llama.
fn student(training: &[Sample], path: &Path) -> Llama {
    let model = NeuralLlama::random(small_config(), 7).unwrap();
    let examples: Vec<Example> = training
        .iter()
        .map(|s| Example::new(&s.prompt_ids, &s.response_ids, None))
        .collect();
    let options = TrainOptions {
        epochs: 8,
        batch_size: 16,
        learning_rate: 3e-3,
        warmup: 10,
        weight_decay: 0.0,
        seed: 1,
    };
    let report = train(&model, &examples, &options, &mut PrefixCache::new(), |_| {}).unwrap();
    eprintln!(
        "student: {} steps, loss {:.3} -> {:.3}, {:.1} s",
        report.steps, report.first_loss, report.last_loss, report.seconds
    );
    assert!(
        report.last_loss < report.first_loss - 0.5,
        "training did not lower the loss: {:.3} -> {:.3}",
        report.first_loss,
        report.last_loss
    );
    write_gguf(&model, None, path, SavedDType::Q8_0).unwrap();
    Llama::load(path, &LoadOptions::default()).unwrap()
}

fn reading_log10_p(model: &Llama, g: &GreenList, texts: &[Sample]) -> f64 {
    let refs: Vec<&Sample> = texts.iter().collect();
    let predictions: Vec<Vec<u32>> = texts
        .iter()
        .map(|s| top1_predictions(model, &s.prompt_ids, &s.response_ids).unwrap())
        .collect();
    let r = audit_reading(g, &refs, &predictions, None, &AuditOptions::default()).unwrap();
    r.header.score.log10_p_value
}

fn closed_log10_p(model: &Llama, g: &GreenList) -> f64 {
    let jobs: Vec<Job> = prompts(40, 2)
        .into_iter()
        .enumerate()
        .map(|(i, p)| Job {
            prompt_ids: p,
            green: None,
            sampling: Sampling::new(0.7, None, None).unwrap(),
            seed: 500 + i as u64,
        })
        .collect();
    let limits = Limits {
        max_tokens: ANSWER_LEN,
        min_tokens: 0,
        batch_size: 8,
    };
    let outputs = run(model, &[], &jobs, limits, Tokens(|_, _| {})).unwrap();
    let samples: Vec<Sample> = jobs
        .iter()
        .zip(outputs)
        .map(|(j, o)| Sample {
            prompt_ids: j.prompt_ids.clone(),
            response_ids: o.tokens,
        })
        .collect();
    let r = audit_outputs(g, &samples, None, &AuditOptions::default()).unwrap();
    r.header.score.log10_p_value
}

#[test]
fn a_small_neural_student_of_watermarked_answers_is_flagged_and_one_of_plain_answers_is_not() {
    let dir = temp_dir("small");
    let g = green(0);
    let train_prompts = prompts(48, 1);
    let ours = answers(Some(&g), &train_prompts, 1000);
    let plain = answers(None, &train_prompts, 2000);

    let marked = student(&ours, &dir.join("marked.gguf"));
    let innocent = student(&plain, &dir.join("innocent.gguf"));
    let (marked_reading, innocent_reading) = (
        reading_log10_p(&marked, &g, &ours),
        reading_log10_p(&innocent, &g, &ours),
    );
    let (marked_closed, innocent_closed) =
        (closed_log10_p(&marked, &g), closed_log10_p(&innocent, &g));
    eprintln!(
        "reading: marked {marked_reading:.1}, innocent {innocent_reading:.1}; closed: marked {marked_closed:.1}, innocent {innocent_closed:.1}"
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        marked_reading < -6.0,
        "ρ = 100% student, reading: log10 p = {marked_reading}"
    );
    assert!(
        innocent_reading > -3.0,
        "ρ = 0 student, reading: log10 p = {innocent_reading}"
    );
    assert!(
        innocent_closed > -3.0,
        "ρ = 0 student, closed: log10 p = {innocent_closed}"
    );
}

/// The trainable forward pass computes what the inference llama computes on the same weights
/// (the file's, unquantized), and a saved, untrained student is the default model again.
#[test]
fn the_trainable_llama_starts_as_the_default_model() {
    let Some(path) = support::model_path() else {
        return;
    };
    let dir = temp_dir("pretrained");
    let reference = Llama::load(
        &path,
        &LoadOptions {
            requantize: Some(candle_core::quantized::GgmlDType::F32),
            fast_matmul: false,
        },
    )
    .unwrap();
    let tokens: Vec<u32> = (0..48u32).map(|i| 1 + (i * 7919) % 40_000).collect();
    let model = load_pretrained(&path, Tuning::TopBlocks { blocks: 2 }, 1).unwrap();
    let ours = model.forward_all(&tokens).unwrap();
    let theirs = reference.forward_all(&tokens).unwrap();
    let max_diff = (&ours - &theirs)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(max_diff < 1e-2, "max |Δ logit| = {max_diff}");
    let top1 = |t: &candle_core::Tensor| t.argmax(1).unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(top1(&ours), top1(&theirs));

    let saved = dir.join("untrained.gguf");
    write_gguf(&model, Some(&path), &saved, SavedDType::Q8_0).unwrap();
    // As the experiment loads them (`LoadOptions::candle`: every matrix re-quantized to Q8_0, so
    // the student's Q8_0 file and the teacher's Q4_1 one run alike). tracemark's default kernel
    // runs the teacher's Q4_1 as stored, which a Q8_0 copy only approximates (41/48 here).
    let generator = tracemark_model::generate::Generator::load(&saved, &LoadOptions::candle());
    let student = generator.unwrap();
    let teacher = Llama::load(&path, &LoadOptions::candle()).unwrap();
    let a = top1(&student.model().forward_all(&tokens).unwrap());
    let b = top1(&teacher.forward_all(&tokens).unwrap());
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        agree * 100 >= 95 * a.len(),
        "top-1 agreement {agree}/{}",
        a.len()
    );
}
