//! The tokenizer rebuilt from the default model's GGUF metadata: vocabulary and special ids,
//! lossless round trips on real text, known tokenizations, a stable fingerprint.
//!
//! Needs the model file (`make model`, or scripts/fetch-model.sh). Without it each test prints
//! a note and passes, unless `CI=true` or `TRACEMARK_REQUIRE_MODEL=1`, when it fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tracemark_model::tokenizer::{
    chat_prompt, load_default_tokenizer, tokenizer_json_from_gguf, write_tokenizer_json,
    GgufTokenizer, DEFAULT_SYSTEM_PROMPT,
};
use watermark_core::TextTokenizer;

mod support;
use support::model_path;

/// How much of the corpus the round trip covers, spread evenly over the genres.
const ROUND_TRIP_BYTES: usize = 2 << 20;

struct Loaded {
    gguf: GgufTokenizer,
    text: TextTokenizer,
    /// The same JSON loaded by the `tokenizers` crate itself, for token lookups.
    hf: tokenizers::Tokenizer,
}

fn loaded() -> Option<&'static Loaded> {
    static LOADED: OnceLock<Option<Loaded>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = model_path()?;
            let gguf = GgufTokenizer::from_file(&path).expect("the model's tokenizer builds");
            let text = gguf.text_tokenizer().expect("its json loads");
            let hf = tokenizers::Tokenizer::from_bytes(gguf.json()).expect("its json loads");
            Some(Loaded { gguf, text, hf })
        })
        .as_ref()
}

impl Loaded {
    fn id(&self, token: &str) -> u32 {
        self.hf
            .token_to_id(token)
            .unwrap_or_else(|| panic!("{token:?} is not in the vocabulary"))
    }

    fn tokens(&self, text: &str) -> Vec<String> {
        let ids = self.text.encode(text).expect("encodes");
        ids.iter()
            .map(|&id| self.hf.id_to_token(id).expect("an id of the vocabulary"))
            .collect()
    }
}

#[test]
fn vocabulary_and_special_ids() {
    let Some(t) = loaded() else { return };
    assert_eq!(t.gguf.vocab_size(), 49152);
    assert_eq!(t.text.vocab_size(), 49152);
    assert_eq!(t.gguf.pre(), "smollm");

    let s = t.gguf.special_tokens();
    assert_eq!((s.bos, s.eos), (1, 2), "{s:?}");
    assert_eq!((s.pad, s.unk), (Some(2), Some(0)), "{s:?}");
    assert_eq!(
        (s.im_start, s.im_end, s.end_of_text),
        (Some(1), Some(2), Some(0)),
        "{s:?}"
    );
    assert_eq!(s.stop_ids(), vec![2, 0]);
    assert_eq!(t.id("<|endoftext|>"), 0);
    assert_eq!(t.id("<|im_start|>"), 1);
    assert_eq!(t.id("<|im_end|>"), 2);

    // The 17 control tokens are special added tokens with their vocabulary ids.
    let added = t.hf.get_added_tokens_decoder();
    assert_eq!(added.len(), 17, "{added:?}");
    for (id, token) in &added {
        assert!(
            *id < 17 && token.special && !token.normalized,
            "{id}: {token:?}"
        );
    }

    // The chat template is the one chat_prompt renders (its string literals hold real
    // newlines).
    let template = t
        .gguf
        .chat_template()
        .expect("the GGUF has a chat template");
    let expected = [
        "messages[0]['role'] != 'system' %}".to_string(),
        format!("'<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n'"),
        "'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'"
            .to_string(),
        "'<|im_start|>assistant\n'".to_string(),
    ];
    for part in expected {
        assert!(template.contains(&part), "{part:?} not in {template:?}");
    }
}

