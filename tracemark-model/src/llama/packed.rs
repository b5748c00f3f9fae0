//! tracemark's own CPU kernel for the file's quantized matrices (Q4_1 and Q8_0), as faithful as
//! llama.cpp's and faster than candle's at batch 1.
//!
//! candle has no SIMD kernel for Q4_1, and its fast Q8_0 kernel quantizes the activations with
//! one scale per 256 values, which SmolLM2's outlier channels do not survive (see
//! [`super::LoadOptions::fast_matmul`]). This kernel keeps the file's weights bit for bit and
//! quantizes the activations per 32 values (8-bit, one f32 scale per block, as llama.cpp's Q8_1),
//! then takes integer dot products (`vpdpbusd` on AVX512-VNNI, plain Rust elsewhere).
//!
//! Layout. Blocks of 32 values go in *pairs*: the 64 values of blocks `2p` and `2p + 1` are
//! interleaved four at a time (lane `l` of a 16-lane vector holds values `4(l/2)..4(l/2)+4` of
//! block `2p + l % 2`), for the weights and the activations alike, so one 512-bit integer dot
//! product covers a pair and lane `l`'s scale is block `l % 2`'s. Weights are stored unsigned:
//! Q4_1 as nibbles (`w = d * u + m`, two nibbles per byte: positions `j` and `j + 32`), Q8_0 as
//! `u = q + 128` (the lane sums subtract `128 * sum(a)`, precomputed per activation row, so the
//! integer sums are exact). The float arithmetic is fixed: one fused multiply-add per lane and
//! pair, then a fixed reduction tree; the SIMD and the scalar code give the same bits, and a
//! row's result does not depend on the other rows or on the thread count.

use std::sync::Mutex;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result as CResult};

/// Values per quantization block.
const BLOCK: usize = 32;
/// Values per pair of blocks (one 512-bit dot product).
const PAIR: usize = 2 * BLOCK;
/// 32-bit lanes per pair.
const LANES: usize = 16;
/// Output rows per unit of work handed to a thread.
const ROWS_PER_TASK: usize = 16;
/// Activation rows per call of the kernel (independent accumulators, one weight unpacking).
const TILE: usize = 4;

/// The weight formats this kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Q4_1,
    Q8_0,
}

impl Format {
    /// The format of a GGUF matrix, if this kernel runs it.
    pub(super) fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q4_1 => Some(Format::Q4_1),
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            _ => None,
        }
    }

    /// Stored bytes per pair of blocks of one row.
    fn pair_bytes(self) -> usize {
        match self {
            Format::Q4_1 => PAIR / 2,
            Format::Q8_0 => PAIR,
        }
    }

    /// Bytes of one block in the GGUF file.
    fn file_block_bytes(self) -> usize {
        match self {
            Format::Q4_1 => 20,
            Format::Q8_0 => 34,
        }
    }
}

/// Index within a pair (0..64) of value `e` (0..32) of the pair's block `half` (0 or 1).
fn pair_position(half: usize, e: usize) -> usize {
    ((e / 4) * 2 + half) * 4 + e % 4
}

/// Blocks per row rounded up to a multiple of 16: the per-block offsets are summed 16 at a time.
fn padded_blocks(pairs: usize) -> usize {
    (2 * pairs).next_multiple_of(LANES)
}

/// A weight matrix `(rows, cols)` repacked for this kernel.
#[derive(Debug, Clone)]
pub(super) struct PackedMatrix {
    format: Format,
    rows: usize,
    cols: usize,
    pairs: usize,
    /// `rows * pairs * format.pair_bytes()` bytes.
    quants: Vec<u8>,
    /// Block scales `d` (f16 bits), `2 * pairs` per row.
    scales: Vec<u16>,
    /// Q4_1's block offsets `m` (f16 bits), `padded_blocks(pairs)` per row; empty for Q8_0.
    mins: Vec<u16>,
}

impl PackedMatrix {
    /// Repacks a Q4_1 or Q8_0 matrix; `None` for any other format.
    pub(super) fn from_qtensor(t: &QTensor) -> CResult<Option<Self>> {
        let Some(format) = Format::of(t.dtype()) else {
            return Ok(None);
        };
        let (rows, cols) = t.shape().dims2()?;
        if cols % BLOCK != 0 {
            bail!("a {format:?} matrix needs a multiple of {BLOCK} columns, got {cols}");
        }
        let data = t.data()?;
        let blocks = cols / BLOCK;
        if data.len() != rows * blocks * format.file_block_bytes() {
            bail!("{format:?} matrix ({rows}, {cols}): {} bytes", data.len());
        }
        let pairs = cols.div_ceil(PAIR);
        let mut m = Self {
            format,
            rows,
            cols,
            pairs,
            quants: Vec::with_capacity(rows * pairs * format.pair_bytes()),
            scales: Vec::with_capacity(rows * 2 * pairs),
            mins: Vec::new(),
        };
        let stride = blocks * format.file_block_bytes();
        for row in data.chunks_exact(stride) {
            m.push_row(row, blocks);
        }
        Ok(Some(m))
    }

