//! The layer form end to end: a 2,048-token sequence through one self-attention layer as
//! `nn.MultiheadAttention(512, 8)` (projections, 8 heads of 64, attention, output
//! projection), on one thread and on two. Prints the time and GFLOP/s of the whole layer
//! and of its attention alone.
//!
//! `cargo run --release -p attn-bench --example layer`

use attn_bench::{median_seconds, values};
use attn_runtime::threads::with_threads;
use attn_runtime::{Linear, Tensor, attention};

attention! {
    #[attn(split_heads)]
    fn layer<x: [1, 2048, 512], q: [1, 8, 2048, 64], k: [1, 8, 2048, 64], v: [1, 8, 2048, 64], out: [1, 2048, 512]>;
}

fn main() {
    let x = Tensor::<[[[f32; 512]; 2048]; 1]>::from_vec(values(2048 * 512, 1)).unwrap();
    let linears: Vec<Linear<512, 512>> = (0..4)
        .map(|seed| {
            let weight: Vec<f32> = values(512 * 512, seed + 2)
                .iter()
                .map(|w| w / 22.6)
                .collect();
            Linear::from_slices("proj", &weight, Some(&values(512, seed + 7))).unwrap()
        })
        .collect();
    let attention_flops = layer_attention::INFO.flops;
    // Four projections of 2,048 rows, 512 x 512 each.
    let projection_flops = 4 * 2 * 2048 * 512 * 512;
    let total = attention_flops + projection_flops;
    println!(
        "layer [1, 2048, 512], 8 heads of 64: {:.2} GFLOP ({:.0}% in the attention)",
        total as f64 / 1e9,
        100.0 * attention_flops as f64 / total as f64
    );
    for threads in [1, 2] {
        let mut out = Tensor::<[[[f32; 512]; 2048]; 1]>::zeros();
        let seconds = with_threads(threads, || {
            median_seconds(3.0, || {
                layer_into(
                    &x,
                    &linears[0],
                    &linears[1],
                    &linears[2],
                    &linears[3],
                    &mut out,
                )
            })
        });
        println!(
            "{threads} thread(s): {:.2} ms, {:.1} GFLOP/s",
            seconds * 1e3,
            total as f64 / seconds / 1e9
        );
    }
}
