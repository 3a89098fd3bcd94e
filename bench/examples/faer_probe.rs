//! Probe: is `f32::exp` slower after faer's matmul, and what state changed?
#![allow(deprecated)]
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
fn softmax_time(col: &[f32]) -> std::time::Duration {
    let mut copy = col.to_vec();
    let t = std::time::Instant::now();
    for _ in 0..200 {
        let max = copy.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut sum = 0.0;
        for x in copy.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        for x in copy.iter_mut() {
            *x /= sum;
        }
        copy.copy_from_slice(col);
    }
    t.elapsed()
}
fn main() {
    let (n, d) = (2048, 64);
    let q = attn_bench::values(n * d, 1);
    let col = attn_bench::values(n, 5);
    println!("before: {:?}, mxcsr {:#x}", softmax_time(&col), unsafe {
        std::arch::x86_64::_mm_getcsr()
    });
    let qm = MatRef::from_row_major_slice(&q, n, d);
    let mut s = Mat::<f32>::zeros(n, n);
    matmul(
        s.as_mut(),
        Accum::Replace,
        qm,
        qm.transpose(),
        0.125,
        Par::Seq,
    );
    println!("after: {:?}, mxcsr {:#x}", softmax_time(&col), unsafe {
        std::arch::x86_64::_mm_getcsr()
    });
    attn_bench::clear_upper_registers();
    println!("after clearing: {:?}", softmax_time(&col));
}
