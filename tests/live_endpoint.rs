//! `tracemark audit --suspect-url` end to end, against a real server: llama-cpp-python's
//! OpenAI-compatible server (scripts/serve-suspect.py), started here on 127.0.0.1 serving the
//! default model, once through tracemark's own logits processor under the test's key (a
//! stand-in for a student that learned the watermark perfectly) and once untouched (an
//! innocent suspect).
//!
//! It needs a Python with llama-cpp-python's server and the tracemark package (`make python`
//! makes watermark-py/.venv; TRACEMARK_PYTHON names another) and the default model. Without
//! them the server tests print a note and pass, unless `TRACEMARK_REQUIRE_LIVE=1`, when they
//! fail: `make test-live` (run by CI after `make test`, which makes that environment only after
//! its `cargo test`) sets it, with everything in place.
//!
//! The tests start servers one at a time (a lock), each bounded in time, and kill every server
//! they start whatever happens (`Server`'s `Drop`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRACEMARK: &str = env!("CARGO_BIN_EXE_tracemark");
/// Questions per audit: enough to flag the watermarked server far below FPR 1e-6 (see
/// `the_watermarked_server_is_flagged_and_an_interrupted_audit_resumes`), few enough for two
/// slow cores.
const QUERIES: usize = 24;
/// Tokens per answer.
const MAX_TOKENS: &str = "48";
/// The environment variable the API key travels in, and the key.
const KEY_VAR: &str = "TRACEMARK_LIVE_TEST_KEY";
const API_KEY: &str = "sk-live-test-5f1e9c0d7b";

