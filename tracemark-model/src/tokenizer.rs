//! The default model's tokenizer, rebuilt from the GGUF file's metadata as a Hugging Face
//! `tokenizer.json`, and its chat template.
//!
//! The GGUF file carries the tokenizer as `tokenizer.ggml.*` metadata: the model kind (`gpt2`,
//! a byte-level BPE), the tokens, the merges, each token's type, the special ids, and the
//! pre-tokenizer's name (`tokenizer.ggml.pre`). SmolLM2's says `smollm`, which llama.cpp runs as
//! the regex `\p{N}` followed by GPT-2's; SmolLM2's original `tokenizer.json` says the same as
//! `Sequence[Digits(individual_digits), ByteLevel(add_prefix_space = false)]`: every numeral is
//! a piece of its own and no space is put before the text. This module builds exactly that.
//!
//! candle's own `TokenizerFromGguf` is not used: it knows no `smollm` and falls back to GPT-2's
//! `ByteLevel::default()`, which puts a space before the text ("hello" becomes "Ġhello") and
//! does not split numerals off (" ½" becomes "ĠÂ" "½" instead of "Ġ" "Â½"; ASCII digits split
//! anyway, the vocabulary has no token of two digits). The integration test `model_tokenizer`
//! shows the difference.
//!
//! As in SmolLM2's `tokenizer.json` and in llama.cpp, the BPE has no unknown token. 21 of the
//! 256 byte values are not in the vocabulary (the control characters U+0004, U+0006, U+0013,
//! U+0014, U+0016, U+001D, the bytes 0xC0, 0xC1 and 0xF5 to 0xFF that UTF-8 never uses, and
//! 0xF1 and 0xF2, which lead the code points U+40000 to U+BFFFF): a byte the vocabulary lacks is
//! dropped, so text with those characters does not survive `decode(encode(text))`. The model
//! cannot produce them either.
//!
//! The rebuilt tokenizer is serialised with `tokenizers`' own writer, which is deterministic
//! (vocabulary by id, merges by rank, added tokens by id): the bytes, and so the fingerprint a
//! profile binds, are the same on every load. They are also a fixed point: saving them as a
//! `tokenizer.json` and loading that with [`TextTokenizer::from_file`] gives the same
//! fingerprint as [`load_default_tokenizer`].

use std::collections::HashSet;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::byte_level::ByteLevel as ByteLevelProcessor;
use tokenizers::{AddedToken, Tokenizer};
use watermark_core::TextTokenizer;

use crate::error::{Error, Result};

/// The system prompt SmolLM2-135M-Instruct's chat template (`tokenizer.chat_template`) puts
/// first when the conversation does not begin with one.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Start of a chat turn in SmolLM2's ChatML template; one special token.
pub const IM_START: &str = "<|im_start|>";
/// End of a chat turn; one special token, the instruct model's end of sequence.
pub const IM_END: &str = "<|im_end|>";
/// End of a document; one special token.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_NORMAL: u32 = 1;
const TOKEN_TYPE_CONTROL: u32 = 3;
const TOKEN_TYPE_USER_DEFINED: u32 = 4;

/// Special token ids of the model, from the GGUF metadata and the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `tokenizer.ggml.bos_token_id` (SmolLM2-Instruct: `<|im_start|>`, 1).
    pub bos: u32,
    /// `tokenizer.ggml.eos_token_id` (SmolLM2-Instruct: `<|im_end|>`, 2).
    pub eos: u32,
    /// `tokenizer.ggml.padding_token_id`, when given.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`, when given. The tokenizer never produces it: bytes
    /// outside the vocabulary are dropped instead.
    pub unk: Option<u32>,
    /// The id of `<|im_start|>`, when in the vocabulary.
    pub im_start: Option<u32>,
    /// The id of `<|im_end|>`, when in the vocabulary.
    pub im_end: Option<u32>,
    /// The id of `<|endoftext|>`, when in the vocabulary.
    pub end_of_text: Option<u32>,
}

