//! A decoding loop over a key/value cache: a prompt is prefilled (its keys and values
//! appended to the cache, its queries attended causally), then positions are generated one
//! at a time, each appending its key and value and attending over everything before it.
//! Every step is checked against attention over the prefix computed in f64; the program
//! prints steps per second on one and two threads, with an f32 and a bf16 cache. The prompt
//! goes through a prefill kernel of any prompt up to 512 tokens (`valid_queries`), into a
//! `ZeroPadded` output, as a server that takes prompts of every length would.
//!
//! The queries, keys and values are seeded pseudo-random numbers standing for a model's
//! projections: the loop is the model's, the model is not.
//!
//! Run: `cargo run --release -p attn-bench --example decoding_loop`

use attn_runtime::half::bf16;
use attn_runtime::threads::with_threads;
use attn_runtime::{KvCache, Tensor, ZeroPadded, attention};
use std::time::{Duration, Instant};

/// Key/value heads, their depth, the cache's capacity, the longest prompt and this prompt's
/// length.
const HEADS: usize = 8;
const DEPTH: usize = 64;
const CAPACITY: usize = 4096;
const LONGEST_PROMPT: usize = 512;
const PROMPT: usize = 37;

attention! {
    /// A prompt's queries over the cache, causal: query i is position i. Any prompt up to
    /// 512 tokens: its length is the valid queries (and, once appended, the valid keys).
    #[attn(valid_lengths, valid_queries, causal(bottom_right))]
    fn prefill<q: [1, 8, 512, 64], k: [1, 8, 4096, 64], v: [1, 8, 4096, 64]>;
    /// One new position's query over every position so far.
    #[attn(valid_lengths, causal(bottom_right))]
    fn step<q: [1, 8, 1, 64], k: [1, 8, 4096, 64], v: [1, 8, 4096, 64]>;
    /// The same over a bf16 cache.
    #[attn(dtype = bf16, valid_lengths, causal(bottom_right))]
    fn step_bf16<q: [1, 8, 1, 64], k: [1, 8, 4096, 64], v: [1, 8, 4096, 64]>;
}

/// One position's projections: a query, a key and a value per head.
struct Position {
    q: [[f32; DEPTH]; HEADS],
    k: [[f32; DEPTH]; HEADS],
    v: [[f32; DEPTH]; HEADS],
}

/// The positions of a sequence, seeded.
fn sequence(len: usize) -> Vec<Position> {
    let values = attn_bench::values(len * 3 * HEADS * DEPTH, 7);
    values
        .chunks_exact(3 * HEADS * DEPTH)
        .map(|chunk| {
            let head = |part: usize| {
                std::array::from_fn(|h| {
                    std::array::from_fn(|d| chunk[(part * HEADS + h) * DEPTH + d])
                })
            };
            Position {
                q: head(0),
                k: head(1),
                v: head(2),
            }
        })
        .collect()
}

/// Attention of `query` over `positions` for head `h`, in f64: the reference of each step.
fn reference(query: &[f32; DEPTH], positions: &[Position], h: usize) -> [f64; DEPTH] {
    let scale = 1.0 / (DEPTH as f64).sqrt();
    let scores: Vec<f64> = positions
        .iter()
        .map(|p| {
            (0..DEPTH)
                .map(|d| f64::from(query[d]) * f64::from(p.k[h][d]))
                .sum::<f64>()
                * scale
        })
        .collect();
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = weights.iter().sum();
    std::array::from_fn(|d| {
        positions
            .iter()
            .zip(&weights)
            .map(|(p, w)| w * f64::from(p.v[h][d]))
            .sum::<f64>()
            / sum
    })
}

/// The largest difference of `out` from the reference, relative to `1 + |reference|`.
fn error_of(
    out: &[[f32; DEPTH]; HEADS],
    query: &[[f32; DEPTH]; HEADS],
    prefix: &[Position],
) -> f64 {
    (0..HEADS)
        .flat_map(|h| {
            let expected = reference(&query[h], prefix, h);
            (0..DEPTH).map(move |d| {
                (f64::from(out[h][d]) - expected[d]).abs() / (1.0 + expected[d].abs())
            })
        })
        .fold(0.0, f64::max)
}

