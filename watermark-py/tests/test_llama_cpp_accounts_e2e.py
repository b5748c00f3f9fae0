"""Accounts end to end with a real engine: llama-cpp-python runs the default SmolLM2 GGUF through
`LlamaCppWatermark(wm, account="acct-3", ...)`, and the Rust CLI names acct-3 out of 100
accounts (`tracemark detect --accounts`, `tracemark audit --accounts`) while the master key
still flags the answers. The same adapter without an account still watermarks, and names no
account.

The processor forces its own draw, so llama.cpp's sampler settings must not matter: the same
prompts generated under two very different llama.cpp settings (and seeds) give the same token
ids. Token ids, not text, go to the detector (see test_llama_cpp_e2e.py). Skipped when llama_cpp
is not installed, unless TRACEMARK_REQUIRE_LLAMA_CPP=1 (as `make test` sets). Set
TRACEMARK_PY_OUT=DIR to keep the generated JSONL files.
"""

import json
import os
from pathlib import Path

import pytest

import tracemark
from conftest import cli_detect, require_model, run_cli
from tracemark.adapters.llama_cpp import LlamaCppWatermark

PROMPTS = [
    "Explain in detail how ocean tides work.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Describe the water cycle step by step, for a curious ten-year-old.",
]
MAX_TOKENS = 160
ACCOUNT = "acct-3"
ACCOUNTS = [f"acct-{i}" for i in range(1, 101)]
# The adapter's settings: they define the distribution the answers are drawn from.
ADAPTER = {"temperature": 1.0, "top_p": 0.95}
# llama.cpp's own sampler settings: neutral, and far from neutral. With an account both must
# give the same answers.
NEUTRAL = {"temp": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, "seed": 1234}
SKEWED = {"temp": 0.3, "top_k": 3, "top_p": 0.5, "min_p": 0.2, "repeat_penalty": 1.3, "seed": 99}


def _llama_cpp():
    if os.environ.get("TRACEMARK_REQUIRE_LLAMA_CPP") == "1":
        import llama_cpp
    else:
        llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp


def _answers(llama_cpp, llm, processor, sampler):
    """One answer (token ids) per prompt, through `processor`, under llama.cpp's `sampler`."""
    stop = {llm.token_eos()} | {
        t for t in range(8) if llm.detokenize([t], special=True) in (b"<|im_end|>", b"<|endoftext|>")
    }
    settings = dict(sampler)
    docs = []
    for i, question in enumerate(PROMPTS):
        text = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        prompt_ids = [int(t) for t in llm.tokenize(text.encode(), add_bos=False, special=True)]
        llm.set_seed(settings["seed"])
        out = []
        kwargs = {k: v for k, v in settings.items() if k != "seed"}
        for token in llm.generate(prompt_ids, reset=True, logits_processor=llama_cpp.LogitsProcessorList([processor]), **kwargs):
            if token in stop or len(out) >= MAX_TOKENS:
                break
            out.append(int(token))
        answer = llm.detokenize(out).decode("utf-8", errors="replace")
        docs.append({"id": i, "prompt_tokens": prompt_ids, "tokens": out, "text": answer})
    return docs


def test_llama_cpp_answers_name_their_account(cli, model_profile, tmp_path):
    llama_cpp = _llama_cpp()
    model = require_model()
    wm = tracemark.Watermark.from_profile(model_profile)
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, n_threads=2, seed=1234, verbose=False)
    assert llm.n_vocab() == wm.vocab_size

    out_dir = Path(os.environ.get("TRACEMARK_PY_OUT") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    processor = LlamaCppWatermark(wm, account=ACCOUNT, **ADAPTER)
    assert processor.account == ACCOUNT
    runs = {
        "account": _answers(llama_cpp, llm, processor, NEUTRAL),
        "account_skewed_engine": _answers(llama_cpp, llm, processor, SKEWED),
        "no_account": _answers(llama_cpp, llm, LlamaCppWatermark(wm), NEUTRAL),
    }
    for name, docs in runs.items():
        (out_dir / f"llama_cpp_{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))

    # The engine's settings did not matter: the account's draw decided every token.
    assert [d["tokens"] for d in runs["account"]] == [d["tokens"] for d in runs["account_skewed_engine"]]

    accounts_file = tmp_path / "accounts.txt"
    accounts_file.write_text("".join(a + "\n" for a in ACCOUNTS))
    marked = cli_detect(cli, model_profile, runs["account"], tmp_path, "--accounts", str(accounts_file))
    plain = cli_detect(cli, model_profile, runs["no_account"], tmp_path, "--accounts", str(accounts_file))
    summary = [
        (r["scored"], round(r["log10_p_value"], 1), r["accounts"]["best"], round(r["accounts"]["accounts"][0]["corrected_log10_p_value"], 1))
        for r in marked + plain
    ]
    print(summary)
    for r in marked:
        assert r["accounts"]["accounts_tested"] == 100, summary
        # No other account is ever named; acct-3 alone is, for each answer with 30 scored
        # tokens or more (the shortest here stops after about 40).
        named = [a["account"] for a in r["accounts"]["accounts"] if a["attributed"]]
        assert named in ([], [ACCOUNT]), summary
        if r["scored"] >= 30:
            assert named == [ACCOUNT] and r["accounts"]["best"] == ACCOUNT, summary
    # The master key still flags them: pooled, since one answer of ~100 scored tokens under a
    # fresh random key reaches 1e-6 often but not always (CI saw log10 p -4.6 at 118 scored).
    pooled = tracemark.Score.merge([tracemark.Score(r["scored"], r["green"], r["gamma"]) for r in marked])
    assert pooled.log10_p_value < -10, summary
    for r in plain:
        # Watermarked without an account, as before: flagged, and no account named.
        if r["scored"] >= 80:
            assert r["watermarked"], summary
        assert r["accounts"]["best"] is None, summary

    # The same answers read as a suspect's outputs: the pooled audit names acct-3 too.
    suspect = tmp_path / "suspect.jsonl"
    suspect.write_text("".join(json.dumps(d) + "\n" for d in runs["account"]))
    audit = run_cli(cli, "audit", "--profile", str(model_profile), "--suspect", str(suspect), "--accounts", str(accounts_file), "--json")
    report = json.loads(audit.stdout)
    assert report["accounts"]["best"] == ACCOUNT, report["accounts"]
    assert [a["account"] for a in report["accounts"]["accounts"] if a["attributed"]] == [ACCOUNT]
