//! Shared pieces of attn's benchmarks: timing, workloads and the plain-loop baseline.
//!
//! ```
//! let t = attn_bench::median_seconds(0.01, || std::hint::black_box(1 + 1));
//! assert!(t >= 0.0);
//! ```

pub mod minilm;

use attn_runtime::simd::{Isa, Simd, WithSimd};
use std::time::Instant;

/// The median time of one call of `f`, in seconds, over repeated runs for about `budget`
/// seconds (at least 5 runs), after about a millisecond of warm-up calls. Calls are batched
/// so that each timed run lasts at least 20 microseconds.
pub fn median_seconds<R>(budget: f64, mut f: impl FnMut() -> R) -> f64 {
    let (_, once) = warm_up(1e-3, &mut f);
    let batch = ((20e-6 / once).ceil() as usize).max(1);
    let runs = ((budget / (once * batch as f64)) as usize).clamp(5, 2000);
    median((0..runs).map(|_| per_call(batch, &mut f)).collect())
}

/// Calls `f` for about `seconds`, at least once: how many calls, and the seconds per call.
/// A batch sized from these warm calls rather than from a first, cold one: a 13 ns kernel
/// otherwise ran in batches short enough that reading the clock added a tenth to its time.
fn warm_up<R>(seconds: f64, f: &mut impl FnMut() -> R) -> (usize, f64) {
    let start = Instant::now();
    let mut calls = 0;
    while calls == 0 || start.elapsed().as_secs_f64() < seconds {
        std::hint::black_box(f());
        calls += 1;
    }
    (
        calls,
        (start.elapsed().as_secs_f64() / calls as f64).max(1e-9),
    )
}

/// The seconds per call of a batch of `calls` calls of `f`.
fn per_call<R>(calls: usize, f: &mut impl FnMut() -> R) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(f());
    }
    start.elapsed().as_secs_f64() / calls as f64
}

/// The median of `values` (not empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median times of `a` and of `b`, in seconds, timed in alternation for about `budget`
/// seconds (at least 5 of each), so that a machine whose speed drifts from minute to minute
/// slows both alike: their ratio is then steadier than that of two separate medians.
///
/// ```
/// let (a, b) = attn_bench::paired_medians(0.01, || std::hint::black_box(1), || std::hint::black_box(2));
/// assert!(a >= 0.0 && b >= 0.0);
/// ```
pub fn paired_medians<R, S>(
    budget: f64,
    mut a: impl FnMut() -> R,
    mut b: impl FnMut() -> S,
) -> (f64, f64) {
    let [a, b] = alternated_medians(
        budget,
        [
            &mut || {
                std::hint::black_box(a());
            },
            &mut || {
                std::hint::black_box(b());
            },
        ],
    );
    (a, b)
}

/// The median time of each of `runs`, in seconds, one call of each in turn for about
/// `budget` seconds (at least 5 of each): [`paired_medians`] for any number.
///
/// ```
/// let [a, b, c] = attn_bench::alternated_medians(0.01, [&mut || (), &mut || (), &mut || ()]);
/// assert!(a >= 0.0 && b >= 0.0 && c >= 0.0);
/// ```
pub fn alternated_medians<const N: usize>(
    budget: f64,
    mut runs: [&mut dyn FnMut(); N],
) -> [f64; N] {
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    let start = Instant::now();
    while times[0].len() < 5 || start.elapsed().as_secs_f64() < budget {
        for (run, times) in runs.iter_mut().zip(&mut times) {
            times.push(per_call(1, run));
        }
    }
    times.map(median)
}

