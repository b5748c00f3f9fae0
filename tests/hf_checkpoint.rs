//! Hugging Face checkpoints (`tracemark_model::checkpoint`): the default model written as a
//! llama checkpoint reads like the GGUF model it came from, generation from it goes through
//! the one loop with its KV caches, a tiny random Qwen2 checkpoint in bf16 loads and runs, and
//! broken or hostile checkpoints are refused with one line.
//!
//! The llama tests need the model file (`make model`); without it they print a note and pass,
//! unless `CI=true` or `TRACEMARK_REQUIRE_MODEL=1`. The checkpoint (540 MB of f32) is written
//! under the target's scratch directory and removed at the end.

// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use tracemark_model::checkpoint::{Checkpoint, Family};
use tracemark_model::generate::{self, Job, Limits, LogitsSource};
use tracemark_model::llama::{Llama, LoadOptions};
use tracemark_model::reading::top1_predictions;
use tracemark_model::{Error, GgufTokenizer, SuspectModel};
use watermark_core::Sampling;

mod support;
use support::model_path;

#[path = "support/hf_export.rs"]
mod hf_export;
use hf_export::TempDir;

/// A passage of ordinary English for the reading pass (about 300 tokens).
const PASSAGE: &str = "The lighthouse keeper climbed the spiral stairs every evening at dusk, \
carrying a can of oil and a cloth for the lens. For thirty years he had kept the light burning \
through storms and calm nights alike, and the ships that passed the rocky headland trusted it \
without a second thought. His daughter, who had grown up on the island, learned to read the \
weather from the colour of the sky and the shape of the clouds. In the winter, when the supply \
boat could not reach them for weeks, they lived on salted fish, potatoes from the small garden \
behind the house, and bread baked in the iron stove. She kept a notebook of every ship she saw, \
writing down its name, its flag and the direction it sailed. Years later, when the light was \
automated and the keeper moved to the mainland, she gave the notebooks to the town museum, \
where visitors can still turn their pages and imagine the long nights on the island. The \
museum also keeps the old brass lens, polished and mounted in a glass case, and a map of the \
coast on which every wreck of the last two centuries is marked with a small red cross. \
Children who visit are often surprised to learn how many ships were lost before the light was \
built, and how few after it.";

/// Top-1 agreement the checkpoint must reach against the GGUF model run exactly (f32): the
/// same weights through two implementations differ only in summation order, so a disagreement
/// needs two candidates within rounding of each other.
const MIN_AGREEMENT: f64 = 0.99;

fn scratch() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The first line of an error, and a check that it is the only one.
fn one_line(e: &Error) -> String {
    let text = e.to_string();
    assert!(!text.contains('\n'), "a multi-line error: {text}");
    text
}

#[test]
fn the_default_model_as_a_checkpoint_reads_and_generates_like_the_gguf() {
    let Some(path) = model_path() else { return };
    let exact = LoadOptions {
        requantize: Some(GgmlDType::F32),
        ..LoadOptions::default()
    };
    let started = std::time::Instant::now();
    let reference = Llama::load(&path, &exact).expect("the model loads");
    eprintln!("gguf loaded: {:?}", started.elapsed());
    let dir = TempDir::new(&scratch(), "hf-smollm2");
    hf_export::export(&path, reference.config(), &dir.0);
    eprintln!("checkpoint written: {:?}", started.elapsed());

    let (suspect, tokenizer) = SuspectModel::load(&dir.0, &exact).expect("the checkpoint loads");
    let gguf_tokenizer = GgufTokenizer::from_file(&path)
        .unwrap()
        .text_tokenizer()
        .unwrap();
    assert_eq!(tokenizer.fingerprint(), gguf_tokenizer.fingerprint());
    eprintln!("checkpoint loaded: {:?}", started.elapsed());
    let SuspectModel::Checkpoint(checkpoint) = &suspect else {
        panic!("a directory loads as a checkpoint")
    };
    assert!(matches!(checkpoint.config().family, Family::Llama(_)));

    let text = tokenizer.encode(PASSAGE).unwrap();
    assert!(text.len() >= 250, "{} tokens", text.len());
    let ours = top1_predictions(&suspect, &[], &text).unwrap();
    eprintln!("checkpoint read the text: {:?}", started.elapsed());
    let theirs = top1_predictions(&reference, &[], &text).unwrap();
    let agree = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
    let rate = agree as f64 / text.len() as f64;
    eprintln!("top-1 agreement {agree}/{} = {rate:.4}", text.len());
    assert!(
        rate >= MIN_AGREEMENT,
        "top-1 agreement {rate:.4} < {MIN_AGREEMENT}"
    );

    generation_uses_the_caches(checkpoint, &text);
    eprintln!("generation checked: {:?}", started.elapsed());
}

