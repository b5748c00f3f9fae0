//! Evidence for a third party, end to end through the `tracemark` binary: key commitments
//! (open, wrong key, tampered, malformed), `--report` directories that `verify-report`
//! confirms and refuses once an input, a number or the page is altered, and a hostile
//! document whose markup never reaches the page unescaped.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A scratch directory the binary runs in.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tm-evidence-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tracemark"))
            .args(args)
            .current_dir(&self.0)
            .env("TRACEMARK_ALLOW_SHARED_KEY", "1")
            .output()
            .unwrap()
    }

    /// Runs and expects exit status `code`; returns stdout, and stderr on failure.
    fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}\n{stdout}\n{stderr}"
        );
        if code == 0 {
            stdout
        } else {
            assert!(
                stderr.starts_with("error: ") && stderr.lines().count() == 1,
                "{stderr}"
            );
            stderr
        }
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// A copy of report directory `from` as `to`, with `edit` applied to one of its files.
    fn altered(&self, from: &str, to: &str, file: &str, edit: impl Fn(String) -> String) {
        std::fs::create_dir_all(self.path(to)).unwrap();
        for name in ["evidence.json", "report.html"] {
            let text = self.read(&format!("{from}/{name}"));
            let text = if name == file { edit(text) } else { text };
            self.write(&format!("{to}/{name}"), &text);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A profile over 1000 token ids, three watermarked and two plain synthetic documents.
fn synthetic(name: &str) -> Scratch {
    let s = Scratch::new(name);
    s.expect(&["keygen", "--out", "k", "--vocab-size", "1000"], 0);
    let wm = s.expect(
        &[
            "generate",
            "--profile",
            "k/profile.toml",
            "--synthetic",
            "--count",
            "3",
            "--seed",
            "11",
            "--json",
        ],
        0,
    );
    s.write("wm.jsonl", &wm);
    let plain = s.expect(
        &[
            "generate",
            "--profile",
            "k/profile.toml",
            "--synthetic",
            "--count",
            "2",
            "--seed",
            "500",
            "--no-watermark",
            "--json",
        ],
        0,
    );
    s.write("plain.jsonl", &plain);
    s.expect(&["keygen", "--out", "other", "--vocab-size", "1000"], 0);
    s
}

#[test]
fn commitments_open_with_the_key_and_refuse_everything_else() {
    let s = synthetic("commit");
    s.expect(
        &["commit", "--profile", "k/profile.toml", "--out", "c.json"],
        0,
    );
    let text = s.read("c.json");
    let key_hex = s
        .read("k/tracemark.key")
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(!text.contains(&key_hex), "the commitment holds the key");
    let c: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(c["format"], "tracemark-commitment-v1");
    assert_eq!(c["salt"].as_str().unwrap().len(), 64);
    let ok = s.expect(
        &["verify-commitment", "c.json", "--profile", "k/profile.toml"],
        0,
    );
    assert!(ok.starts_with("the commitment opens"), "{ok}");
    // A second commitment to the same key differs (fresh salt) and also opens.
    let again = s.expect(&["commit", "--profile", "k/profile.toml"], 0);
    assert_ne!(
        serde_json::from_str::<Value>(&again).unwrap()["commitment"],
        c["commitment"]
    );

    let err = s.expect(
        &[
            "verify-commitment",
            "c.json",
            "--profile",
            "other/profile.toml",
        ],
        5,
    );
    assert!(err.contains("not the committed one"), "{err}");
    s.write(
        "gamma.json",
        &text.replace("\"gamma\": 0.25", "\"gamma\": 0.5"),
    );
    let err = s.expect(
        &[
            "verify-commitment",
            "gamma.json",
            "--profile",
            "k/profile.toml",
        ],
        6,
    );
    assert!(err.contains("gamma differs"), "{err}");
    s.write(
        "time.json",
        &text.replace("\"created\": \"2", "\"created\": \"1"),
    );
    let err = s.expect(
        &[
            "verify-commitment",
            "time.json",
            "--profile",
            "k/profile.toml",
        ],
        6,
    );
    assert!(err.contains("does not open"), "{err}");
    for (name, body) in [
        ("empty.json", ""),
        ("half.json", &text[..text.len() / 2]),
        ("salt.json", &text.replace("\"salt\": \"", "\"salt\": \"zz")),
    ] {
        s.write(name, body);
        s.expect(
            &["verify-commitment", name, "--profile", "k/profile.toml"],
            7,
        );
    }
    // Never overwritten: a published commitment is a record.
    s.expect(
        &["commit", "--profile", "k/profile.toml", "--out", "c.json"],
        1,
    );
}

#[test]
fn a_detect_report_is_confirmed_and_any_alteration_is_named() {
    let s = synthetic("detect");
    s.expect(
        &["commit", "--profile", "k/profile.toml", "--out", "c.json"],
        0,
    );
    let args = [
        "detect",
        "--profile",
        "k/profile.toml",
        "--windowed",
        "wm.jsonl",
        "plain.jsonl",
    ];
    let table = s.expect(&args, 0);
    let mut with_report = args.to_vec();
    with_report.extend(["--report", "rep", "--commitment", "c.json"]);
    // The printed output does not change with --report.
    assert_eq!(s.expect(&with_report, 0), table);
    let evidence: Value = serde_json::from_str(&s.read("rep/evidence.json")).unwrap();
    let documents = evidence["findings"]["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 5);
    assert_eq!(documents[0]["verdict"], "watermarked");
    assert_eq!(documents[4]["verdict"], "not watermarked");
    assert_eq!(documents[0]["tokens"].as_array().unwrap().len(), 200);
    assert_eq!(evidence["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(evidence["commitment"]["format"], "tracemark-commitment-v1");
    let html = s.read("rep/report.html");
    assert!(
        html.contains("3 of 5 documents judged watermarked"),
        "verdict headline"
    );
    assert!(html.contains("class=\"tok g\"") && html.contains("class=\"tok r\""));
    assert!(html.contains("class=\"window\""));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));

    let ok = s.expect(&["verify-report", "rep", "--profile", "k/profile.toml"], 0);
    assert!(ok.starts_with("confirmed"), "{ok}");
    // A number not shown on the page, altered in evidence.json: found by recomputation.
    s.altered("rep", "r1", "evidence.json", |t| {
        t.replacen("\"too_little_context\": 1", "\"too_little_context\": 0", 1)
    });
    let err = s.expect(&["verify-report", "r1", "--profile", "k/profile.toml"], 6);
    assert!(
        err.contains("findings.documents[0].skipped.too_little_context"),
        "{err}"
    );
    s.altered("rep", "r2", "report.html", |t| {
        t.replace("3 of 5", "0 of 5")
    });
    let err = s.expect(&["verify-report", "r2", "--profile", "k/profile.toml"], 6);
    assert!(err.contains("report.html"), "{err}");
    s.altered("rep", "r3", "evidence.json", |t| {
        t.replace("tracemark-evidence-v1", "v0")
    });
    s.expect(&["verify-report", "r3", "--profile", "k/profile.toml"], 7);
    let err = s.expect(
        &["verify-report", "rep", "--profile", "other/profile.toml"],
        5,
    );
    assert!(err.contains("not the committed one"), "{err}");
    // An input altered after the report: named by its SHA-256.
    let original = s.read("plain.jsonl");
    s.write("plain.jsonl", &original.replacen("1", "2", 1));
    let err = s.expect(&["verify-report", "rep", "--profile", "k/profile.toml"], 6);
    assert!(
        err.contains("plain.jsonl (document)") && err.contains("the input changed"),
        "{err}"
    );
    s.write("plain.jsonl", &original);
    s.expect(&["verify-report", "rep", "--profile", "k/profile.toml"], 0);
    // Stdin cannot be hashed or re-read; an existing report is not overwritten.
    s.expect(
        &[
            "detect",
            "--profile",
            "k/profile.toml",
            "--report",
            "r4",
            "-",
        ],
        1,
    );
    s.expect(&with_report, 1);
}

#[test]
fn an_audit_report_draws_the_curve_and_is_confirmed() {
    let s = synthetic("audit");
    s.expect(
        &[
            "audit",
            "--profile",
            "k/profile.toml",
            "--suspect",
            "wm.jsonl",
            "--report",
            "a",
            "--plan",
        ],
        0,
    );
    let evidence: Value = serde_json::from_str(&s.read("a/evidence.json")).unwrap();
    let audit = &evidence["findings"];
    assert_eq!(audit["kind"], "audit");
    assert_eq!(audit["verdict"], "watermarked");
    assert_eq!(audit["curve"].as_array().unwrap().len(), 3);
    assert!(audit["plan"].is_string());
    let html = s.read("a/report.html");
    assert!(html.contains("The suspect model carries the watermark"));
    assert!(
        html.contains("<svg")
            && html.contains("<polyline")
            && html.contains("threshold: 1 in 10^6")
    );
    s.expect(&["verify-report", "a", "--profile", "k/profile.toml"], 0);

    s.expect(
        &[
            "audit",
            "--profile",
            "k/profile.toml",
            "--suspect",
            "plain.jsonl",
            "--report",
            "b",
        ],
        0,
    );
    let html = s.read("b/report.html");
    assert!(
        html.contains("The watermark was not detected: not detected at"),
        "inconclusive wording"
    );
    s.altered("b", "b2", "evidence.json", |t| {
        t.replacen("\"green\": ", "\"green\": 1", 1)
    });
    let err = s.expect(&["verify-report", "b2", "--profile", "k/profile.toml"], 6);
    assert!(err.contains("statistics.green"), "{err}");
    s.expect(
        &["verify-report", "b", "--profile", "other/profile.toml"],
        5,
    );
}

/// `audit --accounts --report`: the per-account tests go into evidence.json and the page, the
/// list of accounts is an input, and verify-report confirms them (and names an altered list).
#[test]
fn an_audit_report_names_the_accounts_a_student_learned_from() {
    let s = Scratch::new("accounts");
    s.expect(&["keygen", "--out", "k", "--vocab-size", "1000"], 0);
    let served = s.expect(
        &[
            "generate",
            "--profile",
            "k/profile.toml",
            "--synthetic",
            "--count",
            "6",
            "--seed",
            "21",
            "--account",
            "acct-7",
            "--json",
        ],
        0,
    );
    s.write("served.jsonl", &served);
    let list: String = (0..10).map(|i| format!("acct-{i}\n")).collect();
    s.write("accounts.txt", &list);
    s.expect(
        &[
            "audit",
            "--profile",
            "k/profile.toml",
            "--suspect",
            "served.jsonl",
            "--accounts",
            "accounts.txt",
            "--report",
            "r",
        ],
        0,
    );
    let evidence: Value = serde_json::from_str(&s.read("r/evidence.json")).unwrap();
    let accounts = &evidence["findings"]["accounts"];
    assert_eq!(accounts["accounts_tested"], 10, "{accounts}");
    assert_eq!(
        accounts["attributed"],
        serde_json::json!(["acct-7"]),
        "{accounts}"
    );
    assert!(evidence["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["role"] == "accounts tested"));
    let html = s.read("r/report.html");
    assert!(html.contains("The suspect learned from the answers served to: acct-7."));
    s.expect(&["verify-report", "r", "--profile", "k/profile.toml"], 0);

    s.write("accounts.txt", &list.replace("acct-7", "acct-77"));
    let err = s.expect(&["verify-report", "r", "--profile", "k/profile.toml"], 6);
    assert!(
        err.contains("accounts.txt") || err.contains("SHA-256"),
        "{err}"
    );
}

/// A hand-written WordLevel tokenizer.json that splits on whitespace and punctuation.
fn tokenizer(words: &[&str]) -> String {
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

#[test]
fn a_hostile_document_never_reaches_the_page_unescaped() {
    let s = Scratch::new("hostile");
    let words = [
        "<", ">", "</", "script", "alert", "(\"", "\")", "'", "onerror", "the", "cat", "sat",
    ];
    s.write("tokenizer.json", &tokenizer(&words));
    s.expect(
        &["keygen", "--out", "k", "--tokenizer", "tokenizer.json"],
        0,
    );
    let name = "<b onmouseover='x'>\"q\".txt";
    let body =
        "the cat < script > alert (\" x \") </ script > sat ' onerror ' the cat sat ".repeat(4);
    std::fs::write(s.path(name), &body).unwrap();
    let line = serde_json::json!({"id": "<script>alert('id')</script>", "text": body});
    s.write("docs.jsonl", &format!("{line}\n"));
    s.expect(
        &[
            "detect",
            "--profile",
            "k/profile.toml",
            "--report",
            "rep",
            name,
            "docs.jsonl",
        ],
        0,
    );
    let html = s.read("rep/report.html");
    let lower = html.to_lowercase();
    assert!(
        !lower.contains("<script") && !lower.contains("</script"),
        "raw script tag"
    );
    assert!(
        !lower.contains("<b ") && !lower.contains("onmouseover='"),
        "raw markup from a file name"
    );
    assert!(
        html.contains("&lt;script&gt;alert(&#39;id&#39;)&lt;/script&gt;"),
        "escaped id"
    );
    assert!(
        html.contains("&lt;b onmouseover=&#39;x&#39;&gt;&quot;q&quot;.txt"),
        "escaped name"
    );
    assert!(
        html.contains(">&lt;/</span>") && html.contains(">script</span>"),
        "escaped tokens"
    );
    // Every attribute value is quoted with ", and no input quote survives inside one.
    for tag in html.split('<').skip(1) {
        let inside = tag.split('>').next().unwrap();
        assert_eq!(
            inside.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{inside}>"
        );
    }
    s.expect(&["verify-report", "rep", "--profile", "k/profile.toml"], 0);
    let _ = Path::new(name);
}