#[test]
fn known_tokenizations() {
    let Some(t) = loaded() else { return };
    // Digits are split one by one (Digits(individual_digits) / llama.cpp's `\p{N}`).
    assert_eq!(t.tokens("2024"), ["2", "0", "2", "4"]);
    assert_eq!(t.tokens("in 1611."), ["in", "Ġ", "1", "6", "1", "1", "."]);
    // Digits also splits other numerals from the space before them (GPT-2's regex alone
    // would give "ĠÂ" "½").
    assert_eq!(t.tokens(" ½"), ["Ġ", "Â½"]);
    // No space is put before the text, and a leading space is part of the word.
    assert_eq!(t.tokens("hello"), ["hello"]);
    assert_eq!(t.tokens(" hello"), ["Ġhello"]);
    assert_ne!(t.id("hello"), t.id("Ġhello"));
    assert_eq!(t.tokens("Hello, world!"), ["Hello", ",", "Ġworld", "!"]);
    // GPT-2's contractions and whitespace rules.
    assert_eq!(t.tokens("don't"), ["don", "'t"]);
    assert_eq!(t.tokens("a\n\nb"), ["a", "Ċ", "Ċ", "b"]);
    assert_eq!(t.tokens("a  b"), ["a", "Ġ", "Ġb"]);
    // Fixed ids, as a regression check on the whole pipeline.
    assert_eq!(
        t.text.encode("Hello, world! It's 2024.").expect("encodes"),
        [
            t.id("Hello"),
            t.id(","),
            t.id("Ġworld"),
            t.id("!"),
            t.id("ĠIt"),
            t.id("'s"),
            t.id("Ġ"),
            t.id("2"),
            t.id("0"),
            t.id("2"),
            t.id("4"),
            t.id("."),
        ]
    );
    let ids = t.text.encode("Hello, world! It's 2024.").expect("encodes");
    eprintln!("\"Hello, world! It's 2024.\" -> {ids:?}");
    assert_eq!(ids, [19556, 28, 905, 17, 657, 506, 216, 34, 32, 34, 36, 30]);

    // A chat prompt: each marker is one special id, everything else round-trips.
    let prompt = chat_prompt(None, "Write a haiku about 2024.");
    let ids = t.text.encode(&prompt).expect("encodes");
    let count = |id: u32| ids.iter().filter(|&&i| i == id).count();
    assert_eq!(count(1), 3, "{ids:?}");
    assert_eq!(count(2), 2, "{ids:?}");
    assert_eq!(ids[0], 1);
    assert_eq!(ids[1], t.id("system"));
    let last = ids.iter().rposition(|&i| i == 1).expect("an <|im_start|>");
    assert_eq!(
        t.text.decode(&ids[last + 1..]).expect("decodes"),
        "assistant\n"
    );
    assert_eq!(t.text.decode(&ids).expect("decodes"), prompt);
    // So is a literal marker in text: the Hugging Face tokenizer does the same.
    assert_eq!(
        t.text.encode("a<|endoftext|>b").expect("encodes"),
        [t.id("a"), 0, t.id("b")]
    );
    // Bytes outside the vocabulary are dropped, not mapped to an unknown token.
    assert_eq!(t.tokens("a\u{4}b"), ["a", "b"]);
    // U+50000 is F1 90 80 80 in UTF-8: the lead byte goes, the continuation bytes stay.
    assert_eq!(t.tokens("x\u{50000}y"), ["x", "Ĳ", "Ģ", "Ģ", "y"]);
    // Otherwise any UTF-8 round-trips.
    for text in [
        "naïve café 😀 — ½ ٣ 東京",
        "\ttabs\r\nand  spaces  ",
        "\u{0}\u{7f}",
    ] {
        let ids = t.text.encode(text).expect("encodes");
        assert_eq!(t.text.decode(&ids).expect("decodes"), text);
    }
}

/// candle 0.11.1's `TokenizerFromGguf` was evaluated and is not used: for `smollm` it falls back
/// to GPT-2's default byte level, which puts a space before the text and lacks the Digits step.
/// If this starts failing after a candle upgrade, candle's builder may have become usable.
#[test]
fn candle_gguf_tokenizer_differs_for_smollm() {
    let Some(path) = model_path() else { return };
    let Some(t) = loaded() else { return };
    let mut file = std::fs::File::open(&path).expect("opens");
    let content = Content::read(&mut file).expect("reads");
    let candle = tokenizers::Tokenizer::from_gguf(&content).expect("candle builds one");
    let ids = |text: &str| -> Vec<u32> {
        candle
            .encode(text, false)
            .expect("encodes")
            .get_ids()
            .to_vec()
    };
    // candle puts a space before the text.
    assert_eq!(ids("hello"), [t.id("Ġhello")]);
    assert_eq!(ids("2024"), [216, 34, 32, 34, 36]);
    assert_eq!(t.text.encode("2024").expect("encodes"), [34, 32, 34, 36]);
    // candle has no Digits step.
    assert_eq!(ids("x ½"), [t.id("Ġx"), t.id("ĠÂ"), t.id("½")]);
}