/// The median time of one call of `f`, in seconds, and the core's FMA peak in GFLOP/s,
/// measured in alternation for about `budget` seconds: a batch of calls lasting about 2 ms,
/// then 2 ms of [`Peak`]'s chains on `isa`, again and again (at least 5 of each). On a
/// machine whose speed drifts from minute to minute both are then measured in the same
/// conditions, so the share of the peak that `f` reaches does not depend on when the peak
/// was measured.
///
/// ```
/// use attn_runtime::simd::Isa;
/// let (seconds, peak) = attn_bench::beside_peak(0.02, Isa::Portable, || std::hint::black_box(1));
/// assert!(seconds >= 0.0 && peak > 0.0);
/// ```
pub fn beside_peak<R>(budget: f64, isa: Isa, mut f: impl FnMut() -> R) -> (f64, f64) {
    let (batch, _) = warm_up(2e-3, &mut f);
    let (mut times, mut peaks) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while times.len() < 5 || start.elapsed().as_secs_f64() < budget {
        times.push(per_call(batch, &mut f));
        peaks.push(attn_runtime::simd::dispatch(isa, Peak { seconds: 2e-3 }));
    }
    (median(times), median(peaks))
}

/// Bytes ahead that [`read_lines`] fetches by software when asked to: on an AMD EPYC, 16 KiB
/// ahead read 5-20% faster than loads alone.
pub const READ_AHEAD: usize = 16 * 1024;

/// Reads every byte of each slice of `share` from memory, one after the other, on this
/// thread: the memory's speed that a decode step over the same bytes can at best reach. It
/// loads one word of each 64-byte cache line: the memory moves whole lines, so every byte
/// is read, and the loop does almost nothing else (summing every word bound a thread by its
/// additions, at about half the memory's speed). With `ahead`, it also asks for the line
/// that many bytes on by software, as the hardware's prefetchers may not run far enough
/// ahead on their own. Returns a sum of the words loaded, for `black_box`.
///
/// ```
/// let keys = [1u64; 64];
/// let values = [2u64; 64];
/// // One word of each of the eight lines of each slice.
/// assert_eq!(attn_bench::read_lines([&keys, &values], None), 8 + 16);
/// assert_eq!(attn_bench::read_lines([&keys, &values], Some(attn_bench::READ_AHEAD)), 24);
/// ```
pub fn read_lines(share: [&[u64]; 2], ahead: Option<usize>) -> u64 {
    let mut acc = [0u64; 4];
    for data in share {
        for (at, lines) in data.chunks_exact(32).enumerate() {
            if let Some(ahead) = ahead {
                let next = at * 32 + ahead / size_of::<u64>();
                for line in (next..next + 32).step_by(8) {
                    attn_runtime::simd::prefetch(data.get(line..).unwrap_or(&[]));
                }
            }
            for (a, line) in acc.iter_mut().zip(lines.chunks_exact(8)) {
                *a = a.wrapping_add(line[0]);
            }
        }
    }
    acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
}

/// splitmix64 values uniform in [-1, 1]: the same inputs for every implementation.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Plain loops over const-generic arrays, as a Rust user writes attention without attn:
/// the scores of a row stored, max subtracted, `f32::exp`, normalized, then `· V`.
pub fn plain_loops<const NQ: usize, const NK: usize, const D: usize>(
    q: &[[f32; D]; NQ],
    k: &[[f32; D]; NK],
    v: &[[f32; D]; NK],
    out: &mut [[f32; D]; NQ],
    scores: &mut [f32; NK],
) {
    let scale = 1.0 / (D as f32).sqrt();
    for (query, out_row) in q.iter().zip(out.iter_mut()) {
        let mut max = f32::NEG_INFINITY;
        for (score, key) in scores.iter_mut().zip(k) {
            let mut dot = 0.0;
            for d in 0..D {
                dot += query[d] * key[d];
            }
            *score = dot * scale;
            max = max.max(*score);
        }
        let mut sum = 0.0;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            sum += *score;
        }
        *out_row = [0.0; D];
        for (weight, value) in scores.iter().zip(v) {
            for d in 0..D {
                out_row[d] += weight * value[d];
            }
        }
        for x in out_row.iter_mut() {
            *x /= sum;
        }
    }
}