impl SpecialTokens {
    /// Ids that end a generation: the end of sequence, the end of a chat turn and the end of a
    /// document, without repeats, in that order.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = vec![self.eos];
        for id in [self.im_end, self.end_of_text].into_iter().flatten() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

/// A tokenizer rebuilt from a GGUF file: the `tokenizer.json` bytes and what else the model's
/// metadata says about tokens.
#[derive(Clone)]
pub struct GgufTokenizer {
    json: Vec<u8>,
    special: SpecialTokens,
    pre: String,
    vocab_size: u32,
    chat_template: Option<String>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("json_bytes", &self.json.len())
            .field("special", &self.special)
            .field("pre", &self.pre)
            .field("vocab_size", &self.vocab_size)
            .finish_non_exhaustive()
    }
}

impl GgufTokenizer {
    /// Reads the metadata of the GGUF file at `path` (not its tensors) and rebuilds the
    /// tokenizer.
    pub fn from_file(path: &Path) -> Result<Self> {
        let (_, content) = crate::gguf::open(path)?;
        Self::from_content(&content, path)
    }

    /// Rebuilds the tokenizer from GGUF content already read (so that a model loader reads the
    /// file once); `path` only names the file in errors.
    pub fn from_content(content: &Content, path: &Path) -> Result<Self> {
        Builder { content, path }.build()
    }

    /// The canonical `tokenizer.json` bytes; a profile binds their fingerprint.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The `tokenizer.json` bytes, by value.
    pub fn into_json(self) -> Vec<u8> {
        self.json
    }

    /// The special token ids.
    pub fn special_tokens(&self) -> SpecialTokens {
        self.special
    }

    /// The pre-tokenizer the GGUF names (`tokenizer.ggml.pre`; `gpt2` when absent).
    pub fn pre(&self) -> &str {
        &self.pre
    }

    /// Tokens in the vocabulary (`tokenizer.ggml.tokens`).
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// The Jinja chat template the GGUF carries (`tokenizer.chat_template`), if any;
    /// [`chat_prompt`] renders SmolLM2's.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The tokenizer detection uses, fingerprinted over [`GgufTokenizer::json`].
    pub fn text_tokenizer(&self) -> Result<TextTokenizer> {
        TextTokenizer::from_bytes(&self.json).map_err(Error::Tokenizer)
    }
}

/// The canonical `tokenizer.json` bytes of the tokenizer in the GGUF file at `path`.
pub fn tokenizer_json_from_gguf(path: &Path) -> Result<Vec<u8>> {
    Ok(GgufTokenizer::from_file(path)?.into_json())
}

/// The tokenizer of the model at `model_path` (a GGUF file, e.g. from
/// [`crate::cache::locate_default_model`]), ready for text detection.
pub fn load_default_tokenizer(model_path: &Path) -> Result<TextTokenizer> {
    GgufTokenizer::from_file(model_path)?.text_tokenizer()
}

/// Writes the tokenizer of the model at `model_path` to `out` as a `tokenizer.json` (for
/// `tracemark keygen` to save beside the profile) and returns it loaded from those very bytes,
/// so its fingerprint is the file's.
pub fn write_tokenizer_json(model_path: &Path, out: &Path) -> Result<TextTokenizer> {
    let tokenizer = GgufTokenizer::from_file(model_path)?;
    let text = tokenizer.text_tokenizer()?;
    std::fs::write(out, tokenizer.json()).map_err(|e| Error::io(out, e))?;
    Ok(text)
}

/// The prompt SmolLM2-135M-Instruct's chat template renders for one user turn and the start of
/// the assistant's answer. With no system prompt the template's default,
/// [`DEFAULT_SYSTEM_PROMPT`], is used; `Some("")` gives an empty system turn.
///
/// The markers are special tokens: encoding the prompt maps each to its single id. So does
/// text that contains them literally, as with the Hugging Face tokenizer.
pub fn chat_prompt(system: Option<&str>, user: &str) -> String {
    let system = system.unwrap_or(DEFAULT_SYSTEM_PROMPT);
    format!(
        "{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n"
    )
}

struct Builder<'a> {
    content: &'a Content,
    path: &'a Path,
}