/// Up to `budget` bytes of the corpus, taken from whichever genre has the fewest bytes so far,
/// so all genres are covered about evenly. `None` when the corpus is absent.
fn corpus_sample(budget: usize) -> Option<Vec<(String, String)>> {
    let path = support::corpus_path()?;
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "note: {}: {e}; round-tripping built-in text instead",
                path.display()
            );
            return None;
        }
    };
    let mut by_genre: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
        let line = line.expect("the corpus decompresses");
        if line.trim().is_empty() {
            continue;
        }
        let doc: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let text = doc["text"].as_str().expect("a text field").to_string();
        let genre = doc["genre"].as_str().unwrap_or("?").to_string();
        by_genre.entry(genre).or_default().push(text);
    }
    let mut taken: BTreeMap<&str, (usize, usize)> =
        by_genre.keys().map(|g| (g.as_str(), (0, 0))).collect();
    let mut sample = Vec::new();
    let mut total = 0;
    while total < budget {
        let next = taken
            .iter()
            .filter(|(g, (n, _))| *n < by_genre[**g].len())
            .min_by_key(|(_, (_, bytes))| *bytes)
            .map(|(g, _)| *g);
        let Some(genre) = next else { break };
        let entry = taken.get_mut(genre).expect("a genre");
        let text = &by_genre[genre][entry.0];
        entry.0 += 1;
        entry.1 += text.len();
        total += text.len();
        sample.push((genre.to_string(), text.clone()));
    }
    for (genre, (docs, bytes)) in &taken {
        eprintln!("  {genre}: {docs} documents, {bytes} bytes");
    }
    Some(sample)
}

const FALLBACK: &str = "It is a truth universally acknowledged, that a single man in possession \
of a good fortune, must be in want of a wife.\n\nIn the beginning God created the heaven and the \
earth. And the earth was without form, and void; and darkness was upon the face of the deep.\n\n\
CYNIC, n. A blackguard whose faulty vision sees things as they are, not as they ought to be.\n\n\
On 12 March 2024 at 07:45, 3.14159 people said \"don't\" -- twice! (See p. 1,024; cf. §7.)\n";

#[test]
fn decode_inverts_encode_on_the_corpus() {
    let Some(t) = loaded() else { return };
    let docs = corpus_sample(ROUND_TRIP_BYTES)
        .unwrap_or_else(|| vec![("built-in".to_string(), FALLBACK.to_string())]);
    let (mut bytes, mut tokens, mut failures, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    let start = Instant::now();
    for (genre, text) in &docs {
        if text.trim().is_empty() {
            skipped += 1;
            continue;
        }
        let ids = t.text.encode(text).expect("encodes");
        let back = t.text.decode(&ids).expect("decodes");
        bytes += text.len();
        tokens += ids.len();
        if back != *text {
            failures += 1;
            if failures <= 5 {
                eprintln!("round trip failed ({genre}): {text:?} -> {back:?}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "round trip: {} documents ({skipped} blank skipped), {bytes} bytes, {tokens} tokens \
         ({:.2} bytes/token), {failures} failures, {secs:.1} s ({:.2} MB/s)",
        docs.len(),
        bytes as f64 / tokens.max(1) as f64,
        bytes as f64 / 1e6 / secs,
    );
    assert_eq!(failures, 0);
    assert!(tokens > 0);
}

#[test]
fn fingerprint_is_stable() {
    let Some(path) = model_path() else { return };
    let first = tokenizer_json_from_gguf(&path).expect("builds");
    let second = tokenizer_json_from_gguf(&path).expect("builds");
    assert!(first == second, "two builds serialise differently");
    let a = load_default_tokenizer(&path).expect("loads");
    let b = load_default_tokenizer(&path).expect("loads");
    assert_eq!(a.fingerprint(), b.fingerprint());
    eprintln!("tokenizer fingerprint: {}", a.fingerprint());

    // The json is a fixed point of the tokenizers crate's writer ...
    let reread = tokenizers::Tokenizer::from_bytes(&first)
        .expect("loads")
        .to_string(false)
        .expect("serialises");
    assert!(reread.as_bytes() == first.as_slice(), "not a fixed point");

    // ... and a saved tokenizer.json loads with the same fingerprint.
    let dir = std::env::temp_dir().join(format!("tracemark-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("tokenizer.json");
    let written = write_tokenizer_json(&path, &out).expect("writes");
    let from_file = TextTokenizer::from_file(&out).expect("loads");
    assert_eq!(written.fingerprint(), a.fingerprint());
    assert_eq!(from_file.fingerprint(), a.fingerprint());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_model_is_reported_with_the_fetch_command() {
    let path = Path::new("/nonexistent/tracemark/model.gguf");
    let e = load_default_tokenizer(path).expect_err("no such file");
    let msg = e.to_string();
    assert!(
        msg.contains("make model") && msg.contains(path.to_str().unwrap_or("?")),
        "{msg}"
    );
}
