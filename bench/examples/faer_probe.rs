//! Shows why the benchmark clears the vector registers after faer's matrix product: the
//! same softmax loop (SSE `f32::exp`) timed before faer's product, after it, and after
//! `attn_bench::clear_upper_registers`.
//!
//! Run: `cargo run --release -p attn-bench --example faer_probe`

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

fn softmax_time(row: &[f32]) -> std::time::Duration {
    let mut copy = row.to_vec();
    let start = std::time::Instant::now();
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
        copy.copy_from_slice(row);
    }
    start.elapsed()
}

fn main() {
    let (n, d) = (2048, 64);
    let q = attn_bench::values(n * d, 1);
    let row = attn_bench::values(n, 5);
    println!("softmax before faer's product: {:?}", softmax_time(&row));
    let q = MatRef::from_row_major_slice(&q, n, d);
    let mut scores = Mat::<f32>::zeros(n, n);
    matmul(
        scores.as_mut(),
        Accum::Replace,
        q,
        q.transpose(),
        0.125,
        Par::Seq,
    );
    println!("softmax after faer's product: {:?}", softmax_time(&row));
    attn_bench::clear_upper_registers();
    println!(
        "softmax after clearing the registers: {:?}",
        softmax_time(&row)
    );
}
