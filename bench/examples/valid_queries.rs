//! A prompt shorter than the kernel's capacity: a kernel of 4,096 queries and keys called with
//! 64 valid ones (`valid_queries`, `valid_lengths`), against a kernel compiled for 64, timed in
//! alternation on one thread. The padding rows are computed not at all; their zeros (4,032 rows
//! of depth 64, 1 MiB) are written at every call into a plain output, and only where the last
//! call left other values into a `ZeroPadded` one, as a serving loop reuses it. Then the same
//! for a layer as `nn.MultiheadAttention(512, 8)` of 4,096 tokens called with 64, against one
//! compiled for 64.
//!
//! Run: `cargo run --release -p attn-bench --example valid_queries`

use attn_bench::{paired_medians, values};
use attn_runtime::half::bf16;
use attn_runtime::threads::with_threads;
use attn_runtime::{Linear, PaddedOutput, Tensor, ZeroPadded, attention};

attention! {
    /// Capacity 4,096; the valid counts at each call.
    #[attn(valid_lengths, valid_queries)]
    fn capacity<q: [1, 4096, 64], k: [1, 4096, 64], v: [1, 4096, 64]>;
    /// Compiled for 64.
    fn exact<q: [1, 64, 64], k: [1, 64, 64], v: [1, 64, 64]>;
    /// The capacity kernel in bf16.
    #[attn(dtype = bf16, valid_lengths, valid_queries)]
    fn capacity_bf16<q: [1, 4096, 64], k: [1, 4096, 64], v: [1, 4096, 64]>;
    /// The kernel compiled for 64, in bf16.
    #[attn(dtype = bf16)]
    fn exact_bf16<q: [1, 64, 64], k: [1, 64, 64], v: [1, 64, 64]>;
    /// A layer of capacity 4,096 tokens.
    #[attn(split_heads, valid_lengths, valid_queries)]
    fn layer_capacity<x: [1, 4096, 512], q: [1, 8, 4096, 64], k: [1, 8, 4096, 64], v: [1, 8, 4096, 64], out: [1, 4096, 512]>;
    /// The layer compiled for 64 tokens.
    #[attn(split_heads)]
    fn layer_exact<x: [1, 64, 512], q: [1, 8, 64, 64], k: [1, 8, 64, 64], v: [1, 8, 64, 64], out: [1, 64, 512]>;
}

type Capacity = [[[f32; 64]; 4096]; 1];

fn main() {
    let values = attn_bench::values(4096 * 64, 5);
    let big = Tensor::<Capacity>::from_slice(&values).expect("4,096 rows");
    let small = Tensor::<[[[f32; 64]; 64]; 1]>::from_slice(&values[..64 * 64]).expect("64 rows");
    let (padded, compiled, same) = against_exact(&big, &small, &mut ZeroPadded::zeros());
    println!(
        "64 valid queries and keys of a 4,096 capacity, into a ZeroPadded output: {:.2} us; \
         a kernel compiled for 64: {:.2} us; {:.2}x (same rows: {same})",
        padded * 1e6,
        compiled * 1e6,
        padded / compiled
    );
    let mut plain_out = Tensor::<Capacity>::zeros();
    let (plain, compiled, _) = against_exact(&big, &small, &mut plain_out);
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
    sixteen_bit(&values);
    layer();
}

/// The seconds of the kernel of 4,096 called with 64 valid queries and keys into `out`, and
/// of the kernel compiled for 64, timed in alternation on one thread; and whether their rows
/// are the same.
fn against_exact(
    big: &Tensor<Capacity>,
    small: &Tensor<[[[f32; 64]; 64]; 1]>,
    out: &mut (impl PaddedOutput<Capacity> + std::ops::Deref<Target = Capacity>),
) -> (f64, f64, bool) {
    let mut small_out = Tensor::<[[[f32; 64]; 64]; 1]>::zeros();
    let (capacity, compiled) = with_threads(1, || {
        paired_medians(
            3.0,
            || capacity_into(big, big, big, &[64], &[64], out).expect("64 fits"),
            || exact_into(small, small, small, &mut small_out),
        )
    });
    (capacity, compiled, out[0][..64] == small_out[0][..])
}

