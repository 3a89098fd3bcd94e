//! One workload on one thread for a few seconds, for a profiler: `perf record` this binary.
//! `profile_w3 [w2|w3|w4|w4s] [threads]` (default w3 on one thread); w4s is W4 cut to 4
//! problems, whose operands stay in the L2 cache: against w4 it shows what streaming costs.

use attn_runtime::{Tensor, attention};

attention! {
    fn one_head<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;
    fn heads<q: [96, 256, 64], k: [96, 256, 64], v: [96, 256, 64]>;
    fn few<q: [4, 256, 64], k: [4, 256, 64], v: [4, 256, 64]>;
}

fn repeat(flops: u64, mut run: impl FnMut()) {
    let start = std::time::Instant::now();
    let mut runs = 0;
    let threads = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    attn_runtime::threads::with_threads(threads, || {
        while start.elapsed().as_secs_f64() < 3.0 {
            run();
            runs += 1;
        }
    });
    let seconds = start.elapsed().as_secs_f64() / runs as f64;
    println!("{:.1} GFLOP/s", flops as f64 / seconds / 1e9);
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("w2") => {
            let q =
                Tensor::<[[[f32; 64]; 128]; 1]>::from_vec(attn_bench::values(128 * 64, 1)).unwrap();
            let mut out = Tensor::<[[[f32; 64]; 128]; 1]>::zeros();
            repeat(one_head::info::<128>().flops, || {
                one_head_into(&q, &q, &q, &mut out)
            });
        }
        Some("w4s") => {
            let [q, k, v] = [1, 2, 3].map(|seed| {
                Tensor::<[[[f32; 64]; 256]; 4]>::from_vec(attn_bench::values(4 * 256 * 64, seed))
                    .unwrap()
            });
            let mut out = Tensor::<[[[f32; 64]; 256]; 4]>::zeros();
            repeat(few::INFO.flops, || few_into(&q, &k, &v, &mut out));
        }
        Some("w4") => {
            // Distinct q, k and v, as in the benchmark: W4 streams them from memory.
            let [q, k, v] = [1, 2, 3].map(|seed| {
                Tensor::<[[[f32; 64]; 256]; 96]>::from_vec(attn_bench::values(96 * 256 * 64, seed))
                    .unwrap()
            });
            let mut out = Tensor::<[[[f32; 64]; 256]; 96]>::zeros();
            repeat(heads::INFO.flops, || heads_into(&q, &k, &v, &mut out));
        }
        _ => {
            let q = Tensor::<[[[f32; 64]; 2048]; 1]>::from_vec(attn_bench::values(2048 * 64, 1))
                .unwrap();
            let mut out = Tensor::<[[[f32; 64]; 2048]; 1]>::zeros();
            repeat(one_head::info::<2048>().flops, || {
                one_head_into(&q, &q, &q, &mut out)
            });
        }
    }
}