impl Builder<'_> {
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::gguf(self.path, reason)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| self.err(format!("no metadata key {key}")))
    }

    fn string(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(format!("{key} is {:?}, not a string", v.value_type()))),
        }
    }

    fn id(&self, key: &str, vocab_size: usize) -> Result<Option<u32>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let id = as_u32(value).ok_or_else(|| {
            self.err(format!("{key} is {:?}, not a token id", value.value_type()))
        })?;
        if id as usize >= vocab_size {
            return Err(self.err(format!(
                "{key} = {id} is outside the vocabulary of {vocab_size} tokens"
            )));
        }
        Ok(Some(id))
    }

    fn array(&self, key: &str) -> Result<&[Value]> {
        match self.require(key)? {
            Value::Array(values) => Ok(values),
            v => Err(self.err(format!("{key} is {:?}, not an array", v.value_type()))),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<&str>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                v => Err(self.err(format!("{key}[{i}] is {:?}, not a string", v.value_type()))),
            })
            .collect()
    }

    fn build(&self) -> Result<GgufTokenizer> {
        let kind = self
            .string("tokenizer.ggml.model")?
            .ok_or_else(|| self.err("no metadata key tokenizer.ggml.model"))?;
        if kind != "gpt2" {
            return Err(self.err(format!(
                "tokenizer.ggml.model is {kind:?}; only \"gpt2\" (byte-level BPE) is supported"
            )));
        }
        let pre = self.string("tokenizer.ggml.pre")?.unwrap_or("gpt2");
        let pre_tokenizer = pre_tokenizer(pre).ok_or_else(|| {
            self.err(format!(
                "tokenizer.ggml.pre is {pre:?}; supported: \"smollm\", \"gpt2\""
            ))
        })?;

        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let vocab_size = tokens.len();
        let vocab_size_u32 = u32::try_from(vocab_size)
            .map_err(|_| self.err(format!("{vocab_size} tokens is too many")))?;
        let (vocab, merges) = self.vocab_and_merges(&tokens)?;
        let ids = self.special_ids(vocab_size)?;

        // No unknown token, as in SmolLM2's tokenizer.json (see the module's documentation).
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| self.err(format!("cannot build the BPE model: {e}")))?;

        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
        // As in SmolLM2's tokenizer.json; the post-processor only adjusts offsets and the
        // decoder maps the byte-level alphabet back to bytes.
        tokenizer.with_post_processor(Some(ByteLevelProcessor::new(true, false, true)));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        self.add_tokens(&mut tokenizer, &tokens, &ids)?;
        let (bos, eos, pad, unk) = ids;

        let json = tokenizer
            .to_string(false)
            .map_err(|e| Error::Tokenizer(format!("cannot serialise the tokenizer: {e}")))?
            .into_bytes();

        let find = |s: &str| tokens.iter().position(|t| *t == s).map(|i| i as u32);
        let special = SpecialTokens {
            bos,
            eos,
            pad,
            unk,
            im_start: find(IM_START),
            im_end: find(IM_END),
            end_of_text: find(END_OF_TEXT),
        };
        let chat_template = self.string("tokenizer.chat_template")?.map(str::to_string);
        Ok(GgufTokenizer {
            json,
            special,
            pre: pre.to_string(),
            vocab_size: vocab_size_u32,
            chat_template,
        })
    }

    /// The BPE vocabulary (each token once) and merges (pairs of tokens).
    fn vocab_and_merges(&self, tokens: &[&str]) -> Result<(Vocab, Vec<(String, String)>)> {
        let mut seen = HashSet::with_capacity(tokens.len());
        for token in tokens {
            if !seen.insert(*token) {
                return Err(self.err(format!("token {token:?} is in tokenizer.ggml.tokens twice")));
            }
        }
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.to_string(), id as u32))
            .collect();
        let merges = self
            .strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|merge| match merge.split_once(' ') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                    Ok((a.to_string(), b.to_string()))
                }
                _ => Err(self.err(format!(
                    "merge {merge:?} in tokenizer.ggml.merges is not two tokens"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((vocab, merges))
    }

    /// The ids of BOS and EOS (required), padding and unknown (optional).
    fn special_ids(&self, vocab_size: usize) -> Result<SpecialIds> {
        let bos = self
            .id("tokenizer.ggml.bos_token_id", vocab_size)?
            .ok_or_else(|| self.err("no metadata key tokenizer.ggml.bos_token_id"))?;
        let eos = self
            .id("tokenizer.ggml.eos_token_id", vocab_size)?
            .ok_or_else(|| self.err("no metadata key tokenizer.ggml.eos_token_id"))?;
        let pad = self.id("tokenizer.ggml.padding_token_id", vocab_size)?;
        let unk = self.id("tokenizer.ggml.unknown_token_id", vocab_size)?;
        Ok((bos, eos, pad, unk))
    }

    /// Control tokens are special added tokens: matched whole in the input text, not
    /// normalised; user-defined ones are plain added tokens, as llama.cpp treats them.
    fn add_tokens(
        &self,
        tokenizer: &mut Tokenizer,
        tokens: &[&str],
        ids: &SpecialIds,
    ) -> Result<()> {
        let vocab_size = tokens.len();
        let types = self.array("tokenizer.ggml.token_type")?;
        if types.len() != vocab_size {
            return Err(self.err(format!(
                "tokenizer.ggml.token_type has {} entries for {vocab_size} tokens",
                types.len()
            )));
        }
        let mut specials = Vec::new();
        let mut added = Vec::new();
        for (id, value) in types.iter().enumerate() {
            match as_u32(value) {
                Some(TOKEN_TYPE_CONTROL) => specials.push(AddedToken::from(tokens[id], true)),
                Some(TOKEN_TYPE_USER_DEFINED) => added.push(AddedToken::from(tokens[id], false)),
                Some(_) => {}
                None => {
                    return Err(self.err(format!(
                        "tokenizer.ggml.token_type[{id}] is {:?}, not a token type",
                        value.value_type()
                    )))
                }
            }
        }
        // The end-of-sequence and chat markers must be special even if mistyped.
        let &(bos, eos, pad, unk) = ids;
        for id in [Some(bos), Some(eos), pad, unk].into_iter().flatten() {
            let is_normal = types.get(id as usize).and_then(as_u32) == Some(TOKEN_TYPE_NORMAL);
            if is_normal {
                specials.push(AddedToken::from(tokens[id as usize], true));
            }
        }
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| Error::Tokenizer(format!("cannot add the special tokens: {e}")))?;
        tokenizer
            .add_tokens(added)
            .map_err(|e| Error::Tokenizer(format!("cannot add the user-defined tokens: {e}")))?;
        Ok(())
    }
}

