//! Quantized matrices: the file's format kept, or re-quantized (and padded to pick candle's
//! kernel), and sets of matrices fused into one matmul.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{bail, Device, Module, Result as CResult, Tensor, D};

/// A quantized matrix, possibly stored with zero columns appended (see [`stored_width`]); the
/// input is padded with zeros to match, which leaves the products unchanged.
#[derive(Debug)]
pub(super) struct Linear {
    mm: QMatMul,
    /// Zero columns appended to the weight (and to the input).
    pad: usize,
}

impl Linear {
    /// The matrix as read, in its own format.
    pub(super) fn keep(t: QTensor) -> CResult<Self> {
        Ok(Self {
            mm: QMatMul::from_qtensor(t)?,
            pad: 0,
        })
    }

    /// The f32 matrix `w` (out, in) quantized to `dtype`, padded as `repacked` asks.
    pub(super) fn quantize(w: &Tensor, dtype: GgmlDType, repacked: bool) -> CResult<Self> {
        let (n, k) = w.dims2()?;
        let pad = stored_width(dtype, n, k, repacked) - k;
        let q = match pad {
            0 => QTensor::quantize(w, dtype)?,
            _ => QTensor::quantize(&w.pad_with_zeros(1, 0, pad)?, dtype)?,
        };
        Ok(Self {
            mm: QMatMul::from_qtensor(q)?,
            pad,
        })
    }

    /// `t` converted to `dtype` through f32 (kept as is when `None`, or when it already is
    /// `dtype` and needs no padding).
    pub(super) fn convert(
        t: QTensor,
        dtype: Option<GgmlDType>,
        repacked: bool,
        dev: &Device,
    ) -> CResult<Self> {
        match dtype {
            Some(dtype) => {
                let (n, k) = t.shape().dims2()?;
                if dtype == t.dtype() && stored_width(dtype, n, k, repacked) == k {
                    return Self::keep(t);
                }
                Self::quantize(&t.dequantize(dev)?, dtype, repacked)
            }
            None => Self::keep(t),
        }
    }

    pub(super) fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        match self.pad {
            0 => self.mm.forward(x),
            pad => self.mm.forward(&x.pad_with_zeros(D::Minus1, 0, pad)?),
        }
    }
}

/// The width at which a matrix with `k` input columns is stored, to get (`repacked`) or avoid
/// candle's repacked Q8_0 kernel.
///
/// On x86 CPUs with VNNI (AVX-VNNI or AVX512-VNNI) candle runs a Q8_0 matrix whose `k` is a
/// multiple of 256 with a much faster kernel: weights repacked in tiles of 16 rows, dot products
/// by `vpdpbusd`, but activations quantized with one scale per 256 values, which loses accuracy
/// on SmolLM2's outlier channels (see [`LoadOptions::fast_matmul`]). Any other `k` goes to the
/// per-32 kernel. So to get the fast kernel, SmolLM2's 576 columns are padded with zeros to 768
/// (a third more arithmetic, yet about 3x faster at batch 1 and 7x over many rows, measured on
/// this project's 2-core machine); to avoid it, the 1536 columns of `ffn_down` get 32 zero
/// columns. Zero columns leave the products unchanged.
fn stored_width(dtype: GgmlDType, n: usize, k: usize, repacked: bool) -> usize {
    const SUPERBLOCK: usize = 256;
    const BLOCK: usize = 32;
    if dtype != GgmlDType::Q8_0 || n % 16 != 0 || !vnni() {
        return k;
    }
    match (repacked, k % SUPERBLOCK == 0) {
        (true, _) => k.next_multiple_of(SUPERBLOCK),
        (false, true) => k + BLOCK,
        (false, false) => k,
    }
}

/// Whether candle's x86 repacked Q8_0 kernel runs on this CPU (mirrors candle's own test).
fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1") {
            return false;
        }
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
            || (is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A set of matrices applied to the same input, fused into one matmul when re-quantizing: one
/// activation quantization and one parallel region instead of two or three.
#[derive(Debug)]
pub(super) enum Proj {
    /// One matrix whose output rows are the parts, in order, with these widths.
    Fused(Linear, Vec<usize>),
    /// Separate matrices (the file's quantization is kept).
    Split(Vec<Linear>),
}

impl Proj {
    pub(super) fn forward(&self, x: &Tensor) -> CResult<Vec<Tensor>> {
        match self {
            Proj::Fused(mm, sizes) => {
                let y = mm.forward(x)?;
                let mut parts = Vec::with_capacity(sizes.len());
                let mut start = 0;
                for &size in sizes {
                    parts.push(y.narrow(D::Minus1, start, size)?);
                    start += size;
                }
                Ok(parts)
            }
            Proj::Split(mms) => mms.iter().map(|mm| mm.forward(x)).collect(),
        }
    }
}

pub(super) fn check_matrix(t: &QTensor, rows: usize, cols: usize, name: &str) -> CResult<()> {
    match t.shape().dims2() {
        Ok((r, c)) if r == rows && c == cols => Ok(()),
        _ => bail!("{name}: shape {:?}, expected ({rows}, {cols})", t.shape()),
    }
}

/// Matrices sharing one input. When re-quantizing they are stacked row-wise into one matrix
/// before quantization (exact: quantization blocks never cross rows); when the file's format is
/// kept they stay separate, so the weights are bit-for-bit the file's.
pub(super) fn proj(
    mats: Vec<QTensor>,
    dtype: Option<GgmlDType>,
    repacked: bool,
    dev: &Device,
) -> CResult<Proj> {
    match dtype {
        Some(dtype) => {
            let mut parts = Vec::with_capacity(mats.len());
            let mut sizes = Vec::with_capacity(mats.len());
            for m in &mats {
                let f = m.dequantize(dev)?;
                sizes.push(f.dim(0)?);
                parts.push(f);
            }
            let stacked = Tensor::cat(&parts, 0)?;
            Ok(Proj::Fused(
                Linear::quantize(&stacked, dtype, repacked)?,
                sizes,
            ))
        }
        None => Ok(Proj::Split(
            mats.into_iter().map(Linear::keep).collect::<CResult<_>>()?,
        )),
    }
}
