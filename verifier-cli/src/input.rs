//! What the commands read: files or standard input, streamed line by line, and the one JSONL
//! schema every command's lines follow.
//!
//! A JSONL input holds one JSON object per non-empty line ([`Record`]): documents for
//! `detect`, a suspect's outputs, our texts and the filter for `audit`, prompts for
//! `generate`. Lines are numbered from 1; a UTF-8 byte-order mark and surrounding white space
//! are dropped, empty lines are skipped, and every error names the input, or `file:line`.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use watermark_core::SecretKey;

use crate::progress::ReadProgress;

/// The first line of a key file.
const KEY_FILE_HEADER: &str = "tracemark-key-v1";

/// Read buffer: large, so that long lines of token ids take few reads.
const BUFFER_BYTES: usize = 1 << 20;

/// Default bound on one document: a JSONL line, or a whole plain-text input. Tokenizing text
/// costs about 100 bytes of memory per byte, so an unbounded line (`--suspect /dev/zero`)
/// would exhaust memory; real answers are a few kilobytes.
pub const DEFAULT_MAX_DOCUMENT_BYTES: u64 = 16 << 20;

/// The environment variable that raises (or lowers) the bound, in bytes.
pub const MAX_DOCUMENT_BYTES_VAR: &str = "TRACEMARK_MAX_DOCUMENT_BYTES";

/// The bound on one document, from the environment or the default.
pub fn max_document_bytes() -> Result<u64, InputError> {
    positive_setting(MAX_DOCUMENT_BYTES_VAR, DEFAULT_MAX_DOCUMENT_BYTES, "bytes")
}

/// The environment variable that sets an audit's bound on distinct scored tuples.
pub const MAX_AUDIT_TUPLES_VAR: &str = "TRACEMARK_MAX_AUDIT_TUPLES";

/// The bound on an audit's distinct scored tuples (its memory), from the environment or the
/// core's default.
pub fn max_audit_tuples() -> Result<u64, InputError> {
    let default = watermark_core::AuditOptions::DEFAULT_MAX_TUPLES;
    positive_setting(MAX_AUDIT_TUPLES_VAR, default, "tuples")
}

/// A positive whole number from environment variable `var`, or `default` when it is unset.
fn positive_setting(var: &str, default: u64, unit: &str) -> Result<u64, InputError> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(InputError::Setting {
                reason: format!("{var}={v:?} is not a positive number of {unit}"),
            }),
        },
    }
}

/// How an input's I/O errors read. The commands have always worded them differently; each
/// keeps its wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoWording {
    /// `NAME: ERROR`.
    Plain,
    /// `NAME: cannot read: ERROR`.
    CannotRead,
}

/// An input that could not be read as the command needs it.
#[derive(Debug)]
pub enum InputError {
    /// The input could not be opened or read.
    Io {
        name: String,
        wording: IoWording,
        error: std::io::Error,
    },
    /// A line, or a whole plain-text input, is not UTF-8.
    NotUtf8 { at: String },
    /// A line is not a JSON object of the schema (`reason` says why).
    Malformed { at: String, reason: String },
    /// A record has none of the fields that hold the command's body.
    NoBody { at: String, fields: BodyFields },
    /// Every line of a JSONL input is empty.
    NoDocuments { name: String },
    /// A line, or a plain-text input, is longer than the document bound.
    TooLong { at: String, limit: u64 },
    /// The input is a tracemark key file: reading it as text would print the secret.
    KeyFile { name: String },
    /// A setting in the environment is unusable.
    Setting { reason: String },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Io {
                name,
                wording: IoWording::Plain,
                error,
            } => write!(f, "{name}: {error}"),
            InputError::Io {
                name,
                wording: IoWording::CannotRead,
                error,
            } => write!(f, "{name}: cannot read: {error}"),
            InputError::NotUtf8 { at } => write!(f, "{at}: not valid UTF-8 text"),
            InputError::Malformed { at, reason } => {
                write!(f, "{at}: malformed JSONL line: {reason}")
            }
            InputError::NoBody { at, fields } => write!(f, "{at}: needs {}", fields.wanted()),
            InputError::NoDocuments { name } => {
                write!(f, "{name}: no documents (every line is empty)")
            }
            InputError::TooLong { at, limit } => write!(
                f,
                "{at}: longer than {limit} bytes, the bound on one document (set \
                 {MAX_DOCUMENT_BYTES_VAR} to change it)"
            ),
            InputError::KeyFile { name } => write!(
                f,
                "{name}: this is a tracemark key file, not a document; refusing to read it \
                 (the key must stay secret)"
            ),
            InputError::Setting { reason } => write!(f, "{reason}"),
        }
    }
}

