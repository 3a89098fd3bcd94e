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
    // `profile_w1 N` runs N thousand calls (for callgrind); without N, two seconds' worth.
    let fixed: Option<u64> = std::env::args().nth(1).and_then(|n| n.parse().ok());
    let start = std::time::Instant::now();
    let mut runs = 0u64;
    while fixed.map_or(start.elapsed().as_secs_f64() < 2.0, |n| runs < n * 1000) {
        for _ in 0..1000 {
            std::hint::black_box(w1(
                std::hint::black_box(&q),
                std::hint::black_box(&kv),
                std::hint::black_box(&kv),
            ));
        }
        runs += 1000;
    }
    println!(
        "{:.1} ns",
        start.elapsed().as_secs_f64() / runs as f64 * 1e9
    );
}
