//! One decoding step of a model with 8 heads of depth 128 over a context of 4,096 tokens: a
//! single query row per head against its cached keys and values. The work is streaming the
//! cache (32 MiB), so the program also times a plain pass that only reads it.
//!
//! Run: `cargo run --release -p attn-bench --example decode`

use attn_runtime::{Tensor, attention};

attention! {
    fn decode<q: [1, 8, 1, 128], k: [1, 8, 4096, 128], v: [1, 8, 4096, 128]>;
}

fn main() {
    let q = Tensor::<[[[[f32; 128]; 1]; 8]; 1]>::from_vec(attn_bench::values(8 * 128, 1)).unwrap();
    let k = Tensor::<[[[[f32; 128]; 4096]; 8]; 1]>::from_vec(attn_bench::values(8 * 4096 * 128, 2))
        .unwrap();
    let v = Tensor::<[[[[f32; 128]; 4096]; 8]; 1]>::from_vec(attn_bench::values(8 * 4096 * 128, 3))
        .unwrap();
    let mut out = Tensor::<[[[[f32; 128]; 1]; 8]; 1]>::zeros();
    let step = attn_runtime::threads::with_threads(1, || {
        attn_bench::median_seconds(3.0, || decode_into(&q, &k, &v, &mut out))
    });
    let read = attn_bench::median_seconds(3.0, || {
        let sum = |data: &[f32]| {
            data.chunks_exact(16)
                .fold([0.0f32; 16], |mut acc, chunk| {
                    for (a, x) in acc.iter_mut().zip(chunk) {
                        *a += x;
                    }
                    acc
                })
                .iter()
                .sum::<f32>()
        };
        sum(k.as_flat()) + sum(v.as_flat())
    });
    let bytes = 2.0 * (8 * 4096 * 128 * 4) as f64;
    println!(
        "decode step: {:.3} ms ({:.1} GB/s of cache); reading the cache alone: {:.3} ms ({:.1} GB/s)",
        step * 1e3,
        bytes / step / 1e9,
        read * 1e3,
        bytes / read / 1e9
    );
}