// No `source()`: each message already states its cause, and the CLI prints the whole chain.
impl std::error::Error for InputError {}

/// A file or standard input, not yet read.
pub struct Input {
    /// How errors and `file:line` sources name it.
    name: String,
    wording: IoWording,
    reader: Box<dyn Read>,
    /// Its size in bytes, when known (for progress).
    len: Option<u64>,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("name", &self.name)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Input {
    /// Standard input, called `name` in errors and sources.
    pub fn stdin(name: &str, wording: IoWording) -> Input {
        Input {
            name: name.to_string(),
            wording,
            reader: Box::new(std::io::stdin()),
            len: None,
        }
    }

    /// The file at `path`, called as the path displays.
    pub fn file(path: &Path, wording: IoWording) -> Result<Input, InputError> {
        let name = path.display().to_string();
        match File::open(path) {
            Ok(file) => Ok(Input {
                len: file.metadata().ok().map(|m| m.len()),
                name,
                wording,
                reader: Box::new(file),
            }),
            Err(error) => Err(InputError::Io {
                name,
                wording,
                error,
            }),
        }
    }

    /// The name errors and sources give this input.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole input as one UTF-8 text (a plain-text document), as written: no trimming.
    pub fn read_text(self) -> Result<String, InputError> {
        let limit = max_document_bytes()?;
        let mut bytes = Vec::new();
        if let Err(error) = self.reader.take(limit + 1).read_to_end(&mut bytes) {
            return Err(InputError::Io {
                name: self.name,
                wording: self.wording,
                error,
            });
        }
        if bytes.len() as u64 > limit {
            return Err(InputError::TooLong {
                at: self.name,
                limit,
            });
        }
        if SecretKey::looks_like_key_file(&bytes) {
            return Err(InputError::KeyFile { name: self.name });
        }
        String::from_utf8(bytes).map_err(|_| InputError::NotUtf8 { at: self.name })
    }

    /// The input's non-empty lines, read as they are needed.
    pub fn lines(self) -> Result<Lines, InputError> {
        Ok(Lines {
            limit: max_document_bytes()?,
            name: self.name,
            wording: self.wording,
            total: self.len,
            reader: BufReader::with_capacity(BUFFER_BYTES, self.reader),
            buffer: Vec::new(),
            number: 0,
            records: 0,
            progress: None,
        })
    }
}

/// One non-empty line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `file:line`, for errors and sources.
    pub at: String,
    /// The line without its byte-order mark, surrounding white space and line ending.
    pub text: String,
}

impl Line {
    /// The document on this line, its body in `body`.
    pub fn document(self, body: BodyFields) -> Result<Document, InputError> {
        match Record::parse(&self.text, body.names()) {
            Ok(record) => record.into_document(self.at, body),
            Err(e) => Err(InputError::Malformed {
                at: self.at,
                reason: e.to_string(),
            }),
        }
    }
}