/// Prefills the prompt into an f32 cache, then generates `steps` positions; returns the steps
/// per second (the appends and the steps timed, not the checks) and the largest error of any
/// step.
fn run_f32(positions: &[Position], steps: usize) -> (f64, f64) {
    let mut cache = KvCache::<f32, 1, HEADS, CAPACITY, DEPTH, DEPTH>::new();
    let prompt = &positions[..PROMPT];
    let heads = |part: fn(&Position) -> &[[f32; DEPTH]; HEADS]| -> [[[f32; DEPTH]; PROMPT]; HEADS] {
        std::array::from_fn(|h| std::array::from_fn(|i| part(&prompt[i])[h]))
    };
    cache
        .append(0, &heads(|p| &p.k), &heads(|p| &p.v))
        .expect("the prompt fits");
    // The prompt's queries in the first rows of the prefill kernel's, the rest padding.
    let mut q = Tensor::<[[[[f32; DEPTH]; LONGEST_PROMPT]; HEADS]; 1]>::zeros();
    for (h, rows) in heads(|p| &p.q).iter().enumerate() {
        q[0][h][..PROMPT].copy_from_slice(rows);
    }
    // Reused from prompt to prompt, it writes the padding's zeros only where a longer prompt
    // left other values.
    let mut prompt_out = ZeroPadded::<[[[[f32; DEPTH]; LONGEST_PROMPT]; HEADS]; 1]>::zeros();
    prefill_into(
        &q,
        cache.keys(),
        cache.values(),
        cache.lengths(),
        &[PROMPT],
        &mut prompt_out,
    )
    .expect("lengths");
    let mut worst = 0.0f64;
    for i in 0..PROMPT {
        let out: [[f32; DEPTH]; HEADS] = std::array::from_fn(|h| prompt_out[0][h][i]);
        worst = worst.max(error_of(&out, &prompt[i].q, &prompt[..=i]));
    }
    let mut spent = Duration::ZERO;
    let mut out = [[[[0.0f32; DEPTH]; 1]; HEADS]; 1];
    for n in PROMPT..PROMPT + steps {
        let p = &positions[n];
        let start = Instant::now();
        cache
            .append(0, &p.k.map(|k| [k]), &p.v.map(|v| [v]))
            .expect("the cache holds the steps");
        step_into(
            &[p.q.map(|q| [q])],
            cache.keys(),
            cache.values(),
            cache.lengths(),
            &mut out,
        )
        .expect("lengths");
        spent += start.elapsed();
        let row: [[f32; DEPTH]; HEADS] = std::array::from_fn(|h| out[0][h][0]);
        worst = worst.max(error_of(&row, &p.q, &positions[..=n]));
    }
    (steps as f64 / spent.as_secs_f64(), worst)
}

/// The same loop over a bf16 cache (no prefill kernel: the prompt is appended, then each
/// step attends); the reference is that of the bf16-rounded keys and values.
fn run_bf16(positions: &[Position], steps: usize) -> (f64, f64) {
    let round = |x: f32| bf16::from_f32(x);
    let rounded: Vec<Position> = positions
        .iter()
        .map(|p| Position {
            q: p.q.map(|r| r.map(|x| round(x).to_f32())),
            k: p.k.map(|r| r.map(|x| round(x).to_f32())),
            v: p.v.map(|r| r.map(|x| round(x).to_f32())),
        })
        .collect();
    let mut cache = KvCache::<bf16, 1, HEADS, CAPACITY, DEPTH, DEPTH>::new();
    let as_bf16 = |rows: &[[f32; DEPTH]; HEADS]| rows.map(|r| [r.map(round)]);
    for p in &positions[..PROMPT] {
        cache
            .append(0, &as_bf16(&p.k), &as_bf16(&p.v))
            .expect("the prompt fits");
    }
    let mut spent = Duration::ZERO;
    let mut out = [[[[bf16::ZERO; DEPTH]; 1]; HEADS]; 1];
    let mut worst = 0.0f64;
    for n in PROMPT..PROMPT + steps {
        let p = &positions[n];
        let start = Instant::now();
        cache
            .append(0, &as_bf16(&p.k), &as_bf16(&p.v))
            .expect("the cache holds the steps");
        step_bf16_into(
            &[as_bf16(&p.q)],
            cache.keys(),
            cache.values(),
            cache.lengths(),
            &mut out,
        )
        .expect("lengths");
        spent += start.elapsed();
        // The output is rounded to bf16 too: its error is held to bf16's precision.
        let row: [[f32; DEPTH]; HEADS] = std::array::from_fn(|h| out[0][h][0].map(|x| x.to_f32()));
        worst = worst.max(error_of(&row, &rounded[n].q, &rounded[..=n]));
    }
    (steps as f64 / spent.as_secs_f64(), worst)
}

fn main() {
    let steps = 200;
    let positions = sequence(PROMPT + steps);
    println!(
        "decoding loop: {HEADS} heads of depth {DEPTH}, a prompt of {PROMPT} positions, then {steps} \
         steps, each checked against attention over its prefix in f64"
    );
    for threads in [1, 2] {
        let (rate, error) = with_threads(threads, || run_f32(&positions, steps));
        assert!(error < 1e-5, "f32: a step is off by {error:e}");
        println!("f32,  {threads} thread(s): {rate:>9.0} steps/s, largest error {error:.1e}");
        let (rate, error) = with_threads(threads, || run_bf16(&positions, steps));
        assert!(error < 1e-2, "bf16: a step is off by {error:e}");
        println!("bf16, {threads} thread(s): {rate:>9.0} steps/s, largest error {error:.1e}");
    }
}