/// Prefill and steps through the KV caches give the rows of a full reading pass, rows of a
/// batch are independent, and the generation loop runs on the checkpoint.
fn generation_uses_the_caches(checkpoint: &Checkpoint, text: &[u32]) {
    let contexts = vec![text[..7].to_vec(), text[..4].to_vec()];
    let (mut session, first) = checkpoint.prefill(&contexts).unwrap();
    let next = [text[7], text[4]];
    let second = checkpoint.step(&mut session, &next).unwrap();
    checkpoint.retain(&mut session, &[1]).unwrap();
    let third = checkpoint.step(&mut session, &[text[5]]).unwrap();
    let full = checkpoint
        .forward_all(&text[..8])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_close(&first[0], &full[6]);
    assert_close(&second[0], &full[7]);
    assert_close(&first[1], &full[3]);
    assert_close(&second[1], &full[4]);
    assert_close(&third[0], &full[5]);

    let job = Job {
        prompt_ids: text[..10].to_vec(),
        green: None,
        sampling: Sampling::Greedy,
        seed: 1,
    };
    let limits = Limits {
        max_tokens: 6,
        min_tokens: 0,
        batch_size: 2,
    };
    let outputs = generate::run(checkpoint, &[], &[job.clone(), job], limits, ()).unwrap();
    assert_eq!(outputs[0].tokens.len(), 6);
    assert_eq!(
        outputs[0].tokens, outputs[1].tokens,
        "greedy rows of one batch agree"
    );
    let mut sequence = text[..10].to_vec();
    sequence.extend(&outputs[0].tokens[..5]);
    let rows = checkpoint
        .forward_all(&sequence)
        .unwrap()
        .argmax(1)
        .unwrap();
    let greedy = rows.to_vec1::<u32>().unwrap();
    assert_eq!(
        &greedy[9..],
        &outputs[0].tokens[..],
        "greedy tokens are the argmax"
    );
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-3, "logits differ by {worst}");
}

// ----- A tiny random Qwen2 checkpoint, and refusals -----

const TINY_VOCAB: usize = 16;
const TINY_HIDDEN: usize = 32;
const TINY_INTERMEDIATE: usize = 48;
const TINY_LAYERS: usize = 2;
const TINY_KV: usize = 2 * (TINY_HIDDEN / 4);

fn tiny_config() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": TINY_HIDDEN,
        "intermediate_size": TINY_INTERMEDIATE,
        "vocab_size": TINY_VOCAB,
        "num_hidden_layers": TINY_LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "max_position_embeddings": 64,
        "sliding_window": 64,
        "use_sliding_window": false,
        "max_window_layers": TINY_LAYERS,
        "tie_word_embeddings": false,
        "hidden_act": "silu",
        "torch_dtype": "bfloat16",
    })
}

/// A word-level tokenizer over `w0`..`w15`.
fn tiny_tokenizer() -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..TINY_VOCAB)
        .map(|i| (format!("w{i}"), i.into()))
        .collect();
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    })
}