/// The non-empty lines of an input, streamed: an iterator that stops at the end or yields an
/// error (and should then not be asked again).
pub struct Lines {
    /// The bound on one line, in bytes.
    limit: u64,
    name: String,
    wording: IoWording,
    total: Option<u64>,
    reader: BufReader<Box<dyn Read>>,
    buffer: Vec<u8>,
    /// Lines read so far, empty ones included: the number of the last line.
    number: usize,
    /// Non-empty lines yielded so far.
    records: usize,
    progress: Option<ReadProgress>,
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines")
            .field("name", &self.name)
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl Lines {
    /// Shows how much of the input is read on stderr, when it is a terminal, as `what`.
    pub fn with_progress(mut self, what: &str) -> Self {
        self.progress = Some(ReadProgress::new(what, self.total));
        self
    }

    /// After reading every line: how many were not empty; an error when none was.
    pub fn finish(self) -> Result<usize, InputError> {
        if self.records == 0 {
            return Err(InputError::NoDocuments { name: self.name });
        }
        Ok(self.records)
    }
}

impl Iterator for Lines {
    type Item = Result<Line, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buffer.clear();
            let mut bounded = (&mut self.reader).take(self.limit + 1);
            let read = match bounded.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(read) => read,
                Err(error) => {
                    return Some(Err(InputError::Io {
                        name: self.name.clone(),
                        wording: self.wording,
                        error,
                    }))
                }
            };
            self.number += 1;
            if let Some(progress) = &mut self.progress {
                progress.advance(read as u64);
            }
            let at = format!("{}:{}", self.name, self.number);
            if self.buffer.len() as u64 > self.limit {
                return Some(Err(InputError::TooLong {
                    at,
                    limit: self.limit,
                }));
            }
            let Ok(text) = std::str::from_utf8(&self.buffer) else {
                return Some(Err(InputError::NotUtf8 { at }));
            };
            let text = text.trim_start_matches('\u{feff}').trim();
            if text == KEY_FILE_HEADER {
                return Some(Err(InputError::KeyFile {
                    name: self.name.clone(),
                }));
            }
            if !text.is_empty() {
                self.records += 1;
                let text = text.to_string();
                return Some(Ok(Line { at, text }));
            }
        }
    }
}

/// One JSONL line: every field any command reads. Each is optional here; the command says
/// which it needs. Other fields are allowed (`generate --json` writes `watermarked` and
/// `stopped`; pipelines add their own). Token ids are exact where text must be re-tokenized,
/// so where a line has both, the ids are used.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct Record {
    /// Any JSON value naming the line; `detect --json` and `generate --json` echo it.
    pub id: Option<Value>,
    /// The prompt the text answers, as text ...
    pub prompt: Option<String>,
    /// ... or as token ids.
    pub prompt_tokens: Option<Vec<u32>>,
    /// A document (`detect`), or an answer (`audit`).
    pub text: Option<String>,
    /// Its token ids (`generate --json` writes the answer's here).
    pub tokens: Option<Vec<u32>>,
    /// An answer (`audit`).
    pub response: Option<String>,
    /// Its token ids.
    pub response_tokens: Option<Vec<u32>>,
    /// An answer, as `generate --json` names it.
    pub completion: Option<String>,
    /// Its token ids.
    pub completion_tokens: Option<Vec<u32>>,
}

impl Record {
    /// Parses one line, of which the reader uses the fields `reads`. A line is accepted exactly
    /// when it is a JSON object whose fields in `reads` have their types (a key given twice
    /// counts once, the last time); other fields may hold anything. The refusal says why.
    pub fn parse(line: &str, reads: &[&str]) -> Result<Record, serde_json::Error> {
        // Fast path: a well-formed object straight into the record, with no tree in between.
        if line.starts_with('{') {
            if let Ok(record) = serde_json::from_str(line) {
                return Ok(record);
            }
        }
        // The rest takes the general path, so that refusals read alike whatever is wrong (not
        // JSON, not an object, a field of the wrong type) and name the first wrong field in
        // the object's (sorted) key order.
        let Value::Object(mut fields) = serde_json::from_str(line)? else {
            return Err(serde::de::Error::custom("expected a JSON object"));
        };
        fields.retain(|name, _| reads.contains(&name.as_str()));
        serde_json::from_value(Value::Object(fields))
    }

    /// The prompt on a line of a `--prompts` file: a `prompt` string, and maybe an `id`.
    pub fn parse_prompt(line: &str) -> Result<Prompt, serde_json::Error> {
        let record = Record::parse(line, &["prompt", "id"])?;
        match record.prompt {
            Some(prompt) => Ok(Prompt {
                prompt,
                id: record.id,
            }),
            None => Err(serde::de::Error::missing_field("prompt")),
        }
    }

    /// The document this record holds, with the body in `fields` (ids before text).
    pub fn into_document(self, at: String, fields: BodyFields) -> Result<Document, InputError> {
        let (tokens, text) = match fields {
            BodyFields::Document => (self.tokens, self.text),
            BodyFields::Answer => (
                self.response_tokens
                    .or(self.tokens)
                    .or(self.completion_tokens),
                self.response.or(self.completion).or(self.text),
            ),
        };
        let body = match (tokens, text) {
            (Some(ids), _) => Content::Tokens(ids),
            (None, Some(text)) => Content::Text(text),
            (None, None) => return Err(InputError::NoBody { at, fields }),
        };
        let prompt = match (self.prompt_tokens, self.prompt) {
            (Some(ids), _) => Some(Content::Tokens(ids)),
            (None, Some(text)) => Some(Content::Text(text)),
            (None, None) => None,
        };
        Ok(Document {
            source: at,
            id: self.id,
            prompt,
            body,
        })
    }
}

