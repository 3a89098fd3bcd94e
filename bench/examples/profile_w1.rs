//! W1 in a loop for a few seconds, for a profiler: `perf record` this binary.

use attn_runtime::attention;

attention! {
    fn w1<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {
    let q = [[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]];
    let kv = [[
        [0.1, -0.2, 0.3],
        [0.4, 0.5, -0.6],
        [0.7, 0.8, 0.9],
        [-1.0, 1.1, 1.2],
    ]];
    let start = std::time::Instant::now();
    let mut runs = 0u64;
    while start.elapsed().as_secs_f64() < 2.0 {
        for _ in 0..1000 {
            std::hint::black_box(w1(std::hint::black_box(&q), &kv, &kv));
        }
        runs += 1000;
    }
    println!(
        "{:.1} ns",
        start.elapsed().as_secs_f64() / runs as f64 * 1e9
    );
}