    /// Appends one row read from the file's blocks.
    fn push_row(&mut self, row: &[u8], blocks: usize) {
        let size = self.format.file_block_bytes();
        let block = |b: usize| (b < blocks).then(|| &row[b * size..(b + 1) * size]);
        for p in 0..self.pairs {
            let mut u = [0u8; PAIR];
            for half in 0..2 {
                let (scale, min) = match block(2 * p + half) {
                    Some(bytes) => self.unpack_block(bytes, half, &mut u),
                    None => {
                        // Padding: a zero block (Q8_0's zero is stored as 128).
                        if self.format == Format::Q8_0 {
                            for e in 0..BLOCK {
                                u[pair_position(half, e)] = 128;
                            }
                        }
                        (0, 0)
                    }
                };
                self.scales.push(scale);
                if self.format == Format::Q4_1 {
                    self.mins.push(min);
                }
            }
            match self.format {
                Format::Q4_1 => self
                    .quants
                    .extend((0..PAIR / 2).map(|j| u[j] | (u[j + PAIR / 2] << 4))),
                Format::Q8_0 => self.quants.extend_from_slice(&u),
            }
        }
        if self.format == Format::Q4_1 {
            let extra = padded_blocks(self.pairs) - 2 * self.pairs;
            self.mins.extend(std::iter::repeat_n(0, extra));
        }
    }

    /// Writes a file block's unsigned values at its pair positions; returns its (d, m) bits.
    fn unpack_block(&self, bytes: &[u8], half: usize, u: &mut [u8; PAIR]) -> (u16, u16) {
        let d = u16::from_le_bytes([bytes[0], bytes[1]]);
        match self.format {
            Format::Q4_1 => {
                let m = u16::from_le_bytes([bytes[2], bytes[3]]);
                for (j, &byte) in bytes[4..20].iter().enumerate() {
                    u[pair_position(half, j)] = byte & 0x0F;
                    u[pair_position(half, j + 16)] = byte >> 4;
                }
                (d, m)
            }
            Format::Q8_0 => {
                for (e, &q) in bytes[2..34].iter().enumerate() {
                    u[pair_position(half, e)] = q ^ 0x80; // q + 128 as unsigned
                }
                (d, 0)
            }
        }
    }

    pub(super) fn cols(&self) -> usize {
        self.cols
    }

    /// Matrices with the same format and width stacked row-wise (exact: a row is unchanged);
    /// given back unchanged when they differ.
    pub(super) fn stack(parts: Vec<PackedMatrix>) -> Result<Self, Vec<PackedMatrix>> {
        let same = |p: &PackedMatrix, q: &PackedMatrix| (p.format, p.cols) == (q.format, q.cols);
        let Some(first) = parts.first() else {
            return Err(parts);
        };
        if !parts.iter().all(|p| same(p, first)) {
            return Err(parts);
        }
        let mut all = Self {
            rows: parts.iter().map(|p| p.rows).sum(),
            quants: Vec::new(),
            scales: Vec::new(),
            mins: Vec::new(),
            ..*first
        };
        for p in parts {
            all.quants.extend_from_slice(&p.quants);
            all.scales.extend_from_slice(&p.scales);
            all.mins.extend_from_slice(&p.mins);
        }
        Ok(all)
    }