/// The capacity kernel and the one compiled for 64, in bf16, into a `ZeroPadded` output.
fn sixteen_bit(values: &[f32]) {
    let values: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
    let big = Tensor::<[[[bf16; 64]; 4096]; 1]>::from_slice(&values).expect("4,096 rows");
    let small = Tensor::<[[[bf16; 64]; 64]; 1]>::from_slice(&values[..64 * 64]).expect("64 rows");
    let mut out = ZeroPadded::<[[[bf16; 64]; 4096]; 1]>::zeros();
    let mut small_out = Tensor::<[[[bf16; 64]; 64]; 1]>::zeros();
    let (padded, compiled) = with_threads(1, || {
        paired_medians(
            3.0,
            || capacity_bf16_into(&big, &big, &big, &[64], &[64], &mut out).expect("64 fits"),
            || exact_bf16_into(&small, &small, &small, &mut small_out),
        )
    });
    let same = out[0][..64] == small_out[0][..];
    println!(
        "the same in bf16, into a ZeroPadded output: {:.2} us; a kernel compiled for 64: \
         {:.2} us; {:.2}x (same rows: {same})",
        padded * 1e6,
        compiled * 1e6,
        padded / compiled
    );
}

type Tokens = [[[f32; 512]; 4096]; 1];
type Projections = [Linear<512, 512>; 4];

/// The layer of 4,096 tokens called with 64, into a `ZeroPadded` output and into a plain one,
/// each against the layer compiled for 64.
fn layer() {
    let x = Tensor::<Tokens>::from_vec(values(4096 * 512, 1)).expect("x");
    let projections: Projections = std::array::from_fn(|seed| {
        let weight: Vec<f32> = values(512 * 512, seed as u64 + 2)
            .iter()
            .map(|w| w / 22.6)
            .collect();
        Linear::from_slices("projection", &weight, Some(&values(512, seed as u64 + 7)))
            .expect("512 x 512")
    });
    let mut out = ZeroPadded::<Tokens>::zeros();
    let (padded, compiled, same) = layer_against_exact(&x, &projections, &mut out);
    println!(
        "a layer [1, 4096, 512] of 8 heads called with 64 tokens, into a ZeroPadded output: \
         {:.1} us; the layer compiled for 64: {:.1} us; {:.2}x (same rows: {same})",
        padded * 1e6,
        compiled * 1e6,
        padded / compiled
    );
    let (plain, compiled, _) =
        layer_against_exact(&x, &projections, &mut Tensor::<Tokens>::zeros());
    println!(
        "the same layer into a plain output (8 MiB of padding zeros at each call): {:.1} us; \
         the layer compiled for 64: {:.1} us; {:.2}x",
        plain * 1e6,
        compiled * 1e6,
        plain / compiled
    );
}

/// The seconds of the layer of 4,096 tokens called with 64 into `out`, and of the layer
/// compiled for 64, timed in alternation on one thread; and whether their rows are the same.
fn layer_against_exact(
    x: &Tensor<Tokens>,
    [query, key, value, output]: &Projections,
    out: &mut (impl PaddedOutput<Tokens> + std::ops::Deref<Target = Tokens>),
) -> (f64, f64, bool) {
    let small = Tensor::<[[[f32; 512]; 64]; 1]>::from_slice(&x.as_flat()[..64 * 512]).expect("x");
    let mut small_out = Tensor::<[[[f32; 512]; 64]; 1]>::zeros();
    let (capacity, compiled) = with_threads(1, || {
        paired_medians(
            3.0,
            || layer_capacity_into(x, query, key, value, output, &[64], &[64], out).expect("fits"),
            || layer_exact_into(&small, query, key, value, output, &mut small_out),
        )
    });
    (capacity, compiled, out[0][..64] == small_out[0][..])
}
