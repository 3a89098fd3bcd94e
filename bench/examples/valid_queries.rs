//! A prompt shorter than the kernel's capacity: a kernel of 4,096 queries and keys called with
//! 64 valid ones (`valid_queries`, `valid_lengths`), against a kernel compiled for 64, timed in
//! alternation on one thread. The padding rows are computed not at all; their zeros (4,032 rows
//! of depth 64, 1 MiB) are written at every call into a plain output, and only where the last
//! call left other values into a `ZeroPadded` one, as a serving loop reuses it.
//!
//! Run: `cargo run --release -p attn-bench --example valid_queries`

use attn_bench::paired_medians;
use attn_runtime::threads::with_threads;
use attn_runtime::{Tensor, ZeroPadded, attention};

attention! {
    /// Capacity 4,096; the valid counts at each call.
    #[attn(valid_lengths, valid_queries)]
    fn capacity<q: [1, 4096, 64], k: [1, 4096, 64], v: [1, 4096, 64]>;
    /// Compiled for 64.
    fn exact<q: [1, 64, 64], k: [1, 64, 64], v: [1, 64, 64]>;
}

type Capacity = [[[f32; 64]; 4096]; 1];

fn main() {
    let values = attn_bench::values(4096 * 64, 5);
    let big = Tensor::<Capacity>::from_slice(&values).expect("4,096 rows");
    let small = Tensor::<[[[f32; 64]; 64]; 1]>::from_slice(&values[..64 * 64]).expect("64 rows");
    let mut padded_out = ZeroPadded::<Capacity>::zeros();
    let mut plain_out = Tensor::<Capacity>::zeros();
    let mut small_out = Tensor::<[[[f32; 64]; 64]; 1]>::zeros();
    let (padded, compiled) = with_threads(1, || {
        paired_medians(
            3.0,
            || capacity_into(&big, &big, &big, &[64], &[64], &mut padded_out).expect("64 fits"),
            || exact_into(&small, &small, &small, &mut small_out),
        )
    });
    let same = padded_out[0][..64] == small_out[0][..];
    println!(
        "64 valid queries and keys of a 4,096 capacity, into a ZeroPadded output: {:.2} us; \
         a kernel compiled for 64: {:.2} us; {:.2}x (same rows: {same})",
        padded * 1e6,
        compiled * 1e6,
        padded / compiled
    );
    let (plain, compiled) = with_threads(1, || {
        paired_medians(
            3.0,
            || capacity_into(&big, &big, &big, &[64], &[64], &mut plain_out).expect("64 fits"),
            || exact_into(&small, &small, &small, &mut small_out),
        )
    });
    println!(
        "the same into a plain output, whose 4,032 padding rows are written as zeros at each \
         call: {:.2} us; a kernel compiled for 64: {:.2} us; {:.2}x",
        plain * 1e6,
        compiled * 1e6,
        plain / compiled
    );
    let zeros = with_threads(1, || {
        attn_bench::median_seconds(1.0, || plain_out[0][64..].fill([0.0; 64]))
    });
    println!(
        "writing the 4,032 padding rows' zeros alone: {:.2} us",
        zeros * 1e6
    );
}
