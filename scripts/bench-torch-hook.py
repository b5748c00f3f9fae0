#!/usr/bin/env python3
"""Per-step cost of the torch hook (tracemark.torch_green) against the Rust hook, in one run.

Each row of the table biases a (B, V') float32 logits matrix once per step (V' = V rounded up as
padded lm_heads are); the time is the median of several steps after a warm-up. Columns:

  rust      Watermark.apply on the CPU tensor's numpy view (zero-copy)
  torch     TorchGreenList.apply_ on the same CPU tensor
  ratio     torch / rust, on this machine in this run
  When CUDA is available, also (B x V = 256 x 152k is the issue's size):
  cuda      TorchGreenList.apply_ on a CUDA tensor (synchronised)
  roundtrip the host path a GPU server would otherwise take: copy to CPU, Rust, copy back

Usage: python scripts/bench-torch-hook.py [--quick]   (needs torch and the tracemark package)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

import tracemark
from tracemark.torch_green import TorchGreenList

# (seeding, width, B, V, padded row): 49152 is SmolLM2's vocabulary, 151665/151936 Qwen2.5's.
SIZES: List[Tuple[str, int, int, int, int]] = [
    ("previous", 2, 1, 49152, 49152),
    ("previous", 2, 16, 49152, 49152),
    ("self-seeded", 4, 16, 49152, 49152),
    ("previous", 2, 64, 151665, 151936),
    ("previous", 2, 256, 151665, 151936),
    ("self-seeded", 4, 256, 151665, 151936),
]
QUICK = SIZES[:3]


def median_ms(step: Callable[[], None], repeats: int, sync: Optional[Callable[[], None]] = None) -> float:
    step()  # warm-up (allocations, tables, kernels)
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def write_key(directory: str) -> str:
    path = os.path.join(directory, "bench.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"tracemark-key-v1\n{os.urandom(32).hex()}\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the three small sizes")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), tracemark {tracemark.__version__}")
    print(f"cuda: {torch.cuda.get_device_name(0) if cuda else 'not available (CPU columns only)'}")
    header = f"{'seeding':<12} {'B':>4} {'V':>7} {'rust ms':>9} {'torch ms':>9} {'ratio':>7}"
    if cuda:
        header += f" {'cuda ms':>9} {'roundtrip ms':>13}"
    print(header)
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o700)
        key = write_key(tmp)
        for seeding, width, batch, vocab, padded in QUICK if args.quick else SIZES:
            scheme = tracemark.Scheme(seeding, width, 0.25, 2.0)
            green = TorchGreenList.from_key_file(key, vocab, scheme)
            wm = green.watermark
            ids = torch.randint(0, vocab, (batch, 16), generator=gen)
            ids_np = ids.numpy()
            logits = torch.randn(batch, padded, generator=gen)
            repeats = 3 if batch * vocab > 4_000_000 else 10
            rust = median_ms(lambda: wm.apply(logits.numpy(), ids_np), repeats)
            torch_ms = median_ms(lambda: green.apply_(logits, ids), repeats)
            line = f"{seeding:<12} {batch:>4} {vocab:>7} {rust:>9.2f} {torch_ms:>9.2f} {torch_ms / rust:>6.1f}x"
            if cuda:
                device = torch.device("cuda")
                on_gpu = green.to(device)
                gpu_logits, gpu_ids = logits.to(device), ids.to(device)
                sync = torch.cuda.synchronize
                gpu = median_ms(lambda: on_gpu.apply_(gpu_logits, gpu_ids), repeats, sync)

                def roundtrip() -> None:
                    host = gpu_logits.to("cpu")
                    wm.apply(host.numpy(), gpu_ids[:, -wm.context_width :].cpu().numpy())
                    gpu_logits.copy_(host)

                trip = median_ms(roundtrip, repeats, sync)
                line += f" {gpu:>9.2f} {trip:>13.2f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
