//! W3 on one thread for a few seconds, for a profiler: `perf record` this binary.

use attn_runtime::{Tensor, attention};

attention! {
    fn one_head<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;
}

fn main() {
    let q = Tensor::<[[[f32; 64]; 2048]; 1]>::from_vec(attn_bench::values(2048 * 64, 1)).unwrap();
    let mut out = Tensor::<[[[f32; 64]; 2048]; 1]>::zeros();
    let start = std::time::Instant::now();
    let mut runs = 0;
    attn_runtime::threads::with_threads(1, || {
        while start.elapsed().as_secs_f64() < 3.0 {
            one_head_into(&q, &q, &q, &mut out);
            runs += 1;
        }
    });
    let seconds = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "{:.1} GFLOP/s",
        one_head::info::<2048>().flops as f64 / seconds / 1e9
    );
}
