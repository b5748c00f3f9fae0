//! `tracemark vllm-keygen`, then `detect` and `audit --suspect` on a `vllm-gumbel-philox-v1`
//! profile (`gumbel` and `dual_key_gumbel`): Gumbel-max text written with the profile's key is
//! flagged, text written without it is not, and no output shows the key. Reading mode
//! (`audit --suspect-model`) on the default model, an innocent reader, is not flagged.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use watermark_core::vllm::{derive_watermark_key, key_fingerprint, read_key, uniform, PAD_TOKEN};

mod support;

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
                    let tilt = if (t ^ salt ^ step as u32).is_multiple_of(7) {
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

/// vLLM's `dual_key_gumbel` generation over a flat 500-token distribution: the token at each
/// step is Gumbel-max under key B when a fixed hash of the step falls below alpha, else key A.
fn dual_key_text(key: u64, alpha: f64, length: usize, salt: u64) -> Vec<u32> {
    let keys = [
        derive_watermark_key(key, b"key_a"),
        derive_watermark_key(key, b"key_b"),
    ];
    let mut tokens = Vec::new();
    let mut context = vec![PAD_TOKEN; 4];
    for step in 0..length as u64 {
        let h = (step ^ (salt << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        let use_b = (h as f64 / (1u64 << 53) as f64) < alpha;
        let k = keys[usize::from(use_b)];
        let best = (0..500u32)
            .max_by(|&a, &b| {
                let ua = uniform(k, &context, i64::from(a));
                let ub = uniform(k, &context, i64::from(b));
                ua.total_cmp(&ub)
            })
            .unwrap_or(0);
        tokens.push(best);
        context.remove(0);
        context.push(i64::from(best));
    }
    tokens
}

#[test]
fn dual_key_profiles_detect_and_audit_vllms_dual_key_watermark() {
    let dir = temp_dir("dual");
    let keys = dir.join("keys");
    let (code, made, err) = run(&[
        "vllm-keygen",
        "--out",
        keys.to_str().unwrap(),
        "--algorithm",
        "dual_key_gumbel",
        "--alpha",
        "0.2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        made.contains("dual_key_gumbel (alpha 0.2)") && made.contains("\\\"alpha\\\": 0.2"),
        "{made}"
    );
    let key = read_key(&keys.join("vllm.key")).expect("key");
    let profile = keys.join("profile.toml");
    let profile = profile.to_str().unwrap();
    let marked: Vec<Vec<u32>> = (0..3).map(|i| dual_key_text(key, 0.2, 40, i)).collect();
    let plain: Vec<Vec<u32>> = (0..3).map(|i| dual_key_text(key ^ 1, 0.2, 40, i)).collect();
    let marked_path = dir.join("marked.jsonl");
    let plain_path = dir.join("plain.jsonl");
    write_jsonl(&marked_path, &marked, "tokens");
    write_jsonl(&plain_path, &plain, "tokens");
    for (path, flagged) in [(&marked_path, true), (&plain_path, false)] {
        let (code, out, err) = run(&[
            "detect",
            "--profile",
            profile,
            "--json",
            path.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        for line in out.lines() {
            let line: Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(line["algorithm"], "dual_key_gumbel", "{line}");
            assert_eq!(line["watermarked"], flagged, "{line}");
            let vllm_p = line["vllm_p_value"].as_f64().expect("vLLM's p-value");
            assert!((0.0..=1.0).contains(&vllm_p), "{line}");
        }
    }
    let (code, out, err) = run(&[
        "detect",
        "--profile",
        profile,
        marked_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("dual_key_gumbel alpha 0.2, context width 4"),
        "{out}"
    );
    write_jsonl(&marked_path, &marked, "response_tokens");
    let (code, out, err) = run(&[
        "audit",
        "--profile",
        profile,
        "--suspect",
        marked_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("exact: log10 p")
            && out.contains("vLLM's detector")
            && out.contains("WATERMARKED"),
        "{out}"
    );
    assert!(!out.contains(&key.to_string()) && !made.contains(&key.to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key fixed for the reading-mode tests, so that their outcomes are too.
const FIXED_KEY: u64 = 0x7472_6163_656d_6172;

/// A `gumbel` profile under [`FIXED_KEY`] bound to the default model's tokenizer, and three of
/// our texts (two as text with a prompt, one as token ids).
fn reading_setup(dir: &Path, model: &Path) -> (PathBuf, PathBuf) {
    let tokenizer = dir.join("tokenizer.json");
    let json = tracemark_model::tokenizer_json_from_gguf(model).expect("tokenizer from GGUF");
    std::fs::write(&tokenizer, json).expect("write tokenizer");
    let keys = dir.join("keys");
    let (code, _, err) = run(&[
        "vllm-keygen",
        "--out",
        keys.to_str().expect("UTF-8 path"),
        "--tokenizer",
        tokenizer.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(code, 0, "{err}");
    // The fixed key in place of the random one (the profile records its fingerprint).
    let profile_path = keys.join("profile.toml");
    let text = std::fs::read_to_string(&profile_path).expect("profile");
    let old = key_fingerprint(read_key(&keys.join("vllm.key")).expect("key"));
    std::fs::write(
        &profile_path,
        text.replace(&old, &key_fingerprint(FIXED_KEY)),
    )
    .expect("profile");
    std::fs::write(keys.join("vllm.key"), format!("{FIXED_KEY}\n")).expect("key");
    let texts = dir.join("ours.jsonl");
    std::fs::write(
        &texts,
        "{\"prompt\": \"Why is the sky blue?\", \"response\": \"Sunlight is scattered by the molecules of the air, and blue light, with its shorter wavelength, is scattered much more than red light. So when you look at any part of the sky away from the sun, you see that scattered blue light.\"}\n\
         {\"prompt\": \"Name three colours.\", \"response\": \"Red, green and blue are three colours. Mixing them as light gives white, and mixing paints of them gives a dark brown.\"}\n\
         {\"prompt_tokens\": [1, 2, 3], \"response_tokens\": [504, 3205, 314, 260, 1345, 282, 9060, 30, 378, 2003, 314, 4219, 284, 260, 7097, 28, 1345, 282, 9060, 30]}\n",
    )
    .expect("texts");
    (profile_path, texts)
}

/// Reading mode on a vLLM profile: the default model reads our texts; it never saw the key, so
/// it is not flagged. The key is fixed, so the outcome is too (an innocent reader's p-value is
/// below 1e-3 one time in a thousand).
#[test]
fn reading_mode_on_a_vllm_profile_does_not_flag_an_innocent_model() {
    let Some(model) = support::model_path() else {
        return;
    };
    let dir = temp_dir("reading");
    let (profile_path, texts) = reading_setup(&dir, &model);
    let profile = profile_path.to_str().unwrap();
    let args = [
        "audit",
        "--profile",
        profile,
        "--suspect-model",
        model.to_str().unwrap(),
        "--texts",
        texts.to_str().unwrap(),
    ];
    let (code, out, err) = run(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(report["mode"], "reading", "{report}");
    assert_eq!(report["documents"], 3, "{report}");
    assert_eq!(report["watermarked"], false, "{report}");
    assert!(report["log10_p_value"].as_f64().unwrap() > -3.0, "{report}");
    let scored = report["scored"].as_u64().expect("scored");
    let skipped: u64 = report["skipped"]
        .as_object()
        .expect("skipped counts")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum();
    assert!(scored > 30, "{report}");
    assert_eq!(
        scored + skipped,
        report["tokens"].as_u64().unwrap(),
        "{report}"
    );
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    println!("{out}");
    assert!(
        out.contains("reading-mode audit") && out.contains("not watermarked"),
        "{out}"
    );
    assert!(!out.contains(&FIXED_KEY.to_string()));

    // Without the profile's tokenizer, the suspect cannot be checked: refused in one line.
    let bare = dir.join("bare");
    let (code, _, err) = run(&["vllm-keygen", "--out", bare.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let bare_profile = bare.join("profile.toml");
    let (code, _, err) = run(&[
        "audit",
        "--profile",
        bare_profile.to_str().unwrap(),
        "--suspect-model",
        model.to_str().unwrap(),
        "--texts",
        texts.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tokenizer"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP server on 127.0.0.1 answering each POST with `respond(body)` as JSON; its base URL.
fn serve(respond: impl Fn(&str) -> String + Send + 'static) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut reader = BufReader::new(&stream);
            let (mut length, mut line) = (0usize, String::new());
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut request = vec![0; length];
            let _ = reader.read_exact(&mut request);
            let body = respond(&String::from_utf8_lossy(&request));
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    url
}

/// A completions endpoint on 127.0.0.1 whose greedy next token is always " the": an innocent
/// reader (its predictions never depend on the key).
fn constant_endpoint() -> String {
    serve(|_| r#"{"choices":[{"text":" the","index":0,"finish_reason":"length"}]}"#.to_string())
}

/// Reading mode over an API (`--suspect-url`) on a vLLM profile: every prediction is asked of
/// the endpoint, mapped onto our tokens, and scored by the same rules; an endpoint that always
/// answers " the" is not flagged.
#[test]
fn reading_mode_over_an_api_on_a_vllm_profile() {
    let Some(model) = support::model_path() else {
        return;
    };
    let dir = temp_dir("reading-api");
    let (profile, texts) = reading_setup(&dir, &model);
    let url = constant_endpoint();
    let cache = dir.join("cache.jsonl");
    let (code, out, err) = run(&[
        "audit",
        "--profile",
        profile.to_str().unwrap(),
        "--suspect-url",
        &url,
        "--texts",
        texts.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
        "--rate",
        "0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(report["mode"], "reading", "{report}");
    assert_eq!(report["documents"], 3, "{report}");
    assert_eq!(report["watermarked"], false, "{report}");
    let scored = report["scored"].as_u64().expect("scored");
    let skipped: u64 = report["skipped"]
        .as_object()
        .expect("skipped counts")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum();
    assert!(scored > 0, "{report}");
    assert_eq!(
        scored + skipped,
        report["tokens"].as_u64().unwrap(),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tokens that are one lowercase word after a space, and encode back to themselves alone: text
/// made of them re-tokenizes to the same ids, so a watermark survives the API's text.
fn word_tokens(tokenizer: &watermark_core::TextTokenizer, n: usize) -> Vec<u32> {
    (0..49_152u32)
        .filter(|&t| {
            tokenizer.decode(&[t]).is_ok_and(|s| {
                s.len() >= 4
                    && s.starts_with(' ')
                    && s[1..].bytes().all(|b| b.is_ascii_lowercase())
                    && tokenizer.encode(&s).is_ok_and(|ids| ids == [t])
            })
        })
        .take(n)
        .collect()
}

/// Gumbel-max choice among `candidates` (a flat distribution), with vLLM's PRF under `key`.
fn gumbel_words(key: u64, candidates: &[u32], length: usize, salt: u32) -> Vec<u32> {
    let mut context = vec![PAD_TOKEN; 4];
    let mut tokens = Vec::new();
    for step in 0..length {
        let score = |t: u32| {
            let tilt = if (t ^ salt ^ step as u32).is_multiple_of(5) {
                0.2
            } else {
                0.0
            };
            f64::from(uniform(key, &context, i64::from(t))).ln() / (1.0 + tilt)
        };
        let best = candidates
            .iter()
            .copied()
            .max_by(|&a, &b| score(a).total_cmp(&score(b)))
            .unwrap_or(0);
        tokens.push(best);
        context.remove(0);
        context.push(i64::from(best));
    }
    tokens
}

/// A chat endpoint on 127.0.0.1 that answers "Question number N" with `answers[N]`.
fn canned_endpoint(answers: Vec<String>) -> String {
    serve(move |request| {
        let n: usize = request
            .split("Question number ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        serde_json::json!({
            "model": "canned",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answers[n % answers.len()]}}]
        })
        .to_string()
    })
}

/// A live closed-model audit (`--suspect-url --prompts --cache`) on a vLLM profile: answers
/// written with the profile's key are flagged, others are not, and `audit --suspect CACHE`
/// recomputes the same report offline.
#[test]
fn live_closed_audit_on_a_vllm_profile() {
    let Some(model) = support::model_path() else {
        return;
    };
    let dir = temp_dir("live-closed");
    let (profile, _) = reading_setup(&dir, &model);
    let profile = profile.to_str().unwrap();
    let tokenizer =
        watermark_core::TextTokenizer::from_file(&dir.join("tokenizer.json")).expect("tokenizer");
    let words = word_tokens(&tokenizer, 300);
    assert!(words.len() >= 100, "only {} word tokens", words.len());
    let prompts = dir.join("prompts.jsonl");
    let lines: String = (0..5)
        .map(|i| format!("{{\"prompt\": \"Question number {i}\"}}\n"))
        .collect();
    std::fs::write(&prompts, lines).expect("prompts");
    let text = |ids: Vec<u32>| tokenizer.decode(&ids).expect("decode");

    for (name, key, flagged) in [
        ("marked", FIXED_KEY, true),
        ("plain", FIXED_KEY ^ 0xFF, false),
    ] {
        // Each answer draws from its own share of the words, so that answers differ.
        let answers: Vec<String> = (0..5u32)
            .map(|i| {
                let share: Vec<u32> = words
                    .iter()
                    .copied()
                    .skip(20 * i as usize)
                    .take(150)
                    .collect();
                text(gumbel_words(key, &share, 40, i))
            })
            .collect();
        let url = canned_endpoint(answers);
        let cache = dir.join(format!("{name}.jsonl"));
        let audit = |extra: &[&str]| {
            let mut args = vec!["audit", "--profile", profile, "--json"];
            args.extend_from_slice(extra);
            let (code, out, err) = run(&args);
            assert!(code == 0 || code == 3, "{code} {err}");
            let report: Value = serde_json::from_str(out.trim()).expect("one JSON object");
            report
        };
        let live = audit(&[
            "--suspect-url",
            &url,
            "--prompts",
            prompts.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--rate",
            "0",
            "--fail-if-watermarked",
        ]);
        eprintln!("{name}: {live}");
        assert_eq!(live["watermarked"], flagged, "{name}: {live}");
        // 5 answers of 40 tokens, less the first 4 of each (partial contexts) and repeats.
        assert!(live["scored"].as_u64().unwrap() > 100, "{name}: {live}");
        if flagged {
            assert!(live["log10_p_value"].as_f64().unwrap() < -6.0, "{live}");
        }
        let offline = audit(&["--suspect", cache.to_str().unwrap()]);
        for field in ["scored", "score", "log10_p_value", "watermarked"] {
            assert_eq!(
                live[field], offline[field],
                "{name}: {field}: {live} vs {offline}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
