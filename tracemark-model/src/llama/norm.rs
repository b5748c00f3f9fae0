//! RMS normalization and the SwiGLU activation on plain slices, with the same float operations
//! in the same order as candle's `rms_norm` and `silu` (so the same bits), without a tensor op's
//! overhead on each of a decoding step's ~200 small calls.

use candle_core::quantized::QTensor;
use candle_core::{Device, Result as CResult};

/// `x / sqrt(mean(x^2) + eps) * weight`, row by row.
#[derive(Debug)]
pub(super) struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    pub(super) fn from_qtensor(t: QTensor, eps: f64) -> CResult<Self> {
        Ok(Self {
            weight: t
                .dequantize(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?,
            eps: eps as f32,
        })
    }

    /// Normalizes every row of `x` (rows of the weight's width).
    pub(super) fn forward(&self, x: &[f32]) -> Vec<f32> {
        let n = self.weight.len();
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(n) {
            let sum2 = row.iter().map(|v| v * v).sum::<f32>();
            let m = (sum2 / n as f32 + self.eps).sqrt();
            out.extend(row.iter().zip(&self.weight).map(|(s, a)| s / m * a));
        }
        out
    }
}

/// SwiGLU: `silu(gate) * up`, element by element, with candle's `silu` (`v / (1 + exp(-v))`).
pub(super) fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
        .collect()
}

/// `x += y`, element by element.
pub(super) fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;
    use candle_core::Tensor;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2000) as f32 / 300.0 - 3.3)
            .collect()
    }

    /// Bit for bit what candle computes (the model's logits must not depend on which is used).
    #[test]
    fn same_bits_as_candle() {
        let (rows, n) = (3, 576);
        let dev = Device::Cpu;
        let weight = Tensor::from_vec(values(n, 1), n, &dev).unwrap();
        let ours = RmsNorm::from_qtensor(QTensor::quantize(&weight, GgmlDType::F32).unwrap(), 1e-5)
            .unwrap();
        let x = values(rows * n, 2);
        let xt = Tensor::from_vec(x.clone(), (rows, n), &dev).unwrap();
        let theirs = candle_nn::ops::rms_norm(&xt, &weight, 1e-5).unwrap();
        assert_eq!(
            ours.forward(&x),
            theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let up = values(rows * n, 3);
        let upt = Tensor::from_vec(up.clone(), (rows, n), &dev).unwrap();
        let theirs = (xt.silu().unwrap() * upt).unwrap();
        assert_eq!(
            swiglu(&x, &up),
            theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}
