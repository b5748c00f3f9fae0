//! Quantized matrices: the file's Q4_1/Q8_0 run by tracemark's own kernel ([`super::packed`]),
//! or any format run by candle (kept, or re-quantized and padded to pick candle's kernel), and
//! sets of matrices fused into one matmul.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{bail, Device, Module, Result as CResult, Tensor, D};

use super::packed::PackedMatrix;

/// A quantized matrix and the kernel that runs it.
#[derive(Debug)]
pub(super) enum Linear {
    /// The file's Q4_1 or Q8_0 weights, repacked for tracemark's kernel.
    Packed(PackedMatrix),
    /// candle's `QMatMul`, possibly stored with zero columns appended (see [`stored_width`]);
    /// the input is padded with zeros to match, which leaves the products unchanged.
    Candle {
        mm: QMatMul,
        /// Zero columns appended to the weight (and to the input).
        pad: usize,
    },
}

impl Linear {
    /// The matrix for tracemark's kernel: the file's Q4_1 or Q8_0 as they are, any other format
    /// quantized to Q8_0 (so a matrix stored in f32 runs exactly as the same one stored in Q8_0
    /// by candle's quantizer). A width that is not a multiple of 32 is left to candle as is.
    pub(super) fn keep(t: QTensor) -> CResult<Self> {
        if let Some(m) = PackedMatrix::from_qtensor(&t)? {
            return Ok(Linear::Packed(m));
        }
        let (_, k) = t.shape().dims2()?;
        if k % GgmlDType::Q8_0.block_size() != 0 {
            return Self::candle(t);
        }
        let q = QTensor::quantize(&t.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?;
        match PackedMatrix::from_qtensor(&q)? {
            Some(m) => Ok(Linear::Packed(m)),
            None => bail!("Q8_0 matrix not taken by the kernel"),
        }
    }

    /// The matrix as read, run by candle.
    fn candle(t: QTensor) -> CResult<Self> {
        Ok(Linear::Candle {
            mm: QMatMul::from_qtensor(t)?,
            pad: 0,
        })
    }

    /// The f32 matrix `w` (out, in) quantized to `dtype` for candle's kernels, padded as
    /// `repacked` asks.
    pub(super) fn quantize(w: &Tensor, dtype: GgmlDType, repacked: bool) -> CResult<Self> {
        let (n, k) = w.dims2()?;
        let pad = stored_width(dtype, n, k, repacked) - k;
        let q = match pad {
            0 => QTensor::quantize(w, dtype)?,
            _ => QTensor::quantize(&w.pad_with_zeros(1, 0, pad)?, dtype)?,
        };
        Ok(Linear::Candle {
            mm: QMatMul::from_qtensor(q)?,
            pad,
        })
    }

    /// `t` converted to `dtype` through f32 for candle's kernels (kept as is when it already is
    /// `dtype` and needs no padding); `None` keeps the file's format ([`Linear::keep`]).
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
                    return Self::candle(t);
                }
                Self::quantize(&t.dequantize(dev)?, dtype, repacked)
            }
            None => Self::keep(t),
        }
    }

    /// `x @ W^T` for `rows` rows of input (row-major); returns `rows` rows of output.
    pub(super) fn forward(&self, x: &[f32], rows: usize) -> CResult<Vec<f32>> {
        match self {
            Linear::Packed(m) => {
                if x.len() != rows * m.cols() {
                    bail!("matmul: {} values for {rows} rows of {}", x.len(), m.cols());
                }
                Ok(m.matmul(x))
            }
            Linear::Candle { mm, pad } => {
                let k = x.len() / rows.max(1);
                let x = Tensor::from_slice(x, (rows, k), &Device::Cpu)?;
                let y = match pad {
                    0 => mm.forward(&x)?,
                    pad => mm.forward(&x.pad_with_zeros(D::Minus1, 0, *pad)?)?,
                };
                y.flatten_all()?.to_vec1::<f32>()
            }
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
    if dtype != GgmlDType::Q8_0 || !n.is_multiple_of(16) || !vnni() {
        return k;
    }
    match (repacked, k.is_multiple_of(SUPERBLOCK)) {
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
    /// Separate matrices (the file's quantization is kept, in a format candle runs).
    Split(Vec<Linear>),
}

impl Proj {
    /// Each part's output for `rows` rows of input, `rows` rows each.
    pub(super) fn forward(&self, x: &[f32], rows: usize) -> CResult<Vec<Vec<f32>>> {
        match self {
            Proj::Fused(mm, sizes) => {
                let y = mm.forward(x, rows)?;
                let width: usize = sizes.iter().sum();
                let mut parts: Vec<Vec<f32>> =
                    sizes.iter().map(|s| Vec::with_capacity(s * rows)).collect();
                for row in y.chunks_exact(width) {
                    let mut start = 0;
                    for (part, &size) in parts.iter_mut().zip(sizes) {
                        part.extend_from_slice(&row[start..start + size]);
                        start += size;
                    }
                }
                Ok(parts)
            }
            Proj::Split(mms) => mms.iter().map(|mm| mm.forward(x, rows)).collect(),
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
/// kept, the weights stay bit-for-bit the file's: stacked when tracemark's kernel runs them all
/// in one format, else separate.
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
        None => {
            let sizes = mats.iter().map(|m| m.shape().dims2().map(|(n, _)| n));
            let sizes = sizes.collect::<CResult<Vec<usize>>>()?;
            let linears = mats
                .into_iter()
                .map(Linear::keep)
                .collect::<CResult<Vec<_>>>()?;
            if !linears.iter().all(|l| matches!(l, Linear::Packed(_))) {
                return Ok(Proj::Split(linears));
            }
            let packed = linears.into_iter().filter_map(|l| match l {
                Linear::Packed(m) => Some(m),
                Linear::Candle { .. } => None,
            });
            match PackedMatrix::stack(packed.collect()) {
                Ok(all) => Ok(Proj::Fused(Linear::Packed(all), sizes)),
                Err(parts) => Ok(Proj::Split(parts.into_iter().map(Linear::Packed).collect())),
            }
        }
    }
}
