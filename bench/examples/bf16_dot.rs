//! Whether AVX512_BF16's dot products (`vdpbf16ps`) may replace the widening of bf16 keys in
//! a decode step's scores: the error of each against an f64 reference, and the time of each
//! over the keys of a cache (in the L2 cache, and from memory). Both take the query and the
//! keys as stored in bf16 and sum in f32; `vdpbf16ps` multiplies pairs of bf16 exactly, as a
//! multiply-add of the widened values does, but flushes subnormal inputs and results to zero.
//!
//! Run: `cargo run --release -p attn-bench --example bf16_dot` (x86-64 with AVX512_BF16).

#[cfg(target_arch = "x86_64")]
fn main() {
    measure::run();
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("AVX512_BF16 is an x86-64 extension: nothing to measure here");
}

#[cfg(target_arch = "x86_64")]
mod measure {
    use attn_runtime::half::bf16;
    use std::arch::x86_64::*;
    use std::hint::black_box;

    const DEPTH: usize = 128;

    /// `scores[j] = q · keys[j]`, the keys widened to f32 as they are loaded (attn's path): one
    /// multiply-add per 16 values of depth, then the lanes summed.
    #[target_feature(enable = "avx512f")]
    fn scores_widened(q: &[bf16; DEPTH], keys: &[[bf16; DEPTH]], scores: &mut [f32]) {
        // SAFETY: AVX-512F is enabled (the caller checked it); every load reads 16 bf16 (32
        // bytes) inside an array of DEPTH, a multiple of 16.
        let widen = |v: &[bf16]| unsafe {
            let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(v.as_ptr().cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
        };
        for (key, score) in keys.iter().zip(scores.iter_mut()) {
            let mut acc = _mm512_setzero_ps();
            for d in (0..DEPTH).step_by(16) {
                acc = _mm512_fmadd_ps(widen(&q[d..]), widen(&key[d..]), acc);
            }
            *score = _mm512_reduce_add_ps(acc);
        }
    }

    /// The same with `vdpbf16ps`: 32 bf16 of depth per instruction, pairs multiplied and added
    /// into 16 f32 lanes.
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn scores_dpbf16(q: &[bf16; DEPTH], keys: &[[bf16; DEPTH]], scores: &mut [f32]) {
        // SAFETY: AVX-512F is enabled; every load reads 32 bf16 (64 bytes) inside an array of
        // DEPTH, a multiple of 32; `__m512bh` is 32 bf16 in a 512-bit register, as loaded.
        let load = |v: &[bf16]| unsafe {
            std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(v.as_ptr().cast()))
        };
        for (key, score) in keys.iter().zip(scores.iter_mut()) {
            let mut acc = _mm512_setzero_ps();
            for d in (0..DEPTH).step_by(32) {
                acc = _mm512_dpbf16_ps(acc, load(&q[d..]), load(&key[d..]));
            }
            *score = _mm512_reduce_add_ps(acc);
        }
    }

    /// The largest error of `scores` against `reference`, relative to `1 + |reference|`.
    fn largest_error(scores: &[f32], reference: &[f64]) -> f64 {
        scores
            .iter()
            .zip(reference)
            .map(|(&s, &r)| (f64::from(s) - r).abs() / (1.0 + r.abs()))
            .fold(0.0, f64::max)
    }

    pub fn run() {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")) {
            println!("this CPU has no AVX512_BF16: nothing to measure");
            return;
        }
        // 8 heads of 16,384 keys of depth 128: 32 MiB of bf16 keys, more than the L3 cache.
        let keys_in_memory = 8 * 16384;
        let values = attn_bench::values(DEPTH * (keys_in_memory + 1), 7);
        let stored: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(2.0 * x)).collect();
        let (q, keys) = stored.split_at(DEPTH);
        let q: &[bf16; DEPTH] = q.try_into().expect("one row of depth");
        let keys: Vec<[bf16; DEPTH]> = keys
            .chunks_exact(DEPTH)
            .map(|key| key.try_into().expect("rows of depth"))
            .collect();
        let reference: Vec<f64> = keys
            .iter()
            .map(|key| {
                q.iter()
                    .zip(key)
                    .map(|(a, b)| f64::from(a.to_f32()) * f64::from(b.to_f32()))
                    .sum()
            })
            .collect();
        let (mut widened, mut dpbf16) = (vec![0.0; keys.len()], vec![0.0; keys.len()]);
        // SAFETY: AVX-512F and AVX512_BF16 were detected above.
        unsafe {
            scores_widened(q, &keys, &mut widened);
            scores_dpbf16(q, &keys, &mut dpbf16);
        }
        let same = widened.iter().zip(&dpbf16).filter(|(a, b)| a == b).count();
        println!(
            "{} scores of depth 128, bf16 in [-2, 2]: largest error relative to 1 + |reference|: \
             widened {:.3e}, vdpbf16ps {:.3e}; {:.1}% of the scores the same bits",
            keys.len(),
            largest_error(&widened, &reference),
            largest_error(&dpbf16, &reference),
            100.0 * same as f64 / keys.len() as f64,
        );
        for (name, count) in [("in the L2 cache", 2048), ("from memory", keys.len())] {
            let keys = &keys[..count];
            let mut scores = vec![0.0f32; count];
            // SAFETY (both closures): AVX-512F and AVX512_BF16 were detected above.
            let widened_time = attn_bench::median_seconds(2.0, || unsafe {
                scores_widened(black_box(q), black_box(keys), &mut scores)
            });
            let dpbf16_time = attn_bench::median_seconds(2.0, || unsafe {
                scores_dpbf16(black_box(q), black_box(keys), &mut scores)
            });
            println!(
                "{count} keys {name}: widened {:.1} us, vdpbf16ps {:.1} us ({:.2}x)",
                widened_time * 1e6,
                dpbf16_time * 1e6,
                dpbf16_time / widened_time,
            );
        }
    }
}
