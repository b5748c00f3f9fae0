//! End-to-end tests of the `tracemark` binary: exit codes, one-line errors, the
//! generate | detect round trip, tokenizer binding, and that no command ever prints the key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

#[path = "support/hf_export.rs"]
mod hf_export;
mod support;

const BIN: &str = env!("CARGO_BIN_EXE_tracemark");

/// What one command did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A temporary directory per test, the outputs of every command run in it, and the keys made
/// there: `finish` checks that no output contains a key.
#[derive(Debug)]
struct Sandbox {
    dir: PathBuf,
    outputs: Vec<String>,
    secrets: Vec<String>,
    /// Extra environment variables for the commands run.
    env: Vec<(String, String)>,
}

impl Sandbox {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tracemark-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        Sandbox {
            dir,
            outputs: Vec::new(),
            secrets: Vec::new(),
            env: Vec::new(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    fn write(&self, relative: &str, bytes: impl AsRef<[u8]>) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a parent directory");
        }
        std::fs::write(path, bytes).expect("write a test file");
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).expect("read a test file")
    }

    /// Runs `tracemark` with `args` (split on whitespace) in the sandbox, stdin closed.
    fn run(&mut self, args: &str) -> Run {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&mut self, args: &str, stdin: Option<&[u8]>) -> Run {
        let mut child = Command::new(BIN)
            .args(args.split_whitespace())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tracemark");
        let writer = stdin.map(|bytes| {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            let bytes = bytes.to_vec();
            // A thread, so that a large input cannot deadlock against a full stdout pipe.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })
        });
        let output = child.wait_with_output().expect("wait for tracemark");
        if let Some(w) = writer {
            w.join().expect("stdin writer");
        }
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        self.outputs.push(run.stdout.clone());
        self.outputs.push(run.stderr.clone());
        run
    }

    /// `tracemark keygen --out DIR extra...`, which must succeed; remembers the key.
    fn keygen(&mut self, dir: &str, extra: &str) -> Run {
        let run = self.run(&format!("keygen --out {dir} {extra}"));
        assert_eq!(run.code, 0, "keygen failed: {run:?}");
        self.remember_key(&format!("{dir}/tracemark.key"));
        run
    }

    /// Adds a key file's secret (its hex line) to those no output may contain.
    fn remember_key(&mut self, relative: &str) {
        let text = self.read(relative);
        let hex = text
            .lines()
            .nth(1)
            .expect("a key file has a hex line")
            .trim();
        assert_eq!(hex.len(), 64, "{relative}");
        self.secrets.push(hex.to_string());
    }

    /// Checks that no command printed a key, then removes the directory.
    fn finish(self) {
        assert!(!self.outputs.is_empty());
        for secret in &self.secrets {
            for output in &self.outputs {
                assert!(
                    !output.contains(secret.as_str()),
                    "a key was printed: {output}"
                );
                assert!(
                    !output.contains(&secret[..32]),
                    "half a key was printed: {output}"
                );
                assert!(
                    !output.contains(&secret[32..]),
                    "half a key was printed: {output}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An error: status 1 and exactly one stderr line, `error: ...`, containing `needle`.
fn assert_error(run: &Run, needle: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {:?}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{:?}", run.stderr);
    assert!(
        lines[0].contains(needle),
        "{:?} lacks {needle:?}",
        run.stderr
    );
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The value of `key = "..."` in a TOML profile.
fn toml_string(toml: &str, key: &str) -> Option<String> {
    toml.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.trim_start().strip_prefix('=')?.trim();
        Some(rest.trim_matches('"').to_string())
    })
}

/// A profile in `k/` (vocabulary 1000) with 5 watermarked documents in `wm.jsonl` and 5 plain
/// ones in `plain.jsonl`.
fn setup_generated(sb: &mut Sandbox) {
    sb.keygen("k", "--vocab-size 1000");
    let wm = sb
        .run("generate --profile k/profile.toml --synthetic --count 5 --max-tokens 200 --seed 11");
    assert_eq!(wm.code, 0, "{wm:?}");
    sb.write("wm.jsonl", &wm.stdout);
    let plain = sb.run("generate --profile k/profile.toml --synthetic --count 5 --max-tokens 200 --seed 500 --no-watermark");
    assert_eq!(plain.code, 0, "{plain:?}");
    sb.write("plain.jsonl", &plain.stdout);
}

#[test]
fn keygen_writes_an_owner_only_key_and_a_profile() {
    let mut sb = Sandbox::new("keygen");
    let run = sb.keygen("k", "--vocab-size 1000");
    let profile = sb.read("k/profile.toml");
    let fingerprint = toml_string(&profile, "key_fingerprint").expect("a key fingerprint");
    assert_eq!(fingerprint.len(), 16);
    assert!(run.stdout.contains("tracemark.key"), "{}", run.stdout);
    assert!(run.stdout.contains("profile.toml"), "{}", run.stdout);
    assert!(run.stdout.contains(&fingerprint), "{}", run.stdout);
    assert!(
        run.stdout.contains("previous seeding, width 2"),
        "{}",
        run.stdout
    );
    assert_eq!(
        toml_string(&profile, "key_file").as_deref(),
        Some("tracemark.key")
    );
    assert_eq!(toml_string(&profile, "vocab_size").as_deref(), Some("1000"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sb.path("k/tracemark.key"))
            .expect("the key exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Scheme flags and a JSON profile, in a directory that does not exist yet.
    sb.keygen(
        "deeper/j",
        "--vocab-size 500 --seeding self-seeded --width 3 --gamma 0.5 --delta 3 --json-profile",
    );
    let profile: Value = serde_json::from_str(&sb.read("deeper/j/profile.json")).expect("JSON");
    assert_eq!(profile["vocab_size"], 500);
    assert_eq!(profile["scheme"]["seeding"], "self-seeded");
    assert_eq!(profile["scheme"]["width"], 3);
    assert_eq!(profile["scheme"]["gamma"], 0.5);
    assert_eq!(profile["scheme"]["delta"], 3.0);
    assert!(!sb.path("deeper/j/profile.toml").exists());
    sb.finish();
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let mut sb = Sandbox::new("overwrite");
    sb.keygen("k", "--vocab-size 1000");
    let key_before = sb.read("k/tracemark.key");
    let profile_before = sb.read("k/profile.toml");
    let again = sb.run("keygen --out k --vocab-size 1000");
    assert_error(&again, "already exists");
    assert_eq!(sb.read("k/tracemark.key"), key_before);
    assert_eq!(sb.read("k/profile.toml"), profile_before);
    sb.finish();
}

#[test]
fn keygen_needs_a_vocabulary_and_valid_parameters() {
    let mut sb = Sandbox::new("keygen-args");
    // With neither --tokenizer nor --vocab-size, keygen binds the default model's tokenizer;
    // with no model there it says how to fetch one.
    sb.env
        .push(("TRACEMARK_MODEL".into(), "/nonexistent/model.gguf".into()));
    let run = sb.run("keygen --out k");
    assert_error(&run, "make model");
    sb.env.clear();
    assert_error(&sb.run("keygen --out k --vocab-size 0"), "vocabulary");
    assert_error(&sb.run("keygen --out k --vocab-size 9 --gamma 1"), "gamma");
    let run = sb.run("keygen --out k --vocab-size 9 --seeding self-seeded --width 1");
    assert_error(&run, "width");
    // Nothing is written when keygen refuses.
    assert!(!sb.path("k").exists());
    sb.finish();
}

#[test]
fn generated_documents_round_trip_through_detect() {
    let mut sb = Sandbox::new("roundtrip");
    setup_generated(&mut sb);
    let fingerprint =
        toml_string(&sb.read("k/profile.toml"), "key_fingerprint").expect("fingerprint");

    // Generation is reproducible and marks its records.
    let again = sb.run("generate --profile k/profile.toml --synthetic --count 5 --seed 11");
    assert_eq!(again.stdout, sb.read("wm.jsonl"));
    let records = json_lines(&sb.read("wm.jsonl"));
    assert_eq!(records.len(), 5);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["id"], i);
        assert_eq!(r["watermarked"], true);
        assert_eq!(r["prompt_tokens"], serde_json::json!([0]));
        assert_eq!(r["tokens"].as_array().map(Vec::len), Some(200));
    }

    let run = sb.run("detect --profile k/profile.toml --json wm.jsonl plain.jsonl");
    assert_eq!(run.code, 0, "{run:?}");
    let detections = json_lines(&run.stdout);
    assert_eq!(detections.len(), 10);
    for (i, d) in detections.iter().enumerate() {
        for field in [
            "spec",
            "key_fingerprint",
            "tokens",
            "scored",
            "green",
            "green_fraction",
            "z_score",
            "p_value",
            "log10_p_value",
            "fpr",
            "watermarked",
            "ignored",
            "source",
            "id",
        ] {
            assert!(d.get(field).is_some(), "{field} missing from {d}");
        }
        for field in ["too_little_context", "repeated", "in_prompt"] {
            assert!(
                d["ignored"].get(field).is_some(),
                "ignored.{field} missing from {d}"
            );
        }
        assert!(d.get("windowed").is_none() && d.get("token_statuses").is_none());
        assert_eq!(d["spec"], "tracemark-green-v1");
        assert_eq!(d["key_fingerprint"], fingerprint.as_str());
        assert_eq!(d["tokens"], 200);
        assert_eq!(d["fpr"], 1e-6);
        assert_eq!(d["id"], i % 5);
        let log10_p = d["log10_p_value"].as_f64().expect("a number");
        if i < 5 {
            assert_eq!(d["source"], format!("wm.jsonl:{}", i + 1));
            assert_eq!(d["watermarked"], true, "{d}");
            assert!(log10_p < -6.0, "{d}");
        } else {
            assert_eq!(d["source"], format!("plain.jsonl:{}", i - 4));
            assert_eq!(d["watermarked"], false, "{d}");
        }
    }

    // The same through stdin, with --windowed and --tokens adding their fields.
    let wm = sb.read("wm.jsonl");
    let run = sb.run_with_stdin(
        "detect --profile k/profile.toml --jsonl --json --windowed --tokens",
        Some(wm.as_bytes()),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let piped = json_lines(&run.stdout);
    assert_eq!(piped.len(), 5);
    for (p, d) in piped.iter().zip(&detections) {
        assert_eq!(p["log10_p_value"], d["log10_p_value"]);
        assert_eq!(p["windowed"]["watermarked"], true);
        assert_eq!(p["token_statuses"].as_array().map(Vec::len), Some(200));
        assert!(p["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("<stdin>:")));
    }
    sb.finish();
}

#[test]
fn detect_prints_an_aligned_table_and_a_summary() {
    let mut sb = Sandbox::new("table");
    setup_generated(&mut sb);
    let fingerprint =
        toml_string(&sb.read("k/profile.toml"), "key_fingerprint").expect("fingerprint");
    let run = sb.run("detect --profile k/profile.toml wm.jsonl plain.jsonl --windowed");
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{}", run.stdout);
    for column in [
        "source", "tokens", "scored", "green", "z", "log10 p", "p", "verdict", "window",
    ] {
        assert!(lines[0].contains(column), "{}", lines[0]);
    }
    let verdict_at = lines[0].find("verdict").expect("a verdict column");
    for (i, row) in lines[1..11].iter().enumerate() {
        let verdict = &row[verdict_at..];
        if i < 5 {
            assert!(row.starts_with(&format!("wm.jsonl:{}", i + 1)), "{row}");
            assert!(verdict.starts_with("WATERMARKED"), "{row}");
        } else {
            assert!(verdict.starts_with("not watermarked"), "{row}");
        }
    }
    assert_eq!(
        lines[11],
        format!(
            "10 documents, 5 watermarked at FPR 1e-6 (key {fingerprint}, spec tracemark-green-v1)"
        )
    );

    // --fpr overrides the profile's; --tokens shows each token under its row.
    let run = sb.run("detect --profile k/profile.toml --fpr 0.01 --tokens wm.jsonl");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("at FPR 0.01 "), "{}", run.stdout);
    let highlighted = run.stdout.lines().nth(2).expect("a token line");
    assert!(highlighted.contains("[+"), "{highlighted}");
    sb.finish();
}

#[test]
fn fail_if_watermarked_exits_3_only_on_watermarked_input() {
    let mut sb = Sandbox::new("fail");
    setup_generated(&mut sb);
    assert_eq!(
        sb.run("detect --profile k/profile.toml --fail-if-watermarked wm.jsonl")
            .code,
        3
    );
    assert_eq!(
        sb.run("detect --profile k/profile.toml --fail-if-watermarked plain.jsonl")
            .code,
        0
    );
    assert_eq!(
        sb.run("detect --profile k/profile.toml --json --fail-if-watermarked plain.jsonl wm.jsonl")
            .code,
        3
    );
    assert_eq!(sb.run("detect --profile k/profile.toml wm.jsonl").code, 0);
    sb.finish();
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let mut sb = Sandbox::new("errors");
    setup_generated(&mut sb);

    assert_error(
        &sb.run("detect --profile missing.toml wm.jsonl"),
        "missing.toml",
    );
    sb.write("bad.toml", "this is = = not toml");
    assert_error(
        &sb.run("detect --profile bad.toml wm.jsonl"),
        "malformed profile",
    );
    assert_error(
        &sb.run("detect --profile k/profile.toml nowhere.txt"),
        "nowhere.txt",
    );
    sb.write("binary.txt", [0xff, 0xfe, 0x00]);
    assert_error(
        &sb.run("detect --profile k/profile.toml binary.txt"),
        "binary.txt: not valid UTF-8 text",
    );
    sb.write(
        "bad.jsonl",
        "{\"tokens\": [1, 2, 3]}\n{\"tokens\": [1, 2,\n",
    );
    assert_error(
        &sb.run("detect --profile k/profile.toml bad.jsonl"),
        "bad.jsonl:2",
    );
    sb.write("neither.jsonl", "\n{\"id\": 7}\n");
    assert_error(
        &sb.run("detect --profile k/profile.toml neither.jsonl"),
        "neither.jsonl:2",
    );
    sb.write("hello.txt", "hello world, this is some text");
    assert_error(
        &sb.run("detect --profile k/profile.toml hello.txt"),
        "binds no tokenizer",
    );
    assert_error(
        &sb.run_with_stdin("detect --profile k/profile.toml", Some(b"text on stdin")),
        "binds no tokenizer",
    );
    sb.write(
        "oov.jsonl",
        "{\"tokens\": [1, 2, 3]}\n{\"tokens\": [1, 2, 1000]}\n",
    );
    let run = sb.run("detect --profile k/profile.toml oov.jsonl");
    assert_error(&run, "oov.jsonl:2");
    assert_error(&run, "outside the vocabulary");
    assert_error(
        &sb.run("detect --profile k/profile.toml --fpr 0 wm.jsonl"),
        "false-positive rate",
    );
    assert_error(
        &sb.run("generate --profile k/profile.toml"),
        "give --prompt TEXT or --prompts FILE.jsonl",
    );
    assert_error(
        &sb.run("generate --profile k/profile.toml --synthetic --top-p 2"),
        "top-p",
    );

    // The wrong key: the profile's key file swapped for another key.
    sb.keygen("other", "--vocab-size 1000");
    std::fs::remove_file(sb.path("k/tracemark.key")).expect("remove the key");
    std::fs::copy(sb.path("other/tracemark.key"), sb.path("k/tracemark.key"))
        .expect("swap the key");
    assert_error(
        &sb.run("detect --profile k/profile.toml wm.jsonl"),
        "wrong key file",
    );
    assert_error(
        &sb.run("generate --profile k/profile.toml --synthetic"),
        "wrong key file",
    );
    sb.finish();
}

#[test]
fn generate_refuses_a_bad_prompt_file_before_loading_a_model() {
    let mut sb = Sandbox::new("prompts");
    sb.keygen("k", "--vocab-size 1000");
    // The prompts are read first: no model is needed to refuse them.
    sb.env
        .push(("TRACEMARK_MODEL".into(), "/nonexistent/model.gguf".into()));
    let generate = "generate --profile k/profile.toml --prompts";
    let need = "malformed JSONL line (need a `prompt` string)";
    sb.write("syntax.jsonl", "{\"prompt\": \"hi\"}\n{\"prompt\": \n");
    assert_error(
        &sb.run(&format!("{generate} syntax.jsonl")),
        &format!("syntax.jsonl:2: {need}: EOF while parsing"),
    );
    sb.write("missing.jsonl", "\n{\"text\": \"hi\"}\n");
    assert_error(
        &sb.run(&format!("{generate} missing.jsonl")),
        &format!("missing.jsonl:2: {need}: missing field `prompt`"),
    );
    sb.write("number.jsonl", "{\"prompt\": 5}\n");
    assert_error(
        &sb.run(&format!("{generate} number.jsonl")),
        &format!("number.jsonl:1: {need}: invalid type: integer `5`"),
    );
    sb.write(
        "blank.jsonl",
        "{\"prompt\": \"ok\"}\n{\"prompt\": \"  \"}\n",
    );
    assert_error(
        &sb.run(&format!("{generate} blank.jsonl")),
        "blank.jsonl:2: the prompt is empty",
    );
    sb.write("none.jsonl", "\n \n");
    assert_error(
        &sb.run(&format!("{generate} none.jsonl")),
        "none.jsonl: no prompts",
    );
    // Invalid UTF-8 anywhere is reported for the whole file, before any bad line.
    sb.write("utf.jsonl", b"nope\n{\"prompt\": \"ok\"}\n\xff\n");
    assert_error(
        &sb.run(&format!("{generate} utf.jsonl")),
        "utf.jsonl: not valid UTF-8 text",
    );
    assert_error(
        &sb.run(&format!("{generate} nowhere.jsonl")),
        "nowhere.jsonl: cannot read",
    );
    // A good file (byte-order mark, CRLF, fields generate does not use) gets as far as the model.
    sb.write(
        "ok.jsonl",
        "\u{feff}{\"prompt\": \"ok\", \"id\": 1, \"tokens\": \"unused\"}\r\n",
    );
    assert_error(&sb.run(&format!("{generate} ok.jsonl")), "make model");
    sb.finish();
}

#[test]
fn every_command_reads_the_same_jsonl() {
    let mut sb = Sandbox::new("schema");
    setup_generated(&mut sb);
    // `generate --json` lines, and the same answers as a suspect's log: prompt_tokens and
    // response_tokens, with a byte-order mark, CRLF line ends and empty lines.
    let records = json_lines(&sb.read("wm.jsonl"));
    let mut log = String::from("\u{feff}");
    for r in &records {
        let line = serde_json::json!({"prompt_tokens": r["prompt_tokens"], "response_tokens": r["tokens"]});
        log.push_str(&format!("{line}\r\n\r\n"));
    }
    sb.write("log.jsonl", &log);
    let mut reports = Vec::new();
    for input in ["wm.jsonl", "log.jsonl"] {
        let run = sb.run(&format!(
            "audit --profile k/profile.toml --suspect {input} --json"
        ));
        assert_eq!(run.code, 0, "{run:?}");
        let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
        reports.push(report);
    }
    assert_eq!(reports[0]["documents"], 5);
    for field in ["documents", "tokens", "scored", "green", "log10_p_value"] {
        assert_eq!(reports[0][field], reports[1][field], "{field}");
    }
    // detect reads `tokens`, not `response_tokens`; its lines name the line they are on.
    let run = sb.run("detect --profile k/profile.toml log.jsonl");
    assert_error(
        &run,
        "log.jsonl:1: needs a `text` string or a `tokens` array",
    );

    // Standard input: `<stdin>:N` for detect, `-:N` for audit.
    let bad = b"{\"tokens\": [1, 2, 3]}\n[1, 2]\n";
    let run = sb.run_with_stdin("detect --profile k/profile.toml --jsonl", Some(bad));
    assert_error(
        &run,
        "<stdin>:2: malformed JSONL line: expected a JSON object",
    );
    let run = sb.run_with_stdin(
        "audit --profile k/profile.toml --suspect -",
        Some(bad.as_slice()),
    );
    assert_error(&run, "-:2: malformed JSONL line: expected a JSON object");
    sb.finish();
}

#[test]
fn usage_errors_exit_2_and_help_explains() {
    let mut sb = Sandbox::new("usage");
    assert_eq!(sb.run("detect wm.jsonl").code, 2);
    assert_eq!(sb.run("detect --profile p.toml --bogus").code, 2);
    assert_eq!(sb.run("keygen --out k --seeding sideways").code, 2);
    assert_eq!(
        sb.run("generate --profile p.toml --synthetic --max-tokens 0")
            .code,
        2
    );
    assert_eq!(sb.run("").code, 2);

    let help = sb.run("--help");
    assert_eq!(help.code, 0);
    for word in ["keygen", "detect", "generate", "watermark"] {
        assert!(help.stdout.contains(word), "{}", help.stdout);
    }
    let help = sb.run("detect --help");
    assert_eq!(help.code, 0);
    for word in [
        "--fail-if-watermarked",
        "--windowed",
        "--tokens",
        "--fpr",
        "Exit status",
    ] {
        assert!(help.stdout.contains(word), "{}", help.stdout);
    }
    sb.finish();
}

/// A hand-written Hugging Face tokenizer.json: WordLevel over `words`, split on whitespace.
fn word_level_tokenizer(words: &[&str]) -> String {
    let vocab: Vec<String> = std::iter::once("[UNK]")
        .chain(words.iter().copied())
        .enumerate()
        .map(|(i, w)| format!("{}: {i}", Value::from(w)))
        .collect();
    format!(
        "{{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],\
         \"normalizer\":null,\"pre_tokenizer\":{{\"type\":\"Whitespace\"}},\"post_processor\":null,\
         \"decoder\":null,\"model\":{{\"type\":\"WordLevel\",\"vocab\":{{{}}},\"unk_token\":\"[UNK]\"}}}}",
        vocab.join(",")
    )
}

const WORDS: [&str; 12] = [
    "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "and", "then", ".",
];

#[test]
fn text_detection_uses_the_bound_tokenizer() {
    let mut sb = Sandbox::new("tokenizer");
    sb.write("tok/tokenizer.json", word_level_tokenizer(&WORDS));
    let mut more = WORDS.to_vec();
    more.push("bird");
    sb.write("tok2/tokenizer.json", word_level_tokenizer(&more));

    let run = sb.keygen("k", "--tokenizer tok/tokenizer.json");
    assert!(
        run.stdout.contains("vocabulary 13 tokens"),
        "{}",
        run.stdout
    );
    let profile = sb.read("k/profile.toml");
    let bound = toml_string(&profile, "path").expect("the tokenizer path is recorded");
    assert!(Path::new(&bound).is_absolute(), "{bound}");
    assert!(bound.ends_with("tokenizer.json"), "{bound}");

    let text = "the cat sat on the mat and then a dog ran far . the dog sat";
    sb.write("doc.txt", text);
    // The profile's tokenizer, found through the recorded path.
    let run = sb.run("detect --profile k/profile.toml --json doc.txt");
    assert_eq!(run.code, 0, "{run:?}");
    let d = &json_lines(&run.stdout)[0];
    assert_eq!(d["tokens"], text.split_whitespace().count());
    assert_eq!(d["source"], "doc.txt");
    assert!(d.get("id").is_none());
    // The same tokenizer named explicitly, the text on stdin, and the token view.
    let run = sb.run_with_stdin(
        "detect --profile k/profile.toml --tokenizer tok/tokenizer.json --tokens -",
        Some(text.as_bytes()),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("<stdin>")),
        "{}",
        run.stdout
    );
    let shown = run.stdout.lines().nth(2).expect("a token line");
    assert!(shown.contains("(the) (cat)"), "{shown}");
    assert!(shown.contains("far"), "{shown}");
    // JSONL text documents with prompts and ids.
    sb.write(
        "docs.jsonl",
        "{\"id\": \"a\", \"prompt\": \"the cat\", \"text\": \"sat on the mat\"}\n\
         {\"id\": 2, \"prompt_tokens\": [1, 2], \"text\": \"a dog ran far\"}\n",
    );
    let run = sb.run("detect --profile k/profile.toml --json docs.jsonl");
    assert_eq!(run.code, 0, "{run:?}");
    let ds = json_lines(&run.stdout);
    assert_eq!(ds[0]["id"], "a");
    assert_eq!(ds[0]["tokens"], 4);
    assert_eq!(ds[1]["id"], 2);

    // Another tokenizer, an empty text, a vocabulary that disagrees.
    let run = sb.run("detect --profile k/profile.toml --tokenizer tok2/tokenizer.json doc.txt");
    assert_error(&run, "does not match");
    sb.write("empty.txt", "  \n");
    assert_error(
        &sb.run("detect --profile k/profile.toml empty.txt"),
        "empty",
    );
    let run = sb.run("keygen --out k2 --tokenizer tok/tokenizer.json --vocab-size 12");
    assert_error(&run, "--vocab-size 12");
    sb.write("broken.json", "{\"model\": 3}");
    assert_error(
        &sb.run("keygen --out k3 --tokenizer broken.json"),
        "broken.json",
    );
    sb.finish();
}

#[test]
fn audit_pools_a_suspects_outputs_and_draws_its_curve() {
    let mut sb = Sandbox::new("audit");
    setup_generated(&mut sb);
    let fields = [
        "spec",
        "key_fingerprint",
        "documents",
        "tokens",
        "scored",
        "green",
        "z_score",
        "p_value",
        "log10_p_value",
        "watermarked",
        "skipped",
        "mode",
        "supervised",
    ];
    // The watermarked documents as a suspect's outputs: pooled, flagged far below the FPR.
    let run = sb.run("audit --profile k/profile.toml --suspect wm.jsonl --json --curve out/curve");
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    for field in fields {
        assert!(report.get(field).is_some(), "{field} missing: {report}");
    }
    assert_eq!(report["documents"], 5);
    assert_eq!(report["mode"], "closed");
    assert_eq!(report["watermarked"], true);
    assert!(report["log10_p_value"].as_f64().expect("a number") < -50.0);
    let skipped = &report["skipped"];
    let skipped_total: u64 = [
        "too_little_context",
        "repeated",
        "in_prompt",
        "earlier_in_text",
        "not_in_filter",
    ]
    .iter()
    .map(|k| skipped[k].as_u64().expect("a count"))
    .sum();
    assert_eq!(
        report["scored"].as_u64().expect("a count") + skipped_total,
        report["tokens"].as_u64().expect("a count")
    );
    // Pooling only moves tuples that recur across documents from "scored" to "repeated".
    let detect = sb.run("detect --profile k/profile.toml --json wm.jsonl");
    let per_document: u64 = json_lines(&detect.stdout)
        .iter()
        .map(|d| {
            d["scored"].as_u64().expect("a count")
                + d["ignored"]["repeated"].as_u64().expect("a count")
        })
        .sum();
    let pooled = report["scored"].as_u64().expect("a count")
        + skipped["repeated"].as_u64().expect("a count");
    assert_eq!(pooled, per_document);
    let csv = sb.read("out/curve.csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("documents,scored,green,log10_p_value"));
    let last: Vec<&str> = lines.last().expect("points").split(',').collect();
    assert_eq!(last[1], report["scored"].to_string());
    let png = std::fs::read(sb.path("out/curve.png")).expect("the plot is written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // The plain documents are not flagged; the table says so.
    let run = sb.run("audit --profile k/profile.toml --suspect plain.jsonl --fail-if-watermarked");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("not watermarked at FPR 1e-6"),
        "{run:?}"
    );
    let run = sb.run("audit --profile k/profile.toml --suspect wm.jsonl --fail-if-watermarked");
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("WATERMARKED"), "{run:?}");

    // Supervised: our outputs as the filter; the plain suspect shares almost no window with them.
    let run =
        sb.run("audit --profile k/profile.toml --suspect plain.jsonl --filter wm.jsonl --json");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    // With some keys no window is shared at all: then nothing could be scored, which is its own
    // status (4), not a "not watermarked" verdict.
    let scored = report["scored"].as_u64().expect("a count");
    assert_eq!(run.code, if scored == 0 { 4 } else { 0 }, "{run:?}");
    assert_eq!(report["supervised"], true);
    assert!(report["filter_windows"].as_u64().expect("a count") > 500);
    assert!(
        report["skipped"]["not_in_filter"]
            .as_u64()
            .expect("a count")
            > 900
    );
    let run = sb.run("audit --profile k/profile.toml --suspect wm.jsonl --filter wm.jsonl --json");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(report["skipped"]["not_in_filter"], 0);
    assert_eq!(report["watermarked"], true);
    sb.finish();
}

/// `n` with thousands separators, as reports print counts.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An audit that does not flag says "not detected at N scored tokens", never "clean", and
/// carries the power plan; `--plan` plans from any audit, with its own target.
#[test]
fn audit_reports_inconclusive_verdicts_and_plans_a_larger_audit() {
    let mut sb = Sandbox::new("audit-plan");
    setup_generated(&mut sb);
    let run = sb.run("audit --profile k/profile.toml --suspect plain.jsonl --json");
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    let scored = report["scored"].as_u64().expect("a count");
    assert_eq!(report["watermarked"], false);
    assert_eq!(report["inconclusive"], true);
    let conclusion = format!("not detected at {} scored tokens", grouped(scored));
    assert_eq!(report["conclusion"], conclusion.as_str());
    let plan = &report["plan"];
    assert_eq!(plan["target"], 1e-6);
    assert_eq!(plan["power"], 0.5);
    assert_eq!(plan["confidence"], 0.95);
    let status = plan["status"].as_str().expect("a status");
    assert!(["excess", "no_excess"].contains(&status), "{plan}");
    let per_document = plan["scored_tokens_per_document"].as_f64().expect("a rate");
    assert_eq!(per_document, scored as f64 / 5.0);
    if let Some(tokens) = plan["scored_tokens"].as_u64() {
        let documents = plan["documents"]
            .as_u64()
            .expect("documents with the tokens");
        assert_eq!(
            documents,
            (tokens as f64 / per_document).ceil() as u64,
            "{plan}"
        );
    } else {
        assert!(plan["documents"].is_null(), "{plan}");
    }
    let text = sb.run("audit --profile k/profile.toml --suspect plain.jsonl");
    assert!(
        text.stdout.contains("not watermarked at FPR 1e-6"),
        "{text:?}"
    );
    assert!(
        text.stdout.contains(&format!("inconclusive: {conclusion}")),
        "{text:?}"
    );
    assert!(text.stdout.contains("(--plan for details)"), "{text:?}");

    // Flagged: conclusive, no plan unless asked for; asked for, the target is already reached.
    let run = sb.run("audit --profile k/profile.toml --suspect wm.jsonl --json");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(report["inconclusive"], false);
    let scored = report["scored"].as_u64().expect("a count");
    let flagged = format!("watermarked at {} scored tokens", grouped(scored));
    assert_eq!(report["conclusion"], flagged.as_str());
    assert!(report.get("plan").is_none(), "{report}");
    let run = sb
        .run("audit --profile k/profile.toml --suspect wm.jsonl --json --plan --plan-target 1e-20");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(report["plan"]["status"], "reached");
    assert_eq!(report["plan"]["target"], 1e-20);
    let run =
        sb.run("audit --profile k/profile.toml --suspect wm.jsonl --plan --plan-target 1e-20");
    assert!(
        run.stdout
            .contains("plan (target p ≤ 1e-20, probability 0.5, 95% intervals)"),
        "{run:?}"
    );
    assert!(run.stdout.contains("is already reached"), "{run:?}");

    // A target beyond reach of the plain outputs: the plan has budgets, or says there is none.
    let run =
        sb.run("audit --profile k/profile.toml --suspect plain.jsonl --plan --plan-power 0.9");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("plan (target p ≤ 1e-6, probability 0.9, 95% intervals)"),
        "{run:?}"
    );

    let profile = "audit --profile k/profile.toml --suspect plain.jsonl";
    assert_error(
        &sb.run(&format!("{profile} --plan --plan-target 2")),
        "--plan-target",
    );
    assert_error(
        &sb.run(&format!("{profile} --plan --plan-confidence 1")),
        "confidence",
    );
    let run = sb.run(&format!("{profile} --plan-target 1e-3"));
    assert_eq!(run.code, 2, "{run:?}");
    sb.finish();
}

#[test]
fn audit_refuses_bad_input_with_one_line() {
    let mut sb = Sandbox::new("audit-errors");
    sb.keygen("k", "--vocab-size 1000");
    sb.write(
        "bad.jsonl",
        "{\"response_tokens\": [1, 2, 3]}\n{\"prompt\": \"x\"}\n",
    );
    sb.write("big.jsonl", "{\"response_tokens\": [1, 2, 3000]}\n");
    sb.write("empty.jsonl", "\n\n");
    sb.write("text.jsonl", "{\"response\": \"hello there\"}\n");
    sb.write("broken.jsonl", "{\"response\": \n");
    let profile = "audit --profile k/profile.toml";
    assert_error(
        &sb.run(&format!("{profile} --suspect missing.jsonl")),
        "missing.jsonl",
    );
    assert_error(
        &sb.run(&format!("{profile} --suspect bad.jsonl")),
        "bad.jsonl:2: needs a `response`",
    );
    assert_error(
        &sb.run(&format!("{profile} --suspect big.jsonl")),
        "outside the vocabulary",
    );
    assert_error(
        &sb.run(&format!("{profile} --suspect empty.jsonl")),
        "no documents",
    );
    assert_error(
        &sb.run(&format!("{profile} --suspect broken.jsonl")),
        "broken.jsonl:1: malformed JSONL line",
    );
    // Text needs the tokenizer the profile binds; this profile binds none.
    assert_error(
        &sb.run(&format!("{profile} --suspect text.jsonl")),
        "binds no tokenizer",
    );
    assert_error(
        &sb.run(&format!("{profile} --suspect bad.jsonl --fpr 2")),
        "false-positive rate",
    );
    // Reading mode: the suspect must use the profile's tokenizer (this one binds none).
    sb.write("fake.gguf", "not a model");
    assert_error(
        &sb.run(&format!(
            "{profile} --suspect-model fake.gguf --texts bad.jsonl"
        )),
        "fake.gguf",
    );
    for usage in [
        profile.to_string(),
        format!("{profile} --suspect-model fake.gguf"),
        format!("{profile} --suspect bad.jsonl --texts bad.jsonl"),
    ] {
        let run = sb.run(&usage);
        assert_eq!(run.code, 2, "{usage}: {run:?}");
    }
    sb.finish();
}

/// A model whose context fills before the answers end (the default model with its context
/// length patched to 64): the answers that fit are kept and the others are cut at the limit,
/// each with its stop reason, instead of the whole run failing with nothing printed.
#[test]
fn generation_past_the_context_keeps_every_answer() {
    let Some(model) = support::model_path() else {
        return;
    };
    let mut sb = Sandbox::new("context-full");
    sb.keygen("k", "");
    let short = support::patched(
        &model,
        &sb.path(""),
        "llama.context_length",
        64u32.to_le_bytes(),
    );
    let long = "Tell me about the sea and the ships on it. ".repeat(12);
    sb.write(
        "prompts.jsonl",
        format!(
            "{{\"prompt\": \"Say yes.\"}}\n{{\"prompt\": \"{long}\"}}\n\
             {{\"prompt\": \"Write a long story about a cat.\"}}\n"
        ),
    );
    let run = sb.run(&format!(
        "generate --profile k/profile.toml --prompts prompts.jsonl --json --max-tokens 200 \
         --batch-size 2 --seed 1 --model {}",
        short.display()
    ));
    assert_eq!(run.code, 0, "{run:?}");
    let answers = json_lines(&run.stdout);
    assert_eq!(answers.len(), 3, "{run:?}");
    let length = |a: &Value, field: &str| a[field].as_array().expect("ids").len();
    for a in &answers {
        let total = length(a, "prompt_tokens") + length(a, "tokens");
        match a["stop_reason"].as_str().expect("a stop reason") {
            "context_full" => assert!(total == 65 || length(a, "tokens") == 0, "{a}"),
            "stop_token" => assert!(total <= 65 && a["stopped"] == true, "{a}"),
            other => panic!("{other}: {a}"),
        }
    }
    assert_eq!(answers[1]["stop_reason"], "context_full");
    assert_eq!(
        length(&answers[1], "tokens"),
        0,
        "the prompt alone is too long"
    );
    assert_eq!(
        answers[2]["stop_reason"], "context_full",
        "a long story fills 64 tokens"
    );
    assert!(
        run.stderr
            .contains("filled the model's context (64 tokens)"),
        "{run:?}"
    );
    sb.finish();
}

/// Reading mode on the default model: the untouched model reading its own watermarked answers
/// is not flagged (its predictions never saw the key), and a suspect whose tokenizer is not the
/// profile's is refused.
#[test]
fn audit_reads_texts_through_a_suspect_model() {
    let Some(model) = support::model_path() else {
        return;
    };
    let model = model.display().to_string();
    let mut sb = Sandbox::new("audit-reading");
    sb.keygen("k", "");
    sb.write(
        "prompts.jsonl",
        "{\"prompt\": \"Name three colours.\"}\n{\"prompt\": \"What is rain?\"}\n",
    );
    let run = sb.run(
        "generate --profile k/profile.toml --prompts prompts.jsonl --json --max-tokens 40 --seed 3",
    );
    assert_eq!(run.code, 0, "{run:?}");
    sb.write("ours.jsonl", &run.stdout);
    let run = sb.run(&format!(
        "audit --profile k/profile.toml --suspect-model {model} --texts ours.jsonl --json"
    ));
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(report["mode"], "reading");
    assert_eq!(report["documents"], 2);
    assert_eq!(report["watermarked"], false, "{report}");
    // The key is fresh for every run, so the answers (and where the model stops) differ between
    // runs: check the accounting, not a count. Every token is either scored or skipped by a rule.
    let scored = report["scored"].as_u64().expect("a count");
    let skipped: u64 = report["skipped"]
        .as_object()
        .expect("skipped counts")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum();
    assert!(scored > 0, "{report}");
    assert_eq!(
        scored + skipped,
        report["tokens"].as_u64().expect("a count"),
        "{report}"
    );
    // Text is re-tokenized when ids are absent: same report from the text fields alone.
    let texts: String = json_lines(&sb.read("ours.jsonl"))
        .iter()
        .map(|r| {
            serde_json::json!({"prompt": r["prompt"], "response": r["completion"]}).to_string()
                + "\n"
        })
        .collect();
    sb.write("ours-text.jsonl", texts);
    let run = sb.run(&format!(
        "audit --profile k/profile.toml --suspect-model {model} --texts ours-text.jsonl --json"
    ));
    assert_eq!(run.code, 0, "{run:?}");
    let again: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(again["documents"], 2);

    sb.keygen("other", "--vocab-size 49152");
    assert_error(
        &sb.run(&format!(
            "audit --profile other/profile.toml --suspect-model {model} --texts ours.jsonl"
        )),
        "binds no tokenizer",
    );
    sb.finish();
}

/// Reading mode on a Hugging Face checkpoint directory: the default model written as a llama
/// checkpoint (safetensors) and read by candle-transformers is not flagged, also when its
/// tokenizer is not the profile's (predictions aligned through the text), and a checkpoint of an
/// unsupported architecture is refused in one line.
#[test]
fn audit_reads_texts_through_a_hugging_face_checkpoint() {
    let Some(model) = support::model_path() else {
        return;
    };
    let exact = tracemark_model::llama::LoadOptions {
        requantize: Some(candle_core::quantized::GgmlDType::F32),
        ..Default::default()
    };
    let config = tracemark_model::llama::Llama::load(&model, &exact)
        .expect("the model loads")
        .config()
        .clone();
    let mut sb = Sandbox::new("audit-checkpoint");
    std::fs::create_dir_all(sb.path("ckpt")).expect("create the checkpoint directory");
    hf_export::export(&model, &config, &sb.path("ckpt"));
    sb.keygen("k", "");
    let text = "Rain is water that falls from clouds. Tiny droplets join together until they are \
                too heavy to float, and then they fall to the ground.";
    sb.write(
        "ours.jsonl",
        serde_json::json!({"prompt": "What is rain?", "response": text}).to_string() + "\n",
    );
    let run =
        sb.run("audit --profile k/profile.toml --suspect-model ckpt --texts ours.jsonl --json");
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(report["mode"], "reading");
    assert_eq!(report["documents"], 1);
    assert_eq!(report["watermarked"], false, "{report}");
    assert!(report["scored"].as_u64().expect("a count") > 0, "{report}");

    // Closed-mode generation from the checkpoint, watermarked (its tokenizer is the profile's).
    let gen = sb.run("generate --profile k/profile.toml --model ckpt --prompt Rain --max-tokens 6 --seed 1 --json");
    assert_eq!(gen.code, 0, "{gen:?}");
    let answer: Value = serde_json::from_str(gen.stdout.trim()).expect("one JSON answer");
    let tokens = answer["tokens"].as_array().expect("token ids").len();
    assert!((1..=6).contains(&tokens), "{answer}");
    assert_eq!(answer["watermarked"], true);

    // The same weights behind another tokenizer: a quarter of the merges removed.
    let path = sb.path("ckpt/tokenizer.json");
    let mut tokenizer: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read tokenizer.json")).expect("JSON");
    let merges = tokenizer["model"]["merges"]
        .as_array_mut()
        .expect("BPE merges");
    let kept: Vec<Value> = merges
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 100 || i % 4 != 1)
        .map(|(_, m)| m.clone())
        .collect();
    *merges = kept;
    std::fs::write(&path, tokenizer.to_string()).expect("write tokenizer.json");
    let run =
        sb.run("audit --profile k/profile.toml --suspect-model ckpt --texts ours.jsonl --json");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("is not the profile's"), "{run:?}");
    let aligned: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(aligned["watermarked"], false, "{aligned}");
    let scored = aligned["scored"].as_u64().expect("a count");
    assert!(scored > 0, "{aligned}");
    assert_eq!(
        aligned["tokens"], report["tokens"],
        "the same text, our tokens"
    );
    let skipped: u64 = aligned["skipped"]
        .as_object()
        .expect("skipped counts")
        .values()
        .map(|v| v.as_u64().expect("a count"))
        .sum();
    assert_eq!(
        scored + skipped,
        aligned["tokens"].as_u64().expect("a count")
    );
    // It cannot write our watermark, but answers in plain text for a closed-model audit.
    assert_error(
        &sb.run("generate --profile k/profile.toml --model ckpt --prompt Hi --max-tokens 4"),
        "tokenizer",
    );
    let plain = sb.run("generate --profile k/profile.toml --model ckpt --prompt Rain --max-tokens 6 --no-watermark --json");
    assert_eq!(plain.code, 0, "{plain:?}");
    assert!(plain.stderr.contains("text only"), "{plain:?}");
    let answer: Value = serde_json::from_str(plain.stdout.trim()).expect("one JSON answer");
    assert!(
        answer.get("tokens").is_none() && answer["completion"].is_string(),
        "{answer}"
    );

    sb.keygen("other", "--vocab-size 49152");
    assert_error(
        &sb.run("audit --profile other/profile.toml --suspect-model ckpt --texts ours.jsonl"),
        "binds no tokenizer",
    );
    sb.write(
        "ckpt/config.json",
        r#"{"architectures": ["GPT2LMHeadModel"]}"#,
    );
    assert_error(
        &sb.run("audit --profile k/profile.toml --suspect-model ckpt --texts ours.jsonl"),
        "unsupported architecture 'GPT2LMHeadModel'",
    );
    sb.finish();
}

/// Issue 11, one regression per item the CLI owns: outputs are never overwritten nor written
/// through a link, an endless line is cut at the bound, a key file is not read as a document,
/// a document with nothing to score says so with its own exit status, an empty prompt is
/// refused, and hostile model files and shared keys end in one error line.
#[test]
fn hostile_and_careless_input_gets_one_clear_refusal() {
    use std::os::unix::fs::PermissionsExt;
    let mut sb = Sandbox::new("hostile");
    sb.keygen("k", "--vocab-size 1000");
    let doc = |n: usize| {
        let ids: Vec<String> = (0..n).map(|i| ((i * 7919) % 1000).to_string()).collect();
        format!("{{\"tokens\": [{}]}}\n", ids.join(", "))
    };
    sb.write("s.jsonl", doc(300));

    // 1. --curve: an existing file is refused (both checked first), --force replaces it, and a
    // symbolic link is never written through.
    sb.write("c.csv", "precious");
    assert_error(
        &sb.run("audit --profile k/profile.toml --suspect s.jsonl --curve c"),
        "pass --force",
    );
    assert_eq!(sb.read("c.csv"), "precious");
    assert!(!sb.path("c.png").exists(), "nothing written when refused");
    let run = sb.run("audit --profile k/profile.toml --suspect s.jsonl --curve c --force");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(sb.read("c.csv").starts_with("documents,scored"));
    sb.write("victim", "precious");
    std::os::unix::fs::symlink(sb.path("victim"), sb.path("l.png")).expect("symlink");
    assert_error(
        &sb.run("audit --profile k/profile.toml --suspect s.jsonl --curve l --force"),
        "symbolic link",
    );
    assert_eq!(sb.read("victim"), "precious");

    // 2-3. A line longer than the bound, even one with no end, is refused at the bound.
    sb.env
        .push(("TRACEMARK_MAX_DOCUMENT_BYTES".into(), "4096".into()));
    sb.write("long.jsonl", doc(2000));
    assert_error(
        &sb.run("audit --profile k/profile.toml --suspect long.jsonl"),
        "long.jsonl:1: longer than 4096 bytes",
    );
    assert_error(
        &sb.run("audit --profile k/profile.toml --suspect /dev/zero"),
        "longer than 4096 bytes",
    );
    sb.env.clear();

    // 5. A key file given as a document is refused, and its secret never printed (finish()).
    assert_error(
        &sb.run("detect --profile k/profile.toml --tokens k/tracemark.key"),
        "tracemark key file",
    );
    assert_error(
        &sb.run("detect --profile k/profile.toml --jsonl k/tracemark.key"),
        "tracemark key file",
    );

    // 8. Nothing to score: a distinct verdict and exit status, not "not watermarked".
    sb.write("short.jsonl", "{\"tokens\": [5]}\n");
    let run = sb.run("detect --profile k/profile.toml short.jsonl");
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout.contains("nothing to score"), "{}", run.stdout);
    let run = sb.run("audit --profile k/profile.toml --suspect short.jsonl");
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout.contains("nothing to score"), "{}", run.stdout);

    // 6. A key file others can read is refused, as ssh refuses one.
    let key = sb.path("k/tracemark.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_error(
        &sb.run("detect --profile k/profile.toml s.jsonl"),
        "accessible by other users",
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // 10. An empty --prompt is refused like an empty --prompts line, before any model loads.
    let out = Command::new(BIN)
        .args(["generate", "--profile", "k/profile.toml", "--prompt", " "])
        .current_dir(&sb.dir)
        .output()
        .expect("run tracemark");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the prompt is empty"), "{stderr}");

    // 2. A device as the suspect model is refused, not read.
    sb.write("texts.jsonl", doc(10));
    assert_error(
        &sb.run("audit --profile k/profile.toml --suspect-model /dev/zero --texts texts.jsonl"),
        "not a regular file",
    );
    sb.finish();
}