/// Deterministic values in [-0.1, 0.1) from a linear congruential generator.
fn values(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

fn tiny_tensors() -> HashMap<String, Tensor> {
    let (h, i, v, kv) = (TINY_HIDDEN, TINY_INTERMEDIATE, TINY_VOCAB, TINY_KV);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![v, h]),
        ("model.norm.weight".into(), vec![h]),
        ("lm_head.weight".into(), vec![v, h]),
    ];
    for l in 0..TINY_LAYERS {
        let p = format!("model.layers.{l}");
        for (name, shape) in [
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![h, h]),
            ("self_attn.q_proj.bias", vec![h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.k_proj.bias", vec![kv]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.bias", vec![kv]),
            ("self_attn.o_proj.weight", vec![h, h]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
        ] {
            shapes.push((format!("{p}.{name}"), shape));
        }
    }
    let mut seed = 7;
    shapes
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            let mut data = values(n, &mut seed);
            if name.ends_with("norm.weight") {
                data.iter_mut().for_each(|x| *x += 1.0);
            }
            let t = Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
            (name, t.to_dtype(DType::BF16).unwrap())
        })
        .collect()
}

/// Writes a tiny Qwen2 checkpoint into `dir`, with `config` and `tensors`.
fn write_tiny(dir: &Path, config: &serde_json::Value, tensors: &HashMap<String, Tensor>) {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tiny_tokenizer().to_string()).unwrap();
    candle_core::safetensors::save(tensors, dir.join("model.safetensors")).unwrap();
}

#[test]
fn a_tiny_bf16_qwen2_checkpoint_loads_and_runs() {
    let dir = TempDir::new(&scratch(), "hf-tiny-qwen2");
    write_tiny(&dir.0, &tiny_config(), &tiny_tensors());
    let (checkpoint, tokenizer) = Checkpoint::load(&dir.0).unwrap();
    assert!(matches!(checkpoint.config().family, Family::Qwen2(_)));
    let tokens = tokenizer.encode("w3 w1 w4 w1 w5 w9 w2 w6").unwrap();
    assert_eq!(tokens, [3, 1, 4, 1, 5, 9, 2, 6]);
    let logits = checkpoint.forward_all(&tokens).unwrap();
    assert_eq!(logits.dims(), [tokens.len(), TINY_VOCAB]);
    let rows = logits.to_vec2::<f32>().unwrap();
    assert!(rows.iter().flatten().all(|x| x.is_finite()));
    // Causal: a row does not depend on later tokens.
    let prefix = checkpoint
        .forward_all(&tokens[..3])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_close(&prefix[2], &rows[2]);
    // Random weights still give position-dependent rows.
    assert_ne!(
        rows[1], rows[3],
        "the same token at two positions gets the same logits"
    );
    // Cached generation gives the rows of the reading pass.
    let (mut session, first) = checkpoint.prefill(&[tokens[..5].to_vec()]).unwrap();
    let next = checkpoint.step(&mut session, &[tokens[5]]).unwrap();
    assert_close(&first[0], &rows[4]);
    assert_close(&next[0], &rows[5]);
    // NaN weights give NaN logits: refused, not read as predictions of token 0.
    let mut broken = tiny_tensors();
    let nan = Tensor::full(f32::NAN, TINY_HIDDEN, &Device::Cpu).unwrap();
    broken.insert(
        "model.norm.weight".into(),
        nan.to_dtype(DType::BF16).unwrap(),
    );
    let broken_dir = TempDir::new(&scratch(), "hf-tiny-nan");
    write_tiny(&broken_dir.0, &tiny_config(), &broken);
    let (nan_model, _) = Checkpoint::load(&broken_dir.0).unwrap();
    let err = nan_model.forward_all(&tokens).unwrap_err();
    assert!(one_line(&err).contains("non-finite logits"), "{err}");
    assert!(nan_model.prefill(std::slice::from_ref(&tokens)).is_err());
    let long = vec![1; 65];
    assert!(matches!(
        checkpoint.forward_all(&long),
        Err(Error::Input(_))
    ));
    assert!(matches!(
        checkpoint.forward_all(&[16]),
        Err(Error::Input(_))
    ));
}

