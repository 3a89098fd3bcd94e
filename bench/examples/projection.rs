//! The layer form's projections alone: `Linear::apply_rows` (y = x·Wᵀ + b) on the shapes of
//! all-MiniLM-L6-v2 (one sentence of 8 word pieces, 32 sentences of 266 in all) and of the
//! layer example, on one thread and on two. Prints the time and GFLOP/s of each.
//!
//! `cargo run --release -p attn-bench --example projection`

use attn_bench::{median_seconds, values};
use attn_runtime::Linear;
use attn_runtime::threads::with_threads;

fn main() {
    // Starts the thread pool before anything is timed, as a server would have.
    with_threads(2, || run_untimed::<512, 512>(2048));
    run::<384, 384>(8);
    run::<384, 1536>(8);
    run::<1536, 384>(8);
    run::<384, 384>(266);
    run::<384, 1536>(266);
    run::<1536, 384>(266);
    run::<512, 512>(2048);
}

fn run<const IN: usize, const OUT: usize>(rows: usize) {
    let weight = values(IN * OUT, 1);
    let linear = Linear::<IN, OUT>::from_slices("p", &weight, Some(&values(OUT, 2))).unwrap();
    let x: Vec<[f32; IN]> = values(rows * IN, 3)
        .chunks_exact(IN)
        .map(|row| row.try_into().unwrap())
        .collect();
    let mut y = vec![[0.0f32; OUT]; rows];
    let flops = (2 * rows * IN * OUT) as f64;
    let mut line = format!("[{rows:>4} x {IN:>4}] x [{IN:>4} x {OUT:>4}]:");
    for threads in [1, 2] {
        let seconds = with_threads(threads, || {
            median_seconds(0.5, || linear.apply_rows(&x, &mut y).unwrap())
        });
        line += &format!(
            "  {threads} thread{}: {:8.1} us {:6.1} GFLOP/s",
            if threads == 1 { " " } else { "s" },
            seconds * 1e6,
            flops / seconds / 1e9
        );
    }
    println!("{line}");
}

/// One product of `rows` rows, not timed.
fn run_untimed<const IN: usize, const OUT: usize>(rows: usize) {
    let linear = Linear::<IN, OUT>::from_slices("p", &values(IN * OUT, 1), None).unwrap();
    let x = vec![[1.0f32; IN]; rows];
    let mut y = vec![[0.0f32; OUT]; rows];
    linear.apply_rows(&x, &mut y).unwrap();
}
