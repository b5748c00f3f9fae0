//! `tracemark vllm-keygen`, then `detect` and `audit --suspect` on a `vllm-gumbel-philox-v1`
//! profile: Gumbel-max text written with the profile's key is flagged, text written without it
//! is not, and no output shows the key.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use watermark_core::vllm::{read_key, uniform, PAD_TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_tracemark");

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tracemark-vllm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test directory");
    dir
}

/// (exit code, stdout, stderr)
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run tracemark");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Gumbel-max sampling over a flat 500-token distribution, with vLLM's PRF under `key`.
fn gumbel_text(key: u64, width: usize, length: usize, salt: u32) -> Vec<u32> {
    let mut tokens = Vec::new();
    let mut context = vec![PAD_TOKEN; width];
    for step in 0..length {
        // A flat distribution with a small salted tilt, so different documents differ.
        let best = (0..500u32)
            .max_by(|&a, &b| {
                let score = |t: u32| {
                    let tilt = if (t ^ salt ^ step as u32) % 7 == 0 {
                        0.3
                    } else {
                        0.0
                    };
                    f64::from(uniform(key, &context, i64::from(t))).ln() / (1.0 + tilt)
                };
                score(a).total_cmp(&score(b))
            })
            .unwrap_or(0);
        tokens.push(best);
        context.remove(0);
        context.push(i64::from(best));
    }
    tokens
}

fn write_jsonl(path: &Path, docs: &[Vec<u32>], field: &str) {
    let text: String = docs
        .iter()
        .map(|d| format!("{{\"prompt_tokens\": [1, 2, 3], \"{field}\": {:?}}}\n", d))
        .collect();
    std::fs::write(path, text).expect("write");
}

#[test]
fn vllm_profiles_detect_and_audit_the_native_watermark() {
    let dir = temp_dir("native");
    let keys = dir.join("keys");
    let (code, made, err) = run(&["vllm-keygen", "--out", keys.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        made.contains("vllm-gumbel-philox-v1") && made.contains("$(cat "),
        "{made}"
    );
    let key = read_key(&keys.join("vllm.key")).expect("key");
    let profile = keys.join("profile.toml");
    let profile = profile.to_str().unwrap();

    let marked: Vec<Vec<u32>> = (0..4).map(|i| gumbel_text(key, 4, 40, i)).collect();
    let plain: Vec<Vec<u32>> = (0..4).map(|i| gumbel_text(key ^ 0xFF, 4, 40, i)).collect();
    let marked_path = dir.join("marked.jsonl");
    let plain_path = dir.join("plain.jsonl");
    write_jsonl(&marked_path, &marked, "tokens");
    write_jsonl(&plain_path, &plain, "tokens");

    let (code, out, err) = run(&[
        "detect",
        "--profile",
        profile,
        "--json",
        marked_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for line in &lines {
        assert_eq!(line["scheme"], "vllm-gumbel-philox-v1");
        assert_eq!(line["watermarked"], true, "{line}");
        assert!(line["log10_p_value"].as_f64().unwrap() < -6.0, "{line}");
    }
    let (code, out, _) = run(&[
        "detect",
        "--profile",
        profile,
        "--fail-if-watermarked",
        plain_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 documents, 0 watermarked"), "{out}");

    // The pooled closed-model audit, as `tracemark audit` reads a suspect's answers.
    write_jsonl(&marked_path, &marked, "response_tokens");
    let (code, out, err) = run(&[
        "audit",
        "--profile",
        profile,
        "--suspect",
        marked_path.to_str().unwrap(),
        "--fail-if-watermarked",
    ]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("verdict at FPR") && out.contains("WATERMARKED"),
        "{out}"
    );
    write_jsonl(&plain_path, &plain, "response_tokens");
    let (code, out, err) = run(&[
        "audit",
        "--profile",
        profile,
        "--suspect",
        plain_path.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["watermarked"], false, "{report}");
    // 4 answers of 40 tokens, less the first 4 of each (partial contexts).
    assert!(report["scored"].as_u64().unwrap() <= 144, "{report}");

    // Options of the green-list family are refused, not ignored.
    let (code, _, err) = run(&[
        "detect",
        "--profile",
        profile,
        "--windowed",
        plain_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not available"), "{err}");
    // No output holds the key.
    let secret = key.to_string();
    assert!(!made.contains(&secret) && !out.contains(&secret));
    let _ = std::fs::remove_dir_all(&dir);
}
