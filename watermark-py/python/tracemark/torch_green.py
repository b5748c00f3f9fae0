"""``tracemark-green-v1`` in torch tensor ops: the green list computed where the logits live.

The Rust hook (``Watermark.apply``) runs on the host, so a GPU server would have to copy every
row of logits to the CPU and back. This module computes the same function (WATERMARK-SPEC.md:
ChaCha8 keyed by the 256-bit key, one 64-byte block per 32 tokens, 16 bits a token, green iff
below round(γ·65536)) in int32/int64 tensor arithmetic on the logits' own device, and biases
them in place there. On CPU float32 it is bit-exact with the Rust hook (tests/test_torch_green.py
checks masks and biased logits on random keys, schemes, contexts and vocabularies).

    from tracemark.torch_green import TorchGreenList
    green = TorchGreenList.from_profile("keys/profile.toml", device="cuda")
    green.apply_(logits, input_ids)                 # (B, V) logits, (B, T) ids: in place

The compiled ``Watermark`` never hands out its key, so this hook reads the key file itself (the
profile names it) and checks that its fingerprint is the ``Watermark``'s. ``import tracemark``
does not import this module, nor torch; this module imports torch.

Integer notes: torch has no full uint32 arithmetic, so the ChaCha state is int32 (two's
complement addition wraps exactly like u32 addition; right shifts are masked to make them
logical), and the 64-bit seed derivation is int64 (wrapping multiplication, masked shifts).
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence, Tuple, Union

import torch

if TYPE_CHECKING:
    from tracemark._native import Scheme, Watermark

Contexts = Union[torch.Tensor, Sequence[Sequence[int]]]
"""A (B, T) id tensor (the last ``context_width`` columns are used), or one id list per row."""

TOKENS_PER_BLOCK = 32
"""Tokens covered by one 64-byte keystream block (16 bits each)."""

_MASK32 = 0xFFFF_FFFF
_CONSTANTS = (0x6170_7865, 0x3320_646E, 0x7962_2D32, 0x6B20_6574)
_TOKEN_HASH_NONCE = 0x746F_6B65_6E68_6173
_TOKEN_HASH_COUNTER_HIGH = 1 << 31  # high word of the counter 2^63 + x
_MIX_1 = 0xBF58_476D_1CE4_E5B9
_MIX_2 = 0x94D0_49BB_1331_11EB
_KEY_FILE_TAG = "tracemark-key-v1"
_FINGERPRINT_DOMAIN = b"tracemark/key-fingerprint/v1"
_MAX_BLOCKS_PER_PASS = 1 << 21
"""Keystream blocks computed at once (the state is 64 bytes a block, a few temporaries of it)."""


def _signed(value: int, bits: int) -> int:
    """The two's complement reading of an unsigned `bits`-bit integer (torch ints are signed)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _lsr64(z: torch.Tensor, shift: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's `>>` is arithmetic)."""
    return (z >> shift) & ((1 << (64 - shift)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors holding u64 bit patterns."""
    z = (z ^ _lsr64(z, 30)) * _signed(_MIX_1, 64)
    z = (z ^ _lsr64(z, 27)) * _signed(_MIX_2, 64)
    return z ^ _lsr64(z, 31)


def _low_word(z: torch.Tensor) -> torch.Tensor:
    """Bits 0..32 of an int64 tensor as int32 (same bit pattern)."""
    return (((z & _MASK32) ^ 0x8000_0000) - 0x8000_0000).to(torch.int32)


def _high_word(z: torch.Tensor) -> torch.Tensor:
    return _low_word(_lsr64(z, 32))


def _rotl(x: torch.Tensor, r: int) -> torch.Tensor:
    return (x << r) | ((x >> (32 - r)) & ((1 << r) - 1))