/// A prompt to answer, and the `id` its answer echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub prompt: String,
    pub id: Option<Value>,
}

/// Which fields of a record hold its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFields {
    /// A document to score (`detect`): `tokens`, else `text`.
    Document,
    /// An answer to audit: `response_tokens`, `tokens` or `completion_tokens`, else
    /// `response`, `completion` or `text`, so that suspects' logs and `generate --json` lines
    /// read alike.
    Answer,
}

impl BodyFields {
    /// The fields read: the body's and the prompt's, and the `id`.
    fn names(self) -> &'static [&'static str] {
        match self {
            BodyFields::Document => &["id", "prompt", "prompt_tokens", "text", "tokens"],
            BodyFields::Answer => &[
                "prompt",
                "prompt_tokens",
                "response",
                "response_tokens",
                "completion",
                "completion_tokens",
                "text",
                "tokens",
            ],
        }
    }

    /// What a record without a body lacks.
    fn wanted(self) -> &'static str {
        match self {
            BodyFields::Document => "a `text` string or a `tokens` array",
            BodyFields::Answer => "a `response` string or a `response_tokens` array",
        }
    }
}

/// Token ids, or text still to be tokenized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Tokens(Vec<u32>),
}

/// One document: a body, the prompt it answers, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The input for plain text, `file:line` for JSONL.
    pub source: String,
    /// The record's `id`.
    pub id: Option<Value>,
    pub prompt: Option<Content>,
    pub body: Content,
}

impl Document {
    /// A whole plain-text input as one document.
    pub fn plain_text(source: String, text: String) -> Document {
        Document {
            source,
            id: None,
            prompt: None,
            body: Content::Text(text),
        }
    }