    /// Row `r`'s stored data.
    fn row(&self, r: usize) -> WeightRow<'_> {
        let (pb, nb) = (self.format.pair_bytes() * self.pairs, 2 * self.pairs);
        let mins = match self.format {
            Format::Q4_1 => {
                let n = padded_blocks(self.pairs);
                &self.mins[r * n..(r + 1) * n]
            }
            Format::Q8_0 => &[],
        };
        WeightRow {
            format: self.format,
            quants: &self.quants[r * pb..(r + 1) * pb],
            scales: &self.scales[r * nb..(r + 1) * nb],
            mins,
        }
    }

    /// `x @ self^T`: `x` holds `m` rows of `cols` values; returns `m` rows of `rows` values.
    ///
    /// Output rows are shared out over candle's persistent thread pool in tasks of 16.
    pub(super) fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let m = x.len() / self.cols.max(1);
        let acts = QuantizedActivations::new(x, self.cols, self.pairs);
        let simd = kernel_available();
        // Computed transposed, (rows, m), so that each task owns a contiguous slice.
        let mut out_t = vec![0f32; self.rows * m];
        let slots: Vec<Mutex<&mut [f32]>> = out_t
            .chunks_mut(ROWS_PER_TASK * m)
            .map(Mutex::new)
            .collect();
        let task = |t: usize| {
            let Ok(mut slot) = slots[t].lock() else {
                return;
            };
            // The task's weight rows, on the stack: no allocation per task on the decode path.
            let count = slot.len() / m.max(1);
            let weights: [Option<WeightRow>; ROWS_PER_TASK] =
                std::array::from_fn(|k| (k < count).then(|| self.row(t * ROWS_PER_TASK + k)));
            // Activation rows in tiles of `TILE`, each against the task's weight rows: both
            // stay in L1, and each weight pair is unpacked once per tile.
            let tiles = m / TILE;
            for tile in 0..tiles {
                let i = tile * TILE;
                let rows: [ActivationRow; TILE] = std::array::from_fn(|j| acts.row(i + j));
                for (k, w) in weights.iter().flatten().enumerate() {
                    let v = dot_rows(w, rows.each_ref(), simd);
                    slot[k * m + i..][..TILE].copy_from_slice(&v);
                }
            }
            for i in tiles * TILE..m {
                let a = acts.row(i);
                for (k, w) in weights.iter().flatten().enumerate() {
                    slot[k * m + i] = dot(w, &a, simd);
                }
            }
        };
        candle_core::utils::barrier_pool().execute_chunked(slots.len(), |range| {
            range.for_each(task);
        });
        drop(slots);
        match m {
            1 => out_t,
            _ => {
                let mut out = vec![0f32; out_t.len()];
                for (r, col) in out_t.chunks_exact(m).enumerate() {
                    for (i, &v) in col.iter().enumerate() {
                        out[i * self.rows + r] = v;
                    }
                }
                out
            }
        }
    }
}

/// One stored weight row.
#[derive(Debug, Clone, Copy)]
pub(super) struct WeightRow<'a> {
    pub(super) format: Format,
    /// `pairs * format.pair_bytes()` bytes.
    pub(super) quants: &'a [u8],
    /// `2 * pairs` f16 bits.
    pub(super) scales: &'a [u16],
    /// `padded_blocks(pairs)` f16 bits (Q4_1), else empty.
    pub(super) mins: &'a [u16],
}

/// Rows of activations quantized per block of 32 (8-bit, f32 scale), in pair order.
#[derive(Debug, Clone)]
pub(super) struct QuantizedActivations {
    pairs: usize,
    quants: Vec<i8>,
    scales: Vec<f32>,
    /// `scale * sum(q)` per block, `padded_blocks(pairs)` per row (zeros past the end).
    sums: Vec<f32>,
    /// `128 * sum(q)` over each lane's four values, 16 per pair.
    offsets: Vec<i32>,
}

impl QuantizedActivations {
    /// Quantizes `x` (rows of `cols` values) with one scale per block of 32: `amax / 127`,
    /// values rounded to the nearest integer (ties to even). A NaN or infinite value makes its
    /// block's scale NaN, so that broken activations give NaN outputs, not a finite guess.
    pub(super) fn new(x: &[f32], cols: usize, pairs: usize) -> Self {
        let m = x.len() / cols.max(1);
        let nb = padded_blocks(pairs);
        let mut a = Self {
            pairs,
            quants: vec![0; m * pairs * PAIR],
            scales: vec![0.0; m * 2 * pairs],
            sums: vec![0.0; m * nb],
            offsets: vec![0; m * pairs * LANES],
        };
        for (i, row) in x.chunks_exact(cols).enumerate() {
            for (b, block) in row.chunks_exact(BLOCK).enumerate() {
                let (p, half) = (b / 2, b % 2);
                let q = &mut a.quants[(i * pairs + p) * PAIR..][..PAIR];
                let scale = quantize_block(block, half, q);
                let total: i32 = (0..BLOCK).map(|e| q[pair_position(half, e)] as i32).sum();
                a.scales[i * 2 * pairs + b] = scale;
                a.sums[i * nb + b] = scale * total as f32;
            }
            for (lane, offset) in a.offsets[i * pairs * LANES..][..pairs * LANES]
                .iter_mut()
                .enumerate()
            {
                let q = &a.quants[i * pairs * PAIR + lane * 4..][..4];
                *offset = 128 * q.iter().map(|&v| v as i32).sum::<i32>();
            }
        }
        a
    }

    pub(super) fn row(&self, i: usize) -> ActivationRow<'_> {
        let (p, nb) = (self.pairs, padded_blocks(self.pairs));
        ActivationRow {
            quants: &self.quants[i * p * PAIR..(i + 1) * p * PAIR],
            scales: &self.scales[i * 2 * p..(i + 1) * 2 * p],
            sums: &self.sums[i * nb..(i + 1) * nb],
            offsets: &self.offsets[i * p * LANES..(i + 1) * p * LANES],
        }
    }
}