/// BOS, EOS, padding and unknown token ids.
type SpecialIds = (u32, u32, Option<u32>, Option<u32>);

/// The pre-tokenizer llama.cpp runs for the GGUF's `tokenizer.ggml.pre`, in Hugging Face terms.
fn pre_tokenizer(pre: &str) -> Option<PreTokenizerWrapper> {
    // GPT-2's regex, without a space put before the text.
    let byte_level = ByteLevel::new(false, true, true);
    match pre {
        // llama.cpp: `\p{N}` then GPT-2's regex.
        "smollm" => Some(
            Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                PreTokenizerWrapper::ByteLevel(byte_level),
            ])
            .into(),
        ),
        "gpt2" | "default" => Some(byte_level.into()),
        _ => None,
    }
}

fn as_u32(value: &Value) -> Option<u32> {
    match *value {
        Value::U8(v) => Some(v.into()),
        Value::U16(v) => Some(v.into()),
        Value::U32(v) => Some(v),
        Value::U64(v) => u32::try_from(v).ok(),
        Value::I8(v) => u32::try_from(v).ok(),
        Value::I16(v) => u32::try_from(v).ok(),
        Value::I32(v) => u32::try_from(v).ok(),
        Value::I64(v) => u32::try_from(v).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_prompt_follows_the_template() {
        assert_eq!(
            chat_prompt(None, "Hi"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            chat_prompt(Some("Be brief."), "Hi"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn stop_ids_are_distinct() {
        let s = SpecialTokens {
            bos: 1,
            eos: 2,
            pad: Some(2),
            unk: Some(0),
            im_start: Some(1),
            im_end: Some(2),
            end_of_text: Some(0),
        };
        assert_eq!(s.stop_ids(), vec![2, 0]);
    }

    #[test]
    fn unknown_pre_tokenizers_are_refused() {
        assert!(pre_tokenizer("smollm").is_some());
        assert!(pre_tokenizer("gpt2").is_some());
        assert!(pre_tokenizer("llama3").is_none());
    }
}
