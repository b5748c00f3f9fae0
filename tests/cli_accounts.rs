//! End-to-end tests of the account options: `generate --account`, `detect --accounts` and
//! `audit --accounts` on the default model, and one clear error for a bad accounts file.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_tracemark");

/// A temporary directory per test.
struct Sandbox {
    dir: PathBuf,
}

/// What one command did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Sandbox {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tracemark-acct-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    fn write(&self, relative: &str, text: &str) {
        std::fs::write(self.dir.join(relative), text).unwrap();
    }

    fn run(&self, args: &str) -> Run {
        let out = Command::new(BIN)
            .args(args.split_whitespace())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A key and profile for the default model's tokenizer in `k/`, or for a synthetic
    /// vocabulary; returns the key's hex line, which no output may contain.
    fn keygen(&self, extra: &str) -> String {
        let run = self.run(&format!("keygen --out k {extra}"));
        assert_eq!(run.code, 0, "{run:?}");
        let key = std::fs::read_to_string(self.dir.join("k/tracemark.key")).unwrap();
        key.lines().nth(1).unwrap().trim().to_string()
    }

    /// Replaces the key of `k/` with a fixed one (and the profile's fingerprint with its own),
    /// so that a test on the default model sees the same texts and scores on every run.
    fn fix_key(&self, byte: u8) -> String {
        let key = watermark_core::SecretKey::from_bytes([byte; 32]);
        let key_path = self.dir.join("k/tracemark.key");
        std::fs::remove_file(&key_path).unwrap();
        key.write_new(&key_path).unwrap();
        let profile_path = self.dir.join("k/profile.toml");
        let profile: String = std::fs::read_to_string(&profile_path)
            .unwrap()
            .lines()
            .map(|l| match l.starts_with("key_fingerprint") {
                true => format!("key_fingerprint = \"{}\"\n", key.fingerprint()),
                false => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&profile_path, profile).unwrap();
        let key = std::fs::read_to_string(&key_path).unwrap();
        key.lines().nth(1).unwrap().trim().to_string()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn assert_one_line_error(run: &Run, needle: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {:?}", run.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{:?}",
        run.stderr
    );
}

fn ten_accounts() -> String {
    (0..10).map(|i| format!("acct-{i}\n")).collect()
}

/// Answers the default model wrote for account acct-3 are attributed to acct-3 out of 10, and
/// to no other; the same answers read as a suspect's outputs name acct-3 in the audit.
#[test]
fn detect_names_the_account_that_generated_the_answers() {
    if support::model_path().is_none() {
        return;
    }
    let sb = Sandbox::new("model");
    sb.keygen("");
    let secret = sb.fix_key(0x5a);
    sb.write(
        "prompts.jsonl",
        "{\"prompt\": \"Write a short story about a lighthouse keeper.\"}\n\
         {\"prompt\": \"Describe a walk through a busy market.\"}\n",
    );
    let run = sb.run(
        "generate --profile k/profile.toml --prompts prompts.jsonl --json --max-tokens 150 \
         --seed 1 --account acct-3",
    );
    assert_eq!(run.code, 0, "{run:?}");
    sb.write("answers.jsonl", &run.stdout);
    sb.write("accounts.txt", &ten_accounts());
    let run =
        sb.run("detect --profile k/profile.toml --accounts accounts.txt answers.jsonl --json");
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let accounts = &line["accounts"];
        assert_eq!(accounts["accounts_tested"], 10, "{line}");
        assert_eq!(accounts["best"], "acct-3", "{line}");
        let named: Vec<&Value> = accounts["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["attributed"] == true)
            .collect();
        assert_eq!(named.len(), 1, "{line}");
        // The master watermark is still there in each answer (about 100 scored tokens: a
        // verdict at FPR 1e-6 is likely, not certain, so each is held to 1e-3 and the pooled
        // audit below to the profile's 1e-6).
        let log10_p = line["log10_p_value"].as_f64().unwrap();
        assert!(log10_p < -3.0, "{line}");
    }
    let table = sb.run("detect --profile k/profile.toml --accounts accounts.txt answers.jsonl");
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.contains("acct-3"), "{}", table.stdout);
    assert!(
        table.stdout.contains("2 attributed to an account"),
        "{}",
        table.stdout
    );
    let audit = sb.run(
        "audit --profile k/profile.toml --suspect answers.jsonl --accounts accounts.txt --json",
    );
    assert_eq!(audit.code, 0, "{audit:?}");
    let report: Value = serde_json::from_str(audit.stdout.trim()).unwrap();
    assert_eq!(report["accounts"]["best"], "acct-3", "{report}");
    assert_eq!(report["watermarked"], true, "{report}");
    for run in [&run, &table, &audit] {
        assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret));
    }
}

/// A bad accounts file is one clear error naming the file (and the line); an account with no
/// watermark is a usage error.
#[test]
fn bad_account_lists_are_one_clear_error() {
    let sb = Sandbox::new("bad");
    sb.keygen("--vocab-size 1000");
    sb.write("doc.jsonl", "{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8]}\n");
    let detect = "detect --profile k/profile.toml doc.jsonl --accounts";
    sb.write("dup.txt", "a\nb\na\n");
    assert_one_line_error(
        &sb.run(&format!("{detect} dup.txt")),
        "dup.txt: bad account id: line 3: account id listed twice",
    );
    sb.write("empty.txt", "# none\n\n");
    assert_one_line_error(
        &sb.run(&format!("{detect} empty.txt")),
        "the list names no account",
    );
    sb.write("long.txt", &format!("ok\n{}\n", "y".repeat(129)));
    assert_one_line_error(&sb.run(&format!("{detect} long.txt")), "line 2");
    assert_one_line_error(&sb.run(&format!("{detect} missing.txt")), "missing.txt");
    sb.write("ok.txt", &ten_accounts());
    let run = sb.run(&format!("{detect} ok.txt"));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("no account"), "{}", run.stdout);
    let run = sb.run("generate --profile k/profile.toml --synthetic --account a --no-watermark");
    assert_eq!(run.code, 2, "{run:?}");
    let run = sb.run("audit --profile k/profile.toml --suspect doc.jsonl --accounts ok.txt");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("no account"), "{}", run.stdout);
}