/// The largest difference between two outputs, relative to `1 + |b|`.
pub fn max_difference(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ((x - y).abs() / (1.0 + y.abs())) as f64)
        .fold(0.0, f64::max)
}

/// Clears the upper halves of the vector registers (`vzeroupper`, and zeroing of
/// `zmm16`-`zmm31`, which `vzeroupper` leaves alone), where the CPU has them.
///
/// Code that returns from 256- or 512-bit instructions with those halves dirty makes the
/// caller's SSE code many times slower; rustc's `#[target_feature]` functions, attn's
/// included, clean up on return, but a hand-written kernel may not.
///
/// ```
/// attn_bench::clear_upper_registers();
/// ```
pub fn clear_upper_registers() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above; the registers written are
            // declared clobbered.
            unsafe { zero_high_registers() }
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX, checked just above.
            unsafe { zero_upper() }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// Writes zero to `zmm16`-`zmm31` with 128-bit EVEX instructions, which clear their upper
/// bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn zero_high_registers() {
    // SAFETY: only the listed registers are written; the caller checked AVX-512F.
    unsafe {
        std::arch::asm!(
            "vpxord xmm16, xmm16, xmm16", "vpxord xmm17, xmm17, xmm17",
            "vpxord xmm18, xmm18, xmm18", "vpxord xmm19, xmm19, xmm19",
            "vpxord xmm20, xmm20, xmm20", "vpxord xmm21, xmm21, xmm21",
            "vpxord xmm22, xmm22, xmm22", "vpxord xmm23, xmm23, xmm23",
            "vpxord xmm24, xmm24, xmm24", "vpxord xmm25, xmm25, xmm25",
            "vpxord xmm26, xmm26, xmm26", "vpxord xmm27, xmm27, xmm27",
            "vpxord xmm28, xmm28, xmm28", "vpxord xmm29, xmm29, xmm29",
            "vpxord xmm30, xmm30, xmm30", "vpxord xmm31, xmm31, xmm31",
            out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _,
            out("zmm28") _, out("zmm29") _, out("zmm30") _, out("zmm31") _,
            options(nomem, nostack, preserves_flags),
        );
    }
}

/// The multiply-add peak of one core on an instruction set, in GFLOP/s: independent chains of
/// `x = x · a + b` for about `seconds`. 12 chains on AVX2 and AVX-512 (more than the FMA
/// latency times the two FMA ports); 8 on the portable path, whose separate multiply and add
/// would spill 12 chains of SSE2 registers and measure the spills instead (10 GFLOP/s
/// against 28).
///
/// ```
/// use attn_runtime::simd::{Isa, dispatch};
/// assert!(dispatch(Isa::active(), attn_bench::Peak { seconds: 0.01 }) > 0.0);
/// ```
pub struct Peak {
    /// How long to run.
    pub seconds: f64,
}

impl WithSimd for Peak {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f64 {
        if S::LANES >= 8 {
            chains::<S, 12>(simd, self.seconds)
        } else {
            chains::<S, 8>(simd, self.seconds)
        }
    }
}

/// `CHAINS` independent chains of multiply-adds for about `seconds`: GFLOP/s.
#[inline(always)]
fn chains<S: Simd, const CHAINS: usize>(simd: S, seconds: f64) -> f64 {
    let (a, b) = (simd.splat(0.999_999), simd.splat(1e-7));
    let mut acc = [simd.splat(1.0); CHAINS];
    let start = Instant::now();
    let mut iterations = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..100_000 {
            for x in &mut acc {
                *x = simd.mul_add(*x, a, b);
            }
        }
        iterations += 100_000;
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::hint::black_box(acc.iter().map(|&x| simd.reduce_sum(x)).sum::<f32>());
    (iterations * CHAINS * S::LANES * 2) as f64 / elapsed / 1e9
}
