//! Query counts just past a multiple of the tile (6 rows), where the last tile is mostly
//! padding: time per query row, against a count that fills its tiles.
//!
//! Run: `cargo run --release -p attn-bench --example tails`

use attn_bench::{median_seconds, values};
use attn_runtime::threads::with_threads;
use attn_runtime::{Tensor, attention};

attention! {
    /// Queries as a const generic, 512 keys of depth 64.
    fn queries_over_512<q: [1, N, 64], k: [1, 512, 64], v: [1, 512, 64]>;
}

fn per_row<const N: usize>() -> f64 {
    let q = Tensor::<[[[f32; 64]; N]; 1]>::from_vec(values(N * 64, 1)).expect("q");
    let k = Tensor::<[[[f32; 64]; 512]; 1]>::from_vec(values(512 * 64, 2)).expect("k");
    let v = Tensor::<[[[f32; 64]; 512]; 1]>::from_vec(values(512 * 64, 3)).expect("v");
    let mut out = Tensor::<[[[f32; 64]; N]; 1]>::zeros();
    let seconds = with_threads(1, || {
        median_seconds(0.5, || queries_over_512_into(&q, &k, &v, &mut out))
    });
    let per_row = seconds / N as f64 * 1e9;
    println!(
        "{N:>4} queries: {:>8.1} us, {per_row:>6.0} ns per query row",
        seconds * 1e6
    );
    per_row
}

fn main() {
    let full = per_row::<12>();
    for tail in [
        per_row::<7>(),
        per_row::<13>(),
        per_row::<49>(),
        per_row::<128>(),
    ] {
        println!("      {:.2}x the time per row of 12 queries", tail / full);
    }
    per_row::<48>();
}
