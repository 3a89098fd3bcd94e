//! Where a decode step's time goes, on one thread: is it the order in which it reads the
//! cache, or the arithmetic between its reads? Times, in alternation:
//!
//! - the f32 decode step of `cargo bench -p attn-bench --bench decode` (8 heads of depth 128
//!   over 16,384 cached positions, 128 MiB);
//! - the benchmark's reading loop ([`attn_bench::read_lines`]): all the keys, then all the
//!   values, one load a cache line, each line also fetched 16 KiB ahead by software;
//! - the step's own order without its arithmetic: a block of 64 key rows, then the same
//!   block of value rows, one load a line, each row of the next block fetched into the L2
//!   cache beside the same row of this one (as the step does on AMD's processors), and the
//!   same without those fetches;
//! - and the step over caches that fit in the L2 cache (one head of 512 positions, 512 KiB)
//!   and in the L3 (8 heads of 512, 4 MiB): the arithmetic's own speed, memory aside.
//!
//! Run: `cargo run --release -p attn-bench --example decode_pattern`; with `-- cached`, only
//! the steps over caches that fit in the L2 and L3 caches.

use attn_bench::{READ_AHEAD, alternated_medians, read_lines};
use attn_runtime::simd::prefetch;
use attn_runtime::threads::with_threads;
use attn_runtime::{Array, Tensor, attention};
use std::hint::black_box;

attention! {
    /// The decode benchmark's f32 step.
    fn step<q: [1, 8, 1, 128], k: [1, 8, 16384, 128], v: [1, 8, 16384, 128]>;
    /// One head whose cache fits in the L2 cache.
    fn in_l2<q: [1, 1, 1, 128], k: [1, 1, 512, 128], v: [1, 1, 512, 128]>;
    /// Eight heads whose cache fits in the L3 cache.
    fn in_l3<q: [1, 8, 1, 128], k: [1, 8, 512, 128], v: [1, 8, 512, 128]>;
}

/// 64-bit words per cache line.
const LINE: usize = 8;

/// 64-bit words in a block of 64 rows of depth 128 in f32 (32 KiB).
const BLOCK: usize = 64 * 128 / 2;

/// Seconds of alternated timing per round.
const BUDGET: f64 = 3.0;

/// Reads one word of each line of a block of `keys`, then of the same block of `values`,
/// block after block, as [`read_lines`] reads (four lines at a time, four sums); with
/// `fetch_next`, each line of the next block asked into the L2 cache beside the same line
/// of this one.
fn block_by_block(keys: &[u64], values: &[u64], fetch_next: bool) -> u64 {
    let mut acc = [0u64; 4];
    for start in (0..keys.len()).step_by(BLOCK) {
        for data in [keys, values] {
            let block = &data[start..(start + BLOCK).min(data.len())];
            let next = data.get(start + BLOCK..).unwrap_or(&[]);
            for (at, lines) in block.chunks_exact(4 * LINE).enumerate() {
                if fetch_next {
                    for line in (at * 4 * LINE..(at + 1) * 4 * LINE).step_by(LINE) {
                        prefetch(next.get(line..).unwrap_or(&[]));
                    }
                }
                for (a, line) in acc.iter_mut().zip(lines.chunks_exact(LINE)) {
                    *a = a.wrapping_add(line[0]);
                }
            }
        }
    }
    acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
}

/// A tensor of `A` from reproducible f32 values.
fn tensor<A: Array<Element = f32>>(seed: u64) -> Tensor<A> {
    Tensor::from_vec(attn_bench::values(A::LEN, seed)).expect("the shape's length")
}

/// The bytes of `tensor` as 64-bit words.
fn words<A: Array<Element = f32>>(tensor: &Tensor<A>) -> &[u64] {
    bytemuck::cast_slice(tensor.as_flat())
}

fn main() {
    let (small_q, small_k, small_v) = (tensor(1), tensor(2), tensor(3));
    let mut small_out = Tensor::zeros();
    let (mid_q, mid_k, mid_v) = (tensor(1), tensor(2), tensor(3));
    let mut mid_out = Tensor::zeros();
    // Each alone: in alternation, each would push the other's cache out of the L2 cache.
    let (cached_l2, cached_l3) = with_threads(1, || {
        (
            attn_bench::median_seconds(BUDGET, || {
                in_l2_into(&small_q, &small_k, &small_v, &mut small_out)
            }),
            attn_bench::median_seconds(BUDGET, || in_l3_into(&mid_q, &mid_k, &mid_v, &mut mid_out)),
        )
    });
    let gigabytes = |words: usize, seconds: f64| (words * 8) as f64 / seconds / 1e9;
    println!(
        "the f32 step, cache in L2 (512 KiB): {:.2} us, {:.1} GB/s; in L3 (4 MiB): {:.2} us, {:.1} GB/s",
        cached_l2 * 1e6,
        gigabytes(2 * words(&small_k).len(), cached_l2),
        cached_l3 * 1e6,
        gigabytes(2 * words(&mid_k).len(), cached_l3),
    );
    if std::env::args().any(|arg| arg == "cached") {
        return;
    }
    let (q, k, v) = (tensor(1), tensor(2), tensor(3));
    let mut out = Tensor::zeros();
    let (keys, values) = (words(&k), words(&v));
    let bytes = 2 * keys.len();
    for round in 1..=3 {
        let [attn, reading, fetched, loads] = with_threads(1, || {
            alternated_medians(
                BUDGET,
                [
                    &mut || step_into(&q, &k, &v, &mut out),
                    &mut || {
                        black_box(read_lines([keys, values], Some(READ_AHEAD)));
                    },
                    &mut || {
                        black_box(block_by_block(keys, values, true));
                    },
                    &mut || {
                        black_box(block_by_block(keys, values, false));
                    },
                ],
            )
        });
        println!(
            "round {round}, 128 MiB, GB/s: the f32 step {:.1}; keys then values {:.1}; \
             block by block, the next fetched beside {:.1}; block by block, loads alone {:.1}",
            gigabytes(bytes, attn),
            gigabytes(bytes, reading),
            gigabytes(bytes, fetched),
            gigabytes(bytes, loads),
        );
    }
}