def _quarter(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> None:
    """The ChaCha quarter round, in place, on four (4, N) rows of the state at once."""
    a.add_(b)
    d.copy_(_rotl(d ^ a, 16))
    c.add_(d)
    b.copy_(_rotl(b ^ c, 12))
    a.add_(b)
    d.copy_(_rotl(d ^ a, 8))
    c.add_(d)
    b.copy_(_rotl(b ^ c, 7))


def chacha8_blocks(key_words: torch.Tensor, nonces: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """ChaCha8 blocks at (nonce, counter) pairs: (N,) int64 each (u64 bit patterns), broadcast
    together; returns the keystream words as int32, shape (N, 16). `key_words` is (8,) int32.

    The state is held as (4, 4, N): row 0 the constants, 1 and 2 the key, 3 counter and nonce,
    so a column round is one quarter round on four columns at once, and a diagonal round the same
    after rotating rows 1..3 (the usual SIMD layout).
    """
    nonces, counters = torch.broadcast_tensors(nonces, counters)
    n = nonces.shape[0]
    device = key_words.device
    init = torch.empty((4, 4, n), dtype=torch.int32, device=device)
    init[0] = torch.tensor([_signed(c, 32) for c in _CONSTANTS], dtype=torch.int32, device=device)[:, None]
    init[1] = key_words[:4, None]
    init[2] = key_words[4:, None]
    init[3, 0] = _low_word(counters)
    init[3, 1] = _high_word(counters)
    init[3, 2] = _low_word(nonces)
    init[3, 3] = _high_word(nonces)
    x = init.clone()
    for _ in range(4):
        _quarter(x[0], x[1], x[2], x[3])
        x[1] = x[1].roll(-1, 0)
        x[2] = x[2].roll(-2, 0)
        x[3] = x[3].roll(-3, 0)
        _quarter(x[0], x[1], x[2], x[3])
        x[1] = x[1].roll(1, 0)
        x[2] = x[2].roll(2, 0)
        x[3] = x[3].roll(3, 0)
    x.add_(init)
    return x.reshape(16, n).t()


def _halves(words: torch.Tensor) -> torch.Tensor:
    """(..., 16) int32 words to (..., 32) 16-bit values, low half first (token order)."""
    return torch.stack((words & 0xFFFF, (words >> 16) & 0xFFFF), dim=-1).flatten(-2)


def _resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """`device` with its index filled in ("cuda" is "cuda:0" for tensors), so it compares equal
    to a tensor's `.device`."""
    resolved = torch.device(device if device is not None else "cpu")
    if resolved.type == "cuda" and resolved.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return resolved


def read_key_file(path: Union[str, "os.PathLike[str]"]) -> bytes:
    """The 32 key bytes of a ``tracemark-key-v1`` file (the Rust reader has already checked its
    permissions by the time the constructors below call this)."""
    with open(path, "r", encoding="utf-8") as f:
        lines = [line.strip() for line in f.read(4096).splitlines() if line.strip()]
    if len(lines) != 2 or lines[0] != _KEY_FILE_TAG or len(lines[1]) != 64:
        raise ValueError(f"{os.fspath(path)} is not a {_KEY_FILE_TAG} key file")
    return bytes.fromhex(lines[1])


def key_fingerprint(key: bytes) -> str:
    """The key's public fingerprint, as the Rust core computes it (SHA-256, first 8 bytes)."""
    return hashlib.sha256(_FINGERPRINT_DOMAIN + key).digest()[:8].hex()


class TorchGreenList:
    """The green-list function of one key, scheme and vocabulary, as tensors on one device.

    Holds the Rust ``Watermark`` it mirrors (``.watermark``) for detection and host fallbacks.
    """

    def __init__(self, watermark: "Watermark", key: bytes, device: Union[str, torch.device, None] = None) -> None:
        from tracemark._native import InputError

        if len(key) != 32 or key_fingerprint(key) != watermark.key_fingerprint:
            raise InputError("the key does not match the watermark's key fingerprint")
        self.watermark = watermark
        self.device = _resolve_device(device)
        scheme = watermark.scheme
        self.vocab_size: int = watermark.vocab_size
        self.context_width: int = watermark.context_width
        self.self_seeded = scheme.seeding == "self-seeded"
        self.delta = float(scheme.delta)
        # Rust's f64::round (half away from zero), not Python's round (half to even).
        self.threshold = math.floor(scheme.gamma * 65536.0 + 0.5)
        seeding_id = 2 if self.self_seeded else 1
        self.tag = 0x7472_6163_656D_0000 ^ (seeding_id << 8) ^ scheme.width
        words = [int.from_bytes(key[i : i + 4], "little") for i in range(0, 32, 4)]
        self.key_words = torch.tensor([_signed(w, 32) for w in words], dtype=torch.int32, device=self.device)
        self._blocks: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = chacha8_blocks
        self.token_hash: Optional[torch.Tensor] = None
        self.self_green: Optional[torch.Tensor] = None
        if self.self_seeded:
            self._build_self_tables()

    @classmethod
    def from_profile(cls, path: Union[str, "os.PathLike[str]"], device: Union[str, torch.device, None] = None) -> "TorchGreenList":
        """The hook of a profile (as ``Watermark.from_profile``), on `device`."""
        from tracemark._native import Profile

        profile = Profile.load(path)
        watermark = profile.watermark()  # reads and checks the key (permissions, fingerprint)
        return cls(watermark, read_key_file(profile.key_file), device)

    @classmethod
    def from_key_file(
        cls,
        key_file: Union[str, "os.PathLike[str]"],
        vocab_size: int,
        scheme: Optional["Scheme"] = None,
        device: Union[str, torch.device, None] = None,
    ) -> "TorchGreenList":
        """As ``Watermark.from_key_file``, on `device`."""
        from tracemark._native import Watermark

        watermark = Watermark.from_key_file(key_file, vocab_size, scheme)
        return cls(watermark, read_key_file(key_file), device)

    @property
    def key_fingerprint(self) -> str:
        return self.watermark.key_fingerprint

    def __repr__(self) -> str:
        return f"TorchGreenList(key_fingerprint={self.key_fingerprint!r}, vocab_size={self.vocab_size}, device={str(self.device)!r})"

    # --- the function ---------------------------------------------------------------------

    def _seed_of_anchor(self, anchor: torch.Tensor) -> torch.Tensor:
        return mix64(anchor ^ _signed(self.tag, 64))

    def values(self, seeds: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """16-bit values (int32) of (seed, token) pairs: (N,) int64 each."""
        words = self._blocks(self.key_words, seeds, torch.div(tokens, TOKENS_PER_BLOCK, rounding_mode="floor"))
        within = tokens % TOKENS_PER_BLOCK
        word = words.gather(1, (within // 2)[:, None])[:, 0]
        return (word >> (16 * (within % 2)).to(torch.int32)) & 0xFFFF

    def _build_self_tables(self) -> None:
        """Token hashes H(t) (int64, u32 values) and each token's verdict when it anchors itself."""
        v = self.vocab_size
        blocks = torch.arange((v + 15) // 16, dtype=torch.int64, device=self.device)
        counters = blocks + _signed(_TOKEN_HASH_COUNTER_HIGH << 32, 64)
        nonce = torch.full_like(blocks, _TOKEN_HASH_NONCE)
        words = self._blocks(self.key_words, nonce, counters).reshape(-1)[:v]
        self.token_hash = words.to(torch.int64) & _MASK32
        tokens = torch.arange(v, dtype=torch.int64, device=self.device)
        self_values = self.values(self._seed_of_anchor(self.token_hash), tokens)
        self.self_green = self_values < self.threshold

    def seeds(self, windows: torch.Tensor, tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The seed of each (R, context_width) window: for self-seeded schemes the context's own
        anchor, or with `tokens` (R,) the anchor including the candidate (the spec's seed)."""
        if not self.self_seeded:
            z = torch.full((windows.shape[0],), _signed(self.tag, 64), dtype=torch.int64, device=windows.device)
            for column in windows.t():
                z = mix64(z ^ column)
            return z
        return self._seed_of_anchor(self._anchor(windows, tokens))

    def _anchor(self, windows: torch.Tensor, tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        assert self.token_hash is not None
        anchor = self.token_hash[windows].amin(dim=1)
        if tokens is not None:
            anchor = torch.minimum(anchor, self.token_hash[tokens])
        return anchor

    def decide(self, windows: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(seed, value, green) of each candidate `tokens[r]` after `windows[r]`: the spec's
        decision, as its test vectors state it (seeds as int64 bit patterns)."""
        windows, tokens = windows.to(self.device), tokens.to(self.device)
        self._check_ids(windows)
        self._check_ids(tokens)
        seeds = self.seeds(windows, tokens)
        values = self.values(seeds, tokens)
        return seeds, values, values < self.threshold

    def green_mask(self, windows: torch.Tensor) -> torch.Tensor:
        """(R, V) bool: the green tokens after each (R, context_width) window of in-vocabulary ids."""
        v = self.vocab_size
        blocks = (v + TOKENS_PER_BLOCK - 1) // TOKENS_PER_BLOCK
        rows = max(1, _MAX_BLOCKS_PER_PASS // blocks)
        return torch.cat([self._green_rows(windows[i : i + rows], blocks) for i in range(0, windows.shape[0], rows)])

    def _green_rows(self, windows: torch.Tensor, blocks: int) -> torch.Tensor:
        r = windows.shape[0]
        seeds = self.seeds(windows)
        counters = torch.arange(blocks, dtype=torch.int64, device=windows.device)
        words = self._blocks(self.key_words, seeds.repeat_interleave(blocks), counters.repeat(r))
        values = _halves(words.reshape(r, blocks, 16)).reshape(r, blocks * TOKENS_PER_BLOCK)[:, : self.vocab_size]
        green = values < self.threshold
        if self.self_seeded:
            assert self.token_hash is not None and self.self_green is not None
            own = self.token_hash[None, :] < self._anchor(windows)[:, None]
            green = torch.where(own, self.self_green[None, :], green)
        return green

    # --- the hook -------------------------------------------------------------------------

    def windows(self, contexts: Contexts, rows: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The (R, context_width) windows on this device and the (R,) indices of the rows that
        have one (rows with too little context are left unbiased, as by the Rust hook)."""
        w = self.context_width
        if isinstance(contexts, torch.Tensor):
            ids = contexts if contexts.dim() == 2 else contexts.reshape(1, -1)
            if ids.shape[0] != rows:
                raise self._input_error(f"{ids.shape[0]} contexts for {rows} rows of logits")
            if ids.shape[1] < w:
                empty = torch.empty((0, w), dtype=torch.int64, device=self.device)
                return empty, torch.empty(0, dtype=torch.int64, device=self.device)
            window = ids[:, ids.shape[1] - w :].to(device=self.device, dtype=torch.int64)
            self._check_ids(window)
            return window, torch.arange(rows, device=self.device)
        contexts = list(contexts)
        if len(contexts) != rows:
            raise self._input_error(f"{len(contexts)} contexts for {rows} rows of logits")
        kept = [(i, list(c)[len(c) - w :]) for i, c in enumerate(contexts) if len(c) >= w]
        try:
            window = torch.tensor([c for _, c in kept], dtype=torch.int64).reshape(len(kept), w).to(self.device)
        except (OverflowError, RuntimeError, TypeError, ValueError) as e:
            raise self._input_error(f"contexts must be lists of token ids: {e}") from None
        self._check_ids(window)
        return window, torch.tensor([i for i, _ in kept], dtype=torch.int64, device=self.device)

    def apply_(
        self, logits: torch.Tensor, contexts: Contexts, rows: Union[torch.Tensor, Iterable[int], None] = None
    ) -> torch.Tensor:
        """Adds δ to the green logits, in place on the logits' device, and returns `logits`.

        `logits` is (B, V') with V' ≥ V (padding columns are left alone) or one (V',) row;
        `contexts` has one entry per biased row: all B rows, or the rows listed in `rows` (the
        vLLM case: only some requests of the batch are watermarked). float32 rows get
        `x + δ`, bit-exact with ``Watermark.apply``; other dtypes get δ added in float32 and
        rounded once to their dtype, as the host round trip of the Rust hook does.
        """
        if logits.device != self.device:
            raise self._input_error(f"logits on {logits.device} but the green list on {self.device}; use .to()")
        matrix = logits if logits.dim() == 2 else logits.reshape(1, -1)
        if matrix.shape[1] < self.vocab_size:
            raise self._input_error(f"a row of {matrix.shape[1]} logits is shorter than the vocabulary ({self.vocab_size})")
        if rows is None:
            selected = None
        elif isinstance(rows, torch.Tensor):
            selected = rows.to(device=self.device, dtype=torch.int64)
        else:
            selected = torch.tensor(list(rows), dtype=torch.int64).to(self.device)
        count = matrix.shape[0] if selected is None else selected.shape[0]
        windows, have = self.windows(contexts, count)
        if windows.shape[0] == 0:
            return logits
        green = self.green_mask(windows)
        if selected is None and windows.shape[0] == matrix.shape[0]:
            # Every row: a view, biased without gathering rows.
            block = matrix[:, : self.vocab_size]
            block.copy_(self._biased(block, green))
        else:
            targets = have if selected is None else selected[have]
            matrix[targets, : self.vocab_size] = self._biased(matrix[targets, : self.vocab_size], green)
        return logits

    def _biased(self, block: torch.Tensor, green: torch.Tensor) -> torch.Tensor:
        """`block` with δ added where green: in float32, rounded once to the block's dtype."""
        if block.dtype == torch.float32:
            return torch.where(green, block + self.delta, block)
        return torch.where(green, (block.float() + self.delta).to(block.dtype), block)

    def to(self, device: Union[str, torch.device]) -> "TorchGreenList":
        """This green list on another device (the tables move; nothing is recomputed)."""
        other = object.__new__(TorchGreenList)
        other.__dict__.update(self.__dict__)
        other.device = _resolve_device(device)
        other.key_words = self.key_words.to(other.device)
        other.token_hash = None if self.token_hash is None else self.token_hash.to(other.device)
        other.self_green = None if self.self_green is None else self.self_green.to(other.device)
        return other

    def compiled(self) -> "TorchGreenList":
        """This green list with the block function fused by ``torch.compile`` (dynamic shapes):
        one kernel instead of a few hundred passes over the state. Same integers (the tests
        compare them when TRACEMARK_TEST_TORCH_COMPILE=1); on this 2-core CPU about 5x faster
        after a two-minute first call; the GPU gain was not measured."""
        other = self.to(self.device)
        other._blocks = torch.compile(chacha8_blocks, dynamic=True)
        return other

    def _check_ids(self, ids: torch.Tensor) -> None:
        if ids.numel() and bool(((ids < 0) | (ids >= self.vocab_size)).any()):
            bad = int(ids[(ids < 0) | (ids >= self.vocab_size)].reshape(-1)[0])
            raise self._input_error(f"token {bad} is outside the vocabulary (size {self.vocab_size})")

    @staticmethod
    def _input_error(message: str) -> Exception:
        from tracemark._native import InputError

        return InputError(message)