/// One server at a time: two slow cores.
static SERVERS: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The Python that can run the server, or why there is none.
fn python() -> Result<PathBuf, String> {
    let python = std::env::var_os("TRACEMARK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("watermark-py/.venv/bin/python"));
    let probe = Command::new(&python)
        .args([
            "-c",
            "import llama_cpp.server.app, uvicorn, tracemark.adapters.llama_cpp",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{} cannot import the server or tracemark: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("{}: {e}", python.display())),
    }
}

/// What the live tests need, or `None` (with a note) when it is missing and not required.
fn setup() -> Option<(PathBuf, PathBuf)> {
    let model = tracemark_model::default_model_path();
    let missing = match python() {
        Ok(python) if model.is_file() => return Some((python, model)),
        Ok(_) => format!("{} not found (make model)", model.display()),
        Err(e) => e,
    };
    let required = std::env::var("TRACEMARK_REQUIRE_LIVE").is_ok_and(|v| v == "1");
    assert!(!required, "live endpoint tests required, but {missing}");
    eprintln!("note: live endpoint tests skipped: {missing} (make test-live sets it up)");
    None
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// A running llama-cpp-python server; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Serves the default model on a free port, watermarked under `profile` if given; waits
    /// (at most two minutes) until it accepts connections.
    fn start(python: &Path, model: &Path, profile: Option<&Path>, log: &Path) -> Server {
        let port = free_port();
        let mut command = Command::new(python);
        command
            .arg(workspace().join("scripts/serve-suspect.py"))
            .args(["--model".as_ref(), model.as_os_str()])
            .args(["--port", &port.to_string(), "--api-key-env", KEY_VAR])
            .env(KEY_VAR, API_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("server log"));
        if let Some(profile) = profile {
            command.args(["--watermark".as_ref(), profile.as_os_str()]);
        }
        let mut server = Server {
            child: command.spawn().expect("start the server"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("the server exited ({status}) before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the server did not listen within 2 minutes"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test's directory, key and prompts.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let dir =
            std::env::temp_dir().join(format!("tracemark-live-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test directory");
        let sandbox = Sandbox { dir };
        let keygen = sandbox.tracemark(&["keygen", "--out", "keys"]);
        assert!(keygen.status.success(), "keygen: {}", text(&keygen.stderr));
        let topics = [
            "cats",
            "the ocean",
            "bread",
            "volcanoes",
            "chess",
            "rain",
            "bicycles",
            "the moon",
            "coffee",
            "trees",
            "music",
            "glass",
            "bees",
            "winter",
            "trains",
            "maps",
            "paper",
            "salt",
            "bridges",
            "clocks",
            "rivers",
            "gardens",
            "kites",
            "libraries",
        ];
        let prompts: String = topics
            .iter()
            .map(|t| format!("{{\"prompt\":\"Write a short paragraph about {t}.\"}}\n"))
            .collect();
        std::fs::write(sandbox.path("prompts.jsonl"), prompts).expect("prompts");
        sandbox
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn profile(&self) -> PathBuf {
        self.path("keys/profile.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(TRACEMARK);
        command
            .args(args)
            .current_dir(&self.dir)
            .env(KEY_VAR, API_KEY)
            .stdin(Stdio::null());
        command
    }

    fn tracemark(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run tracemark")
    }

    /// `audit --suspect-url URL` with the test's prompts, key and answer length, no rate limit
    /// and the default temperature (1), and `extra`.
    fn live_args<'a>(&self, url: &'a str, cache: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "audit",
            "--profile",
            "keys/profile.toml",
            "--suspect-url",
            url,
            "--prompts",
            "prompts.jsonl",
            "--cache",
            cache,
            "--api-key-env",
            KEY_VAR,
            "--max-tokens",
            MAX_TOKENS,
            "--rate",
            "0",
        ];
        args.extend_from_slice(extra);
        args
    }

    fn cache_lines(&self, cache: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(cache))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `query` of each cache line, in order.
fn queries(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a cache line is JSON");
            v["query"].as_u64().expect("a query number")
        })
        .collect()
}

/// The one `error:` line of a failed run, checked to hold no key.
fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains(API_KEY), "the key leaked: {stderr}");
    lines[0].to_string()
}

fn assert_no_key(sandbox: &Sandbox, cache: &str, outputs: &[&Output]) {
    let cache_text = std::fs::read_to_string(sandbox.path(cache)).unwrap_or_default();
    assert!(!cache_text.contains(API_KEY), "the key is in the cache");
    for out in outputs {
        assert!(!text(&out.stdout).contains(API_KEY) && !text(&out.stderr).contains(API_KEY));
    }
}

/// Waits (bounded) for `child` to exit and returns its output.
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("poll the audit").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the audit did not stop within {limit:?} of losing its server");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("the audit's output")
}

/// Power: `tracemark detect` measures green fractions of 0.61 to 0.74 on the default model's
/// watermarked answers (γ = 0.25, δ = 2; README, `make demo`), and the pooled audits of this
/// server's answers measured 0.51 to 0.57 (README, "Auditing a live endpoint"; lower, but
/// these answers go through llama-cpp-python's own sampler settings, a cause not investigated
/// further). 24 answers of 48 tokens give about 1,100 scored tokens, where
/// FPR 1e-6 needs only G ≥ 0.315 N (exact binomial tail); at 0.5 the expected log10 p is near
/// −80, and the answers would have to fall short by about 11 standard deviations to fail.
#[test]
fn the_watermarked_server_is_flagged_and_an_interrupted_audit_resumes() {
    let Some((python, model)) = setup() else {
        return;
    };
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new("watermarked");
    let profile = sb.profile();
    let cache = "answers.jsonl";

    // Run 1: the server is killed once a third of the answers are in.
    let server = Server::start(&python, &model, Some(&profile), &sb.path("server1.log"));
    let url = server.url();
    let args = sb.live_args(&url, cache, &["--concurrency", "2", "--retries", "1"]);
    let audit = sb
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the audit");
    let deadline = Instant::now() + Duration::from_secs(240);
    while sb.cache_lines(cache).len() < QUERIES / 3 {
        assert!(Instant::now() < deadline, "no answers within 4 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let interrupted = wait_bounded(audit, Duration::from_secs(90));
    let error = one_error_line(&interrupted);
    assert!(
        error.contains("unreachable") || error.contains("HTTP 5"),
        "{error}"
    );
    let before = sb.cache_lines(cache);
    assert!(
        before.len() >= QUERIES / 3 && before.len() < QUERIES,
        "{}",
        before.len()
    );

    // Run 2, on a restarted server: resumes, asking only what the cache lacks.
    let server = Server::start(&python, &model, Some(&profile), &sb.path("server2.log"));
    let url = server.url();
    let resumed = sb.tracemark(&sb.live_args(&url, cache, &[]));
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let after = sb.cache_lines(cache);
    assert_eq!(
        after[..before.len()],
        before[..],
        "an answer of the first run was lost"
    );
    let mut asked = queries(&after);
    asked.sort_unstable();
    assert_eq!(
        asked,
        (0..QUERIES as u64).collect::<Vec<_>>(),
        "duplicates or gaps"
    );
    let report = text(&resumed.stdout);
    assert!(report.contains("WATERMARKED"), "{report}");
    assert!(report.contains(&format!(
        "audit (closed model, unsupervised): {QUERIES} documents"
    )));

    // The same report offline, from the cache alone.
    let offline = sb.tracemark(&[
        "audit",
        "--profile",
        "keys/profile.toml",
        "--suspect",
        cache,
    ]);
    assert_eq!(text(&offline.stdout), report);

    // A line torn by a kill mid-write is cut off and its question asked again.
    let last = after.last().expect("a last line").clone();
    let torn = after[..after.len() - 1].join("\n") + "\n" + &last[..last.len() / 2];
    std::fs::write(sb.path(cache), torn).expect("tear the last line");
    let repaired = sb.tracemark(&sb.live_args(&url, cache, &[]));
    assert!(repaired.status.success(), "{}", text(&repaired.stderr));
    assert!(text(&repaired.stderr).contains("cut off a torn last line"));
    let lines = sb.cache_lines(cache);
    assert_eq!(lines.len(), QUERIES);
    assert_eq!(lines[..QUERIES - 1], after[..QUERIES - 1]);
    assert_eq!(queries(&lines)[QUERIES - 1], queries(&after)[QUERIES - 1]);
    assert_no_key(&sb, cache, &[&interrupted, &resumed, &offline, &repaired]);
}

/// `audit --suspect-url URL --texts OURS.jsonl --cache C --json` (reading mode over the API).
fn read_over_api(sb: &Sandbox, url: &str, cache: &str) -> Output {
    sb.tracemark(&[
        "audit",
        "--profile",
        "keys/profile.toml",
        "--suspect-url",
        url,
        "--texts",
        "ours.jsonl",
        "--cache",
        cache,
        "--api-key-env",
        KEY_VAR,
        "--rate",
        "0",
        "--concurrency",
        "2",
        "--json",
    ])
}

/// The `--json` report without its wall-clock time.
fn report_json(out: &Output) -> serde_json::Value {
    let mut report: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON report");
    report.as_object_mut().expect("an object").remove("seconds");
    report
}

/// Reading mode over the API: the endpoint's greedy next token after each prefix of our
/// watermarked texts. The watermarked server (whose greedy choice is the watermarked model's)
/// is flagged and the untouched one is not (probability 1e-6); a rerun with every prediction
/// cached asks nothing, so it runs with the server gone, and prints the same report.
#[test]
fn reading_mode_over_the_api_flags_only_the_watermarked_server() {
    let Some((python, model)) = setup() else {
        return;
    };
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new("reading");
    let profile = sb.profile();
    let server = Server::start(&python, &model, Some(&profile), &sb.path("server-wm.log"));
    let url = server.url();
    // Our watermarked texts: four answers of the watermarked server, as its cache holds them.
    let ours = sb.tracemark(&sb.live_args(&url, "ours.jsonl", &["--queries", "4"]));
    assert!(ours.status.success(), "{}", text(&ours.stderr));

    let guilty = read_over_api(&sb, &url, "reads-wm.jsonl");
    assert!(guilty.status.success(), "{}", text(&guilty.stderr));
    let report = report_json(&guilty);
    assert_eq!(report["mode"], "reading", "{report}");
    assert_eq!(report["documents"], 4, "{report}");
    assert_eq!(report["watermarked"], true, "{report}");
    let asked = sb.cache_lines("reads-wm.jsonl").len();
    assert!(
        asked as u64 >= report["tokens"].as_u64().expect("tokens") - 4,
        "{asked}"
    );

    drop(server);
    let offline = read_over_api(&sb, &url, "reads-wm.jsonl");
    assert!(offline.status.success(), "{}", text(&offline.stderr));
    assert_eq!(report_json(&offline), report);
    assert_eq!(
        sb.cache_lines("reads-wm.jsonl").len(),
        asked,
        "nothing asked again"
    );

    let server = Server::start(&python, &model, None, &sb.path("server-plain.log"));
    let innocent = read_over_api(&sb, &server.url(), "reads-plain.jsonl");
    assert!(innocent.status.success(), "{}", text(&innocent.stderr));
    let plain = report_json(&innocent);
    assert_eq!(plain["watermarked"], false, "{plain}");
    assert!(plain["scored"].as_u64().expect("scored") > 50, "{plain}");
    eprintln!(
        "reading over the API: watermarked server {}/{} green, log10 p {:.1}; untouched {}/{}, \
         log10 p {:.2}; {asked} requests each",
        report["green"],
        report["scored"],
        report["log10_p_value"].as_f64().unwrap_or(f64::NAN),
        plain["green"],
        plain["scored"],
        plain["log10_p_value"].as_f64().unwrap_or(f64::NAN),
    );
    assert_no_key(&sb, "reads-wm.jsonl", &[&guilty, &offline, &innocent]);
}

/// The untouched model is not flagged (a false positive here has probability 1e-6); the plain
/// completions route works; a cache asked otherwise is refused; a wrong key and a wrong path
/// are one-line HTTP errors from the real server.
#[test]
fn the_untouched_model_is_not_flagged_and_http_errors_are_one_line() {
    let Some((python, model)) = setup() else {
        return;
    };
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new("innocent");
    let server = Server::start(&python, &model, None, &sb.path("server.log"));
    let url = server.url();

    let cache = "innocent.jsonl";
    let args = sb.live_args(
        &url,
        cache,
        &["--fail-if-watermarked", "--concurrency", "2"],
    );
    let audit = sb.tracemark(&args);
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    let report = text(&audit.stdout);
    assert!(report.contains("not watermarked at FPR 1e-6"), "{report}");
    assert_eq!(sb.cache_lines(cache).len(), QUERIES);

    // The plain route, with more questions than prompts: they cycle.
    let plain = "plain.jsonl";
    std::fs::write(
        sb.path("two.jsonl"),
        "{\"prompt\":\"Once upon a time\"}\n{\"prompt\":\"The sea\"}\n",
    )
    .expect("two prompts");
    let mut args = sb.live_args(&url, plain, &["--completions", "--queries", "3", "--json"]);
    for arg in args.iter_mut().filter(|a| **a == "prompts.jsonl") {
        *arg = "two.jsonl";
    }
    let completions = sb.tracemark(&args);
    assert!(
        completions.status.success(),
        "{}",
        text(&completions.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_str(text(&completions.stdout).trim()).expect("a JSON report");
    assert_eq!(line["documents"], 3);
    assert!(sb
        .cache_lines(plain)
        .iter()
        .all(|l| l.contains(r#""route":"completions""#)));
    let prompts: Vec<(u64, String)> = sb
        .cache_lines(plain)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            (v["query"].as_u64().expect("query"), v["prompt"].to_string())
        })
        .collect();
    let of = |q: u64| {
        prompts
            .iter()
            .find(|(query, _)| *query == q)
            .map(|(_, p)| p.clone())
    };
    assert_eq!(of(2), of(0), "query 2 asks prompt 0 again");
    assert_ne!(of(1), of(0));

    let other = sb.tracemark(&sb.live_args(&url, cache, &["--temperature", "0.5"]));
    let error = one_error_line(&other);
    assert!(
        error.contains("innocent.jsonl:1: answered with other request parameters"),
        "{error}"
    );

    let wrong_key = sb
        .command(&sb.live_args(&url, "wrong-key.jsonl", &["--retries", "0"]))
        .env(KEY_VAR, "sk-not-the-key")
        .output()
        .expect("run tracemark");
    let error = one_error_line(&wrong_key);
    assert!(
        error.contains("/v1/chat/completions: HTTP 401 after 1 attempt(s): "),
        "{error}"
    );
    assert!(!error.contains("sk-not-the-key"), "{error}");

    let no_v1 = format!("http://127.0.0.1:{}", server.port);
    let error = one_error_line(&sb.tracemark(&sb.live_args(&no_v1, "no-v1.jsonl", &[])));
    let route = format!(":{}/chat/completions: HTTP 404", server.port);
    assert!(error.contains(&route), "{error}");
    assert_no_key(&sb, cache, &[&audit, &completions, &other]);
}

/// A server nobody runs: the audit stops with one line once its retries are spent.
#[test]
fn an_unreachable_server_is_one_error_line() {
    let sb = Sandbox::new("closed");
    let url = format!("http://127.0.0.1:{}/v1", free_port());
    let out = sb.tracemark(&sb.live_args(&url, "c.jsonl", &["--retries", "1"]));
    let error = one_error_line(&out);
    assert!(
        error.contains("/v1/chat/completions: unreachable after 2 attempt(s)"),
        "{error}"
    );
    assert!(sb.cache_lines("c.jsonl").is_empty());
    // Without a cache there is no live audit: a usage error, before any request.
    let mut args = sb.live_args(&url, "c.jsonl", &[]);
    args.retain(|a| !matches!(*a, "--cache" | "c.jsonl"));
    assert_eq!(sb.tracemark(&args).status.code(), Some(2));
}

/// A cache line as a live audit with `live_args` writes it.
fn cache_line(query: u64, prompt: &str, model: &str) -> String {
    let line = serde_json::json!({
        "query": query, "prompt": prompt, "response": "An answer.", "model": model,
        "finish_reason": "length", "timestamp": "2026-11-30T00:00:00Z",
        "endpoint": "http://127.0.0.1:1/v1/chat/completions",
        "request": {"route": "chat", "model": null, "max_tokens": 48, "temperature": 1.0},
    });
    format!("{line}\n")
}

/// A cache is checked before any question is asked: it must hold the prompts' questions and
/// one model's answers.
#[test]
fn a_cache_of_other_prompts_or_another_model_is_refused() {
    let sb = Sandbox::new("refused");
    let url = format!("http://127.0.0.1:{}/v1", free_port());
    let first = "Write a short paragraph about cats.";
    let other_prompt = cache_line(0, "Write a short paragraph about dogs.", "m");
    std::fs::write(sb.path("p.jsonl"), other_prompt).expect("cache");
    let error = one_error_line(&sb.tracemark(&sb.live_args(&url, "p.jsonl", &[])));
    assert!(
        error.contains("p.jsonl: query 0 answers another prompt than line 1"),
        "{error}"
    );

    let two_models =
        cache_line(0, first, "m") + &cache_line(1, "Write a short paragraph about the ocean.", "n");
    std::fs::write(sb.path("m.jsonl"), &two_models).expect("cache");
    let error = one_error_line(&sb.tracemark(&sb.live_args(&url, "m.jsonl", &[])));
    assert!(
        error.contains(r#"m.jsonl: an answer of model "n" among answers of "m""#),
        "{error}"
    );
    // Refusals leave the evidence as it was.
    assert_eq!(
        std::fs::read_to_string(sb.path("m.jsonl")).expect("cache"),
        two_models
    );
}

/// A raw HTTP responder on 127.0.0.1 answering every request with `status`, `headers` and
/// `body`, counting them. Only for what the real server never does (a malformed body, a
/// persistent 503); its thread ends with the test process.
fn responder(status: &str, headers: &str, body: &str) -> (String, Arc<AtomicUsize>) {
    let reply = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("address"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            answer(stream, &reply);
        }
    });
    (url, count)
}

/// Reads one request (headers and body) and writes `reply`.
fn answer(mut stream: TcpStream, reply: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut length = 0;
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let _ = stream.write_all(reply.as_bytes());
}

#[test]
fn malformed_replies_and_persistent_5xx_are_one_error_line() {
    let sb = Sandbox::new("malformed");
    let json = "Content-Type: application/json\r\n";
    let (url, _) = responder(
        "200 OK",
        "Content-Type: text/html\r\n",
        "<html>hello</html>",
    );
    let error = one_error_line(&sb.tracemark(&sb.live_args(&url, "a.jsonl", &[])));
    assert!(
        error.contains("malformed response (not the OpenAI JSON)"),
        "{error}"
    );
    assert!(error.contains("<html>hello</html>"), "{error}");

    let (url, _) = responder(
        "200 OK",
        json,
        r#"{"choices":[{"message":{"content":null}}]}"#,
    );
    let error = one_error_line(&sb.tracemark(&sb.live_args(&url, "b.jsonl", &[])));
    assert!(
        error.contains("holds no answer text (no choices[0].message.content"),
        "{error}"
    );

    let (url, count) = responder(
        "503 Service Unavailable",
        "Retry-After: 0\r\n",
        "overloaded",
    );
    let args = sb.live_args(&url, "c.jsonl", &["--retries", "2", "--queries", "1"]);
    let error = one_error_line(&sb.tracemark(&args));
    assert!(
        error.contains("HTTP 503 after 3 attempt(s): overloaded"),
        "{error}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "one request and two retries"
    );
    for cache in ["a.jsonl", "b.jsonl", "c.jsonl"] {
        assert!(
            sb.cache_lines(cache).is_empty(),
            "{cache} holds a non-answer"
        );
    }
}
