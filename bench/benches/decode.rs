//! Decoding: one query row per head over a long cache, the step a language model repeats for
//! every token it generates. 8 heads of depth 128 over 16,384 cached positions (128 MiB of
//! keys and values in f32, more than the last-level cache), in f32, f16 and bf16, on one and
//! two threads, each timed in alternation with a loop that only reads the same bytes on as
//! many threads: the memory's speed, which a decode step can at best reach. The reading loop
//! runs two ways, by loads alone and with software prefetches ahead of them, and the faster
//! one counts. Then one head over 131,072 positions (the same bytes), whose single query row
//! only split keys share among threads.
//!
//! Run: `cargo bench -p attn-bench --bench decode`

use attn_bench::{READ_AHEAD, alternated_medians, read_lines};
use attn_runtime::half::{bf16, f16};
use attn_runtime::threads::with_threads;
use attn_runtime::{Array, Tensor, attention};
use std::hint::black_box;

attention! {
    /// One decode step in f32.
    fn decode_f32<q: [1, 8, 1, 128], k: [1, 8, 16384, 128], v: [1, 8, 16384, 128]>;
    /// The same over an f16 cache.
    #[attn(dtype = f16)]
    fn decode_f16<q: [1, 8, 1, 128], k: [1, 8, 16384, 128], v: [1, 8, 16384, 128]>;
    /// The same over a bf16 cache.
    #[attn(dtype = bf16)]
    fn decode_bf16<q: [1, 8, 1, 128], k: [1, 8, 16384, 128], v: [1, 8, 16384, 128]>;
    /// One head over 131,072 positions, the same bytes: one query row, which only split keys
    /// share among threads.
    fn decode_one_head<q: [1, 1, 1, 128], k: [1, 1, 131072, 128], v: [1, 1, 131072, 128]>;
}

/// Seconds of alternated timing per measurement.
const BUDGET: f64 = 3.0;

/// Reads every byte of `shares` from memory, one share a thread (the last on the calling
/// thread), each share a part of the keys and the same part of the values, by
/// [`read_lines`].
fn read_on_threads(shares: &[[&[u64]; 2]], ahead: Option<usize>) -> u64 {
    let sum = |share: &[&[u64]; 2]| read_lines(*share, ahead);
    match shares {
        [] => 0,
        [first @ .., last] => std::thread::scope(|scope| {
            let others: Vec<_> = first
                .iter()
                .map(|share| scope.spawn(move || sum(share)))
                .collect();
            let mine = sum(last);
            others
                .into_iter()
                .fold(mine, |a, handle| a.wrapping_add(handle.join().unwrap_or(0)))
        }),
    }
}

/// The bytes of `k` and `v` as 64-bit words, in `threads` shares of equal parts of each.
fn shares<'a, A: Array>(k: &'a Tensor<A>, v: &'a Tensor<A>, threads: usize) -> Vec<[&'a [u64]; 2]> {
    let words = |tensor: &'a Tensor<A>| -> &'a [u64] {
        bytemuck::cast_slice(bytemuck::cast_slice::<_, u8>(tensor.as_flat()))
    };
    let (k, v) = (words(k), words(v));
    let len = k.len().div_ceil(threads);
    k.chunks(len)
        .zip(v.chunks(len))
        .map(|(k, v)| [k, v])
        .collect()
}

/// A cache of `T`, from f32 values.
fn cache<T: Array>(seed: u64, from: impl Fn(f32) -> T::Element) -> Tensor<T> {
    let values: Vec<T::Element> = attn_bench::values(T::LEN, seed)
        .into_iter()
        .map(from)
        .collect();
    Tensor::from_slice(&values).expect("the cache's length")
}

/// Times `step` against reading `[k, v]` on 1 and 2 threads, by loads alone and with the
/// lines [`READ_AHEAD`] bytes on fetched by software, all three in alternation; the faster
/// loop is the memory's speed. Prints a row each, and returns the step's seconds on 1 and 2
/// threads.
fn measure<A: Array>(name: &str, k: &Tensor<A>, v: &Tensor<A>, mut step: impl FnMut()) -> [f64; 2] {
    let bytes = (2 * A::LEN * size_of::<A::Element>()) as f64;
    let mut seconds = [0.0; 2];
    for (i, threads) in [1, 2].into_iter().enumerate() {
        let shares = shares(k, v, threads);
        let [attn, loads, fetched] = with_threads(threads, || {
            alternated_medians(
                BUDGET,
                [
                    &mut step,
                    &mut || {
                        black_box(read_on_threads(&shares, None));
                    },
                    &mut || {
                        black_box(read_on_threads(&shares, Some(READ_AHEAD)));
                    },
                ],
            )
        });
        let read = loads.min(fetched);
        seconds[i] = attn;
        println!(
            "{name:<13} {threads} thread{} {:>8.3} ms {:>6.1} GB/s | read alone {:>8.3} ms {:>6.1} GB/s ({}) | {:>5.1}% of the read speed",
            if threads == 1 { " " } else { "s" },
            attn * 1e3,
            bytes / attn / 1e9,
            read * 1e3,
            bytes / read / 1e9,
            if fetched < loads {
                "fetched ahead"
            } else {
                "loads alone  "
            },
            100.0 * read / attn,
        );
    }
    seconds
}

/// Times one decode step of `kernel` over a query and a cache made of f32 values by `from`,
/// against reading the cache: a row each on 1 and 2 threads, and the step's seconds.
fn step<Q: Array, C: Array<Element = Q::Element>, O: Array>(
    name: &str,
    from: fn(f32) -> Q::Element,
    kernel: fn(&Q, &C, &C, &mut O),
) -> [f64; 2] {
    let q = cache::<Q>(1, from);
    let (k, v) = (cache::<C>(2, from), cache::<C>(3, from));
    let mut out = Tensor::<O>::zeros();
    measure(name, &k, &v, || {
        kernel(&q, &k, &v, &mut out);
        black_box(&out);
    })
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    println!(
        "decode: 8 heads of depth 128, one query over 16,384 cached positions; \
         each row timed in alternation with a loop that reads the same bytes on as many threads"
    );
    let f32_seconds = step("f32", |x| x, decode_f32_into);
    let f16_seconds = step("f16", f16::from_f32, decode_f16_into);
    let bf16_seconds = step("bf16", bf16::from_f32, decode_bf16_into);
    let seconds = step("f32, one head", |x| x, decode_one_head_into);
    println!(
        "one head of 131,072 positions: 2 threads {:.2}x the speed of one ({})",
        seconds[0] / seconds[1],
        decode_one_head::INFO,
    );
    for (name, seconds) in [("f16", f16_seconds), ("bf16", bf16_seconds)] {
        println!(
            "{name} against f32: {:.2}x the time on 1 thread, {:.2}x on 2 (half the bytes: 0.5x at the memory's speed)",
            seconds[0] / f32_seconds[0],
            seconds[1] / f32_seconds[1],
        );
    }
}
