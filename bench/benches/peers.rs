//! The same attention through each peer, as a user of that library writes it: the scores by
//! its matrix product, a softmax with the max subtracted, then the product with V. Each
//! computes one problem `[N, D]` from row-major slices into `out`.

use candle_core::{D, Device, Tensor as CandleTensor};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2, Axis};

/// One attention problem: q `[nq, d]`, k and v `[nk, d]`, row-major.
pub struct Problem<'a> {
    /// `[nq, d]`.
    pub q: &'a [f32],
    /// `[nk, d]`.
    pub k: &'a [f32],
    /// `[nk, d]`.
    pub v: &'a [f32],
    /// Query rows.
    pub nq: usize,
    /// Key rows.
    pub nk: usize,
    /// Depth of q, k and v.
    pub d: usize,
}

impl Problem<'_> {
    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }
}

/// Softmax of each row of a row-major `[rows, cols]` matrix, in place.
fn softmax_rows(scores: &mut [f32], cols: usize) {
    for row in scores.chunks_exact_mut(cols) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut sum = 0.0;
        for x in row.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

/// ndarray: `general_mat_mul` through matrixmultiply.
pub fn ndarray(p: &Problem, out: &mut [f32]) {
    let q = ArrayView2::from_shape((p.nq, p.d), p.q).expect("q's shape");
    let k = ArrayView2::from_shape((p.nk, p.d), p.k).expect("k's shape");
    let v = ArrayView2::from_shape((p.nk, p.d), p.v).expect("v's shape");
    let mut scores: Array2<f32> = q.dot(&k.t()) * p.scale();
    for mut row in scores.axis_iter_mut(Axis(0)) {
        let max = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        row.mapv_inplace(|x| (x - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|x| x / sum);
    }
    let result = scores.dot(&v);
    out.copy_from_slice(result.as_slice().expect("a standard layout"));
}

/// faer: `matmul` on one thread. faer's matrices are column-major, so the scores are
/// computed transposed (`K · Qᵀ`), which puts each query's scores in one contiguous column,
/// and the output as `Vᵀ · Pᵀ`, which is `out` row-major.
pub fn faer(p: &Problem, out: &mut [f32]) {
    let q = MatRef::from_row_major_slice(p.q, p.nq, p.d);
    let k = MatRef::from_row_major_slice(p.k, p.nk, p.d);
    let v = MatRef::from_row_major_slice(p.v, p.nk, p.d);
    let mut scores_t = Mat::<f32>::zeros(p.nk, p.nq);
    matmul(
        scores_t.as_mut(),
        Accum::Replace,
        k,
        q.transpose(),
        p.scale(),
        Par::Seq,
    );
    // faer's x86 matrix product returns with the upper halves of the vector registers
    // dirty, which makes the SSE code of `f32::exp` below about 50 times slower (measured
    // with bench/examples/faer_probe.rs); clear them, as a careful user of faer would.
    attn_bench::clear_upper_registers();
    for i in 0..p.nq {
        softmax_rows(scores_t.col_as_slice_mut(i), p.nk);
    }
    let out_t = MatMut::from_column_major_slice_mut(out, p.d, p.nq);
    matmul(
        out_t,
        Accum::Replace,
        v.transpose(),
        scores_t.as_ref(),
        1.0,
        Par::Seq,
    );
    attn_bench::clear_upper_registers();
}

/// candle: its CPU tensors (gemm), as `candle_nn`'s attention composes them.
pub fn candle(p: &Problem, out: &mut [f32]) {
    let run = || -> candle_core::Result<Vec<f32>> {
        let device = Device::Cpu;
        let q = CandleTensor::from_slice(p.q, (p.nq, p.d), &device)?;
        let k = CandleTensor::from_slice(p.k, (p.nk, p.d), &device)?;
        let v = CandleTensor::from_slice(p.v, (p.nk, p.d), &device)?;
        let scores = (q.matmul(&k.t()?)? * p.scale() as f64)?;
        let max = scores.max_keepdim(D::Minus1)?;
        let exps = scores.broadcast_sub(&max)?.exp()?;
        let sums = exps.sum_keepdim(D::Minus1)?;
        let weights = exps.broadcast_div(&sums)?;
        weights.matmul(&v)?.flatten_all()?.to_vec1::<f32>()
    };
    out.copy_from_slice(&run().expect("candle's attention"));
}