    /// Whether scoring it needs a tokenizer: some of it is text.
    pub fn needs_tokenizer(&self) -> bool {
        matches!(self.body, Content::Text(_)) || matches!(self.prompt, Some(Content::Text(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `bytes`, as an input named `f.jsonl`.
    fn lines(bytes: &[u8]) -> Lines {
        Input {
            name: "f.jsonl".into(),
            wording: IoWording::Plain,
            reader: Box::new(std::io::Cursor::new(bytes.to_vec())),
            len: Some(bytes.len() as u64),
        }
        .lines()
        .expect("the default bound")
    }

    fn documents(bytes: &[u8], fields: BodyFields) -> Result<Vec<Document>, InputError> {
        let mut lines = lines(bytes);
        let mut docs = Vec::new();
        for line in lines.by_ref() {
            docs.push(line?.document(fields)?);
        }
        lines.finish()?;
        Ok(docs)
    }

    fn error(bytes: &[u8], fields: BodyFields) -> String {
        match documents(bytes, fields) {
            Ok(docs) => panic!("accepted: {docs:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn overlong_lines_and_key_files_are_refused() {
        let mut bounded = lines(b"{\"text\": \"ok\"}\n0123456789abcdef0123\n");
        bounded.limit = 16;
        assert_eq!(bounded.next().unwrap().unwrap().at, "f.jsonl:1");
        let err = bounded.next().unwrap().unwrap_err().to_string();
        assert!(err.starts_with("f.jsonl:2: longer than 16 bytes"), "{err}");
        // An unterminated line is cut at the bound, not read to its end.
        let mut endless = lines(&vec![b'x'; 1 << 16]);
        endless.limit = 1000;
        assert!(matches!(
            endless.next(),
            Some(Err(InputError::TooLong { .. }))
        ));
        assert!(endless.buffer.len() <= 1001);

        let key = format!("tracemark-key-v1\n{}\n", "ab".repeat(32));
        let err = lines(key.as_bytes())
            .next()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(err.contains("key file") && !err.contains("abab"), "{err}");
        let input = Input {
            name: "k".into(),
            wording: IoWording::Plain,
            reader: Box::new(std::io::Cursor::new(key.into_bytes())),
            len: None,
        };
        let err = input.read_text().unwrap_err().to_string();
        assert!(err.starts_with("k: this is a tracemark key file"), "{err}");
    }

    #[test]
    fn lines_are_numbered_trimmed_and_skipped_when_empty() {
        let input = b"\xef\xbb\xbf{\"a\": 1}\r\n\n  \n\t{\"b\": 2}  \n\xef\xbb\xbf\n{\"c\": 3}";
        let read: Vec<Line> = lines(input).map(|l| l.expect("a line")).collect();
        let at: Vec<&str> = read.iter().map(|l| l.at.as_str()).collect();
        assert_eq!(at, ["f.jsonl:1", "f.jsonl:4", "f.jsonl:6"]);
        let text: Vec<&str> = read.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(text, ["{\"a\": 1}", "{\"b\": 2}", "{\"c\": 3}"]);
    }

    #[test]
    fn input_errors_name_the_input_or_its_line() {
        let e = error(b"{\"tokens\": [1]}\n\xff\n", BodyFields::Document);
        assert_eq!(e, "f.jsonl:2: not valid UTF-8 text");
        assert_eq!(
            error(b"\n \n\r\n", BodyFields::Document),
            "f.jsonl: no documents (every line is empty)"
        );
        assert_eq!(
            error(b"", BodyFields::Document),
            "f.jsonl: no documents (every line is empty)"
        );
        let missing = Input::file(Path::new("/nonexistent/x.jsonl"), IoWording::Plain)
            .expect_err("no such file")
            .to_string();
        assert!(
            missing.starts_with("/nonexistent/x.jsonl: No such file"),
            "{missing}"
        );
        let missing = Input::file(Path::new("/nonexistent/x.jsonl"), IoWording::CannotRead)
            .expect_err("no such file")
            .to_string();
        assert!(
            missing.starts_with("/nonexistent/x.jsonl: cannot read: No such file"),
            "{missing}"
        );
        let text = Input {
            name: "t.txt".into(),
            wording: IoWording::Plain,
            reader: Box::new(&b"ok\xff"[..]),
            len: None,
        }
        .read_text()
        .expect_err("not UTF-8");
        assert_eq!(text.to_string(), "t.txt: not valid UTF-8 text");
    }

    #[test]
    fn jsonl_lines_become_documents_or_name_their_line() {
        let input = b"\xef\xbb\xbf{\"text\": \"hi\", \"id\": [1]}\r\n\n  \n{\"tokens\": [1, 2], \"prompt_tokens\": [0], \"extra\": true}\n";
        let docs = documents(input, BodyFields::Document).expect("valid JSONL");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].source, "f.jsonl:1");
        assert!(docs[0].needs_tokenizer());
        assert_eq!(docs[0].id, Some(serde_json::json!([1])));
        assert_eq!(docs[1].source, "f.jsonl:4");
        assert!(!docs[1].needs_tokenizer());
        assert_eq!(docs[1].prompt, Some(Content::Tokens(vec![0])));
        for (bad, needle) in [
            (
                &b"[1, 2]"[..],
                "f.jsonl:1: malformed JSONL line: expected a JSON object",
            ),
            (b"\"text\"", "expected a JSON object"),
            (b"{\"tokens\": [-1]}", "f.jsonl:1: malformed JSONL line"),
            (b"{\"prompt\": \"a\"}", "needs a `text`"),
            (b"\n\xff", "f.jsonl:2: not valid UTF-8"),
        ] {
            let e = error(bad, BodyFields::Document);
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn refusals_read_the_same_whatever_the_form() {
        // Syntax errors keep serde's position within the line; type errors name the value.
        assert_eq!(
            error(b"{\"tokens\": [1, 2,", BodyFields::Document),
            "f.jsonl:1: malformed JSONL line: EOF while parsing a value at line 1 column 17"
        );
        assert_eq!(
            error(b"{\"tokens\": [1, -2]}", BodyFields::Document),
            "f.jsonl:1: malformed JSONL line: invalid value: integer `-2`, expected u32"
        );
        assert_eq!(
            error(b"{\"text\": 5}", BodyFields::Answer),
            "f.jsonl:1: malformed JSONL line: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            error(b"null", BodyFields::Answer),
            "f.jsonl:1: malformed JSONL line: expected a JSON object"
        );
        // The first wrong field in key order.
        assert_eq!(
            error(
                b"{\"tokens\": [-1], \"prompt_tokens\": [-3]}",
                BodyFields::Document
            ),
            "f.jsonl:1: malformed JSONL line: invalid value: integer `-3`, expected u32"
        );
        // A key given twice counts once, the last time, as in any JSON object.
        let docs = documents(b"{\"text\": 1, \"text\": \"b\"}", BodyFields::Document)
            .expect("a repeated key");
        assert_eq!(docs[0].body, Content::Text("b".into()));
        // Fields the reader does not use may hold anything.
        let docs = documents(
            b"{\"tokens\": [1], \"completion\": 5}",
            BodyFields::Document,
        )
        .expect("an unused field");
        assert_eq!(docs[0].body, Content::Tokens(vec![1]));
    }

    #[test]
    fn prompts_need_a_prompt_string() {
        let p = Record::parse_prompt("{\"prompt\": \"hi\", \"id\": 3, \"tokens\": \"x\"}")
            .expect("a prompt");
        assert_eq!(p.prompt, "hi");
        assert_eq!(p.id, Some(serde_json::json!(3)));
        for (bad, reason) in [
            ("{\"text\": \"hi\"}", "missing field `prompt`"),
            ("{\"prompt\": null}", "missing field `prompt`"),
            (
                "{\"prompt\": 5}",
                "invalid type: integer `5`, expected a string",
            ),
            ("[\"hi\"]", "expected a JSON object"),
        ] {
            let e = Record::parse_prompt(bad).expect_err("no prompt");
            assert_eq!(e.to_string(), reason, "{bad}");
        }
    }

    #[test]
    fn answers_are_read_under_every_name() {
        let input = b"{\"prompt\": \"p\", \"completion\": \"c\", \"prompt_tokens\": [1], \"tokens\": [2], \"watermarked\": true}\n\
                      {\"prompt\": \"p\", \"response\": \"r\"}\n\
                      {\"completion\": \"c\"}\n\
                      {\"text\": \"t\"}\n\
                      {\"completion_tokens\": [3], \"response\": \"r\"}\n\
                      {\"response\": \"\", \"prompt\": null}\n";
        let docs = documents(input, BodyFields::Answer).expect("answers");
        let bodies: Vec<&Content> = docs.iter().map(|d| &d.body).collect();
        assert_eq!(
            bodies,
            [
                &Content::Tokens(vec![2]),
                &Content::Text("r".into()),
                &Content::Text("c".into()),
                &Content::Text("t".into()),
                &Content::Tokens(vec![3]),
                &Content::Text(String::new()),
            ]
        );
        assert_eq!(docs[0].prompt, Some(Content::Tokens(vec![1])));
        assert_eq!(docs[1].prompt, Some(Content::Text("p".into())));
        assert_eq!(docs[5].prompt, None);
        assert_eq!(
            error(
                b"{\"response_tokens\": [1]}\n{\"prompt\": \"x\"}",
                BodyFields::Answer
            ),
            "f.jsonl:2: needs a `response` string or a `response_tokens` array"
        );
        // A document is only `text` or `tokens`.
        assert_eq!(
            error(b"{\"completion\": \"c\"}", BodyFields::Document),
            "f.jsonl:1: needs a `text` string or a `tokens` array"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 3000, failure_persistence: None, ..Default::default()
        })]

        /// A suspect's JSONL, mutated byte by byte and cut anywhere: every line gives a
        /// document or one refusal, never a panic, whatever the bytes.
        #[test]
        fn mutated_jsonl_lines_give_a_document_or_a_refusal(
            edits in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 0..6),
            cut in 0usize..200,
        ) {
            let mut bytes = br#"{"id": [1, {"a": null}], "prompt": "Hi \u00e9", "prompt_tokens": [1, 2], "response": "x", "response_tokens": [4294967295, 0], "text": "t", "tokens": [3]}"#.to_vec();
            for (at, byte) in edits {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            bytes.truncate(cut.max(1));
            bytes.push(b'\n');
            for line in lines(&bytes) {
                let Ok(line) = line else { break };
                for fields in [BodyFields::Document, BodyFields::Answer] {
                    let _ = line.clone().document(fields);
                }
                let _ = Record::parse_prompt(&line.text);
            }
        }
    }
}