/// Loads a tiny checkpoint changed by `change`, expecting a one-line refusal containing `want`.
fn refused(
    what: &str,
    want: &str,
    change: impl FnOnce(&Path, &mut serde_json::Value, &mut HashMap<String, Tensor>),
) {
    let dir = TempDir::new(&scratch(), &format!("hf-refused-{what}"));
    let mut config = tiny_config();
    let mut tensors = tiny_tensors();
    write_tiny(&dir.0, &config, &tensors);
    change(&dir.0, &mut config, &mut tensors);
    if dir.0.join("config.json").is_file() {
        std::fs::write(dir.0.join("config.json"), config.to_string()).unwrap();
    }
    if !tensors.is_empty() {
        candle_core::safetensors::save(&tensors, dir.0.join("model.safetensors")).unwrap();
    }
    let err = Checkpoint::load(&dir.0).expect_err(what);
    let line = one_line(&err);
    eprintln!("{what}: {line}");
    assert!(matches!(err, Error::Checkpoint { .. }), "{what}: {line}");
    assert!(line.contains(want), "{what}: {line}");
}

#[test]
fn broken_and_hostile_checkpoints_are_refused_in_one_line() {
    refused(
        "arch",
        "unsupported architecture 'MistralForCausalLM'",
        |_, c, _| {
            c["architectures"] = serde_json::json!(["MistralForCausalLM"]);
        },
    );
    refused(
        "missing",
        "missing tensor model.layers.1.mlp.up_proj.weight",
        |_, _, t| {
            t.remove("model.layers.1.mlp.up_proj.weight");
        },
    );
    refused(
        "shape",
        "tensor lm_head.weight has shape [16, 16]",
        |_, _, t| {
            let wrong = Tensor::zeros((16, 16), DType::F32, &Device::Cpu).unwrap();
            t.insert("lm_head.weight".into(), wrong);
        },
    );
    refused("dtype", "tensor model.norm.weight is", |_, _, t| {
        let ints = Tensor::zeros(TINY_HIDDEN, DType::U32, &Device::Cpu).unwrap();
        t.insert("model.norm.weight".into(), ints);
    });
    refused(
        "layers",
        "num_hidden_layers 4000000000 is outside",
        |_, c, _| {
            c["num_hidden_layers"] = serde_json::json!(4_000_000_000u64);
        },
    );
    refused(
        "hidden",
        "hidden_size 1099511627776 is outside",
        |_, c, _| {
            c["hidden_size"] = serde_json::json!(1u64 << 40);
        },
    );
    refused("vocab", "vocab_size 1000000000 is outside", |_, c, _| {
        c["vocab_size"] = serde_json::json!(1_000_000_000);
    });
    refused(
        "positions",
        "max_position_embeddings 2097152 is outside",
        |_, c, _| {
            c["max_position_embeddings"] = serde_json::json!(1 << 21);
        },
    );
    refused("rope", "RoPE tables", |_, c, _| {
        c["hidden_size"] = serde_json::json!(16384);
        c["max_position_embeddings"] = serde_json::json!(1 << 20);
    });
    refused("tokenizer", "no tokenizer.json", |dir, _, _| {
        std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    });
    refused("weights", "no *.safetensors weights", |dir, _, t| {
        std::fs::remove_file(dir.join("model.safetensors")).unwrap();
        t.clear();
    });
    refused(
        "index",
        "is not a file name in the checkpoint",
        |dir, _, _| {
            let index =
                serde_json::json!({"weight_map": {"lm_head.weight": "../elsewhere.safetensors"}});
            std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        },
    );
    refused("truncated", "checkpoint:", |dir, _, t| {
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        t.clear();
    });
    refused("device", "is not a regular file", |dir, _, t| {
        let path = dir.join("model.safetensors");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        t.clear();
    });
    refused(
        "not-a-file",
        "config.json is not a regular file",
        |dir, _, _| {
            std::fs::remove_file(dir.join("config.json")).unwrap();
            std::fs::create_dir(dir.join("config.json")).unwrap();
        },
    );
    let missing = scratch().join("no-such-checkpoint");
    let err = Checkpoint::load(&missing).unwrap_err();
    assert!(one_line(&err).contains("not a checkpoint directory"));
}