/// Quantizes one block of 32 values into its pair positions of `q`; returns the scale.
fn quantize_block(block: &[f32], half: usize, q: &mut [i8]) -> f32 {
    let mut amax = 0f32;
    let mut broken = false;
    for &v in block {
        broken |= !v.is_finite();
        amax = amax.max(v.abs());
    }
    if broken {
        return f32::NAN;
    }
    let scale = amax / 127.0;
    let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (e, &v) in block.iter().enumerate() {
        q[pair_position(half, e)] = round_ties_even_small(v * inverse).clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// `x.round_ties_even()`, as two additions on the activations' range (`|x| <= 2^22`; here at
/// most 127 plus rounding): adding 1.5 * 2^23 leaves no bits below the units, and IEEE addition
/// rounds to nearest, ties to even. `round_ties_even` alone compiles to a libm call per value
/// without SSE4.1 enabled; it stays the path for larger and non-finite values.
fn round_ties_even_small(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    if x.abs() <= 4_194_304.0 {
        (x + SHIFT) - SHIFT
    } else {
        x.round_ties_even()
    }
}

/// One quantized activation row.
#[derive(Debug, Clone, Copy)]
pub(super) struct ActivationRow<'a> {
    pub(super) quants: &'a [i8],
    pub(super) scales: &'a [f32],
    pub(super) sums: &'a [f32],
    pub(super) offsets: &'a [i32],
}

/// Whether the SIMD kernel runs on this CPU.
pub(super) fn kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::packed_x86::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The dot products of a weight row with `N` activation rows (same pair count).
fn dot_rows<const N: usize>(w: &WeightRow, a: [&ActivationRow; N], simd: bool) -> [f32; N] {
    #[cfg(target_arch = "x86_64")]
    if simd {
        if let Some(v) = super::packed_x86::dot_rows(w, a) {
            return v;
        }
    }
    let _ = simd;
    a.map(|a| dot_scalar(w, a))
}

/// The dot product of a weight row and an activation row (same pair count).
fn dot(w: &WeightRow, a: &ActivationRow, simd: bool) -> f32 {
    let [v] = dot_rows(w, [a], simd);
    v
}

/// The reference: the same integer sums and the same float operations, in the same order, as
/// the SIMD kernel.
pub(super) fn dot_scalar(w: &WeightRow, a: &ActivationRow) -> f32 {
    let pairs = a.scales.len() / 2;
    let mut acc = [0f32; LANES];
    for p in 0..pairs {
        let u = unpack_pair(w, p);
        let q = &a.quants[p * PAIR..][..PAIR];
        let dw = [f16_to_f32(w.scales[2 * p]), f16_to_f32(w.scales[2 * p + 1])];
        let da = [a.scales[2 * p], a.scales[2 * p + 1]];
        for (l, acc) in acc.iter_mut().enumerate() {
            let mut sum: i32 = (0..4)
                .map(|j| u[4 * l + j] as i32 * q[4 * l + j] as i32)
                .sum();
            if w.format == Format::Q8_0 {
                sum -= a.offsets[p * LANES + l];
            }
            *acc = (sum as f32).mul_add(dw[l % 2] * da[l % 2], *acc);
        }
    }
    let mut total = reduce(&acc);
    if w.format == Format::Q4_1 {
        let mut acc = [0f32; LANES];
        for (b, (&m, &s)) in w.mins.iter().zip(a.sums).enumerate() {
            acc[b % LANES] = f16_to_f32(m).mul_add(s, acc[b % LANES]);
        }
        total += reduce(&acc);
    }
    total
}

/// The 64 unsigned weight values of pair `p`, in pair order.
fn unpack_pair(w: &WeightRow, p: usize) -> [u8; PAIR] {
    let mut u = [0u8; PAIR];
    match w.format {
        Format::Q4_1 => {
            let bytes = &w.quants[p * PAIR / 2..][..PAIR / 2];
            for (j, &b) in bytes.iter().enumerate() {
                u[j] = b & 0x0F;
                u[j + PAIR / 2] = b >> 4;
            }
        }
        Format::Q8_0 => u.copy_from_slice(&w.quants[p * PAIR..][..PAIR]),
    }
    u
}

/// Sums 16 lanes in a fixed tree (halves added lane-wise, four times).
pub(super) fn reduce(lanes: &[f32; LANES]) -> f32 {
    let mut v = *lanes;
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            v[i] += v[i + width];
        }
    }
    v[0]
}

/// IEEE half precision bits to f32 (exact).
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1F) as u32;
    let man = (h & 0x03FF) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalize the mantissa.
            let shift = man.leading_zeros() - 21;
            let man = (man << shift) & 0x03FF;
            sign | ((127 - 15 + 1 - shift) << 23) | (man << 13)
        }
        (0x1F, _) => sign | 0x7F80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
#[path = "packed_tests.rs"]
mod tests;
