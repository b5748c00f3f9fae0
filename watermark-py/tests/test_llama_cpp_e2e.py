"""End to end with a real engine: llama-cpp-python runs the default SmolLM2 GGUF with the
Python hook, and the Rust CLI flags the watermarked answers and not the plain ones.

Token ids, not text, go to the detector: llama.cpp's tokenizer and the profile's tokenizer.json
(rebuilt from the same GGUF) share ids, but re-tokenizing decoded text need not give back the
ids that were sampled. Skipped when llama_cpp is not installed, unless
TRACEMARK_REQUIRE_LLAMA_CPP=1 (as `make test` sets). Set TRACEMARK_PY_OUT=DIR to keep the
generated JSONL files.
"""

import json
import os
from pathlib import Path

import pytest

import tracemark
from conftest import cli_detect, require_model
from tracemark.adapters.llama_cpp import LlamaCppWatermark

PROMPTS = [
    "Explain in detail how ocean tides work.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Describe the water cycle step by step, for a curious ten-year-old.",
]
MAX_TOKENS = 160
SEED = 1234


def _llama_cpp():
    if os.environ.get("TRACEMARK_REQUIRE_LLAMA_CPP") == "1":
        import llama_cpp
    else:
        llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp


def _generate(llama_cpp, llm, prompt_ids, processor):
    stop = {llm.token_eos()} | {
        t for t in range(8) if llm.detokenize([t], special=True) in (b"<|im_end|>", b"<|endoftext|>")
    }
    processors = llama_cpp.LogitsProcessorList([processor]) if processor else None
    llm.set_seed(SEED)
    out = []
    # Plain sampling at temperature 1 over the full vocabulary.
    for token in llm.generate(prompt_ids, temp=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                              reset=True, logits_processor=processors):
        if token in stop or len(out) >= MAX_TOKENS:
            break
        out.append(int(token))
    return out


def test_llama_cpp_output_is_flagged_by_the_rust_cli(cli, model_profile, tmp_path):
    llama_cpp = _llama_cpp()
    model = require_model()
    wm = tracemark.Watermark.from_profile(model_profile)
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, n_threads=2, seed=SEED, verbose=False)
    assert llm.n_vocab() == wm.vocab_size

    out_dir = Path(os.environ.get("TRACEMARK_PY_OUT") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, processor in (("watermarked", LlamaCppWatermark(wm)), ("plain", None)):
        docs = []
        for i, question in enumerate(PROMPTS):
            text = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
            prompt_ids = [int(t) for t in llm.tokenize(text.encode(), add_bos=False, special=True)]
            ids = _generate(llama_cpp, llm, prompt_ids, processor)
            answer = llm.detokenize(ids).decode("utf-8", errors="replace")
            docs.append({"id": i, "prompt_tokens": prompt_ids, "tokens": ids, "text": answer})
        (out_dir / f"llama_cpp_{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        runs[name] = docs

    marked = cli_detect(cli, model_profile, runs["watermarked"], tmp_path)
    plain = cli_detect(cli, model_profile, runs["plain"], tmp_path)
    summary = [(r["scored"], round(r["z_score"], 2), round(r["log10_p_value"], 2)) for r in marked + plain]
    # The plain answers are unwatermarked text: flagged only at the FPR of 1e-6.
    assert not any(r["watermarked"] for r in plain), summary
    # Each watermarked answer long enough to judge is flagged, and so is their pooled count.
    for r in marked:
        if r["scored"] >= 80:
            assert r["watermarked"], summary
    pooled = tracemark.Score.merge([tracemark.Score(r["scored"], r["green"], r["gamma"]) for r in marked])
    assert pooled.log10_p_value < -10, summary
    # The Python detector reports the CLI's numbers on the same ids.
    for doc, report in zip(runs["watermarked"] + runs["plain"], marked + plain):
        d = wm.detect(doc["tokens"], doc["prompt_tokens"])
        assert d.to_dict() == {k: v for k, v in report.items() if k not in ("source", "id")}
