//! How fast W1 can go on this CPU: the textbook attention written by hand with intrinsics,
//! once for AVX2+FMA (both query rows in one 8-lane vector), once for SSE2 (the x86-64
//! baseline, one row per 4-lane vector) and once with AVX-512 on 512-bit registers (the
//! in-register path's sequence, `attn_runtime::simd` module `registers`, on registers twice
//! as wide), against attn's kernel and the same plain loops as the benchmark, all in one
//! process. attn's kernel takes its in-register path (AVX-512VL, 256-bit registers) on a CPU
//! that has it, its straight-line code elsewhere.
//!
//! Run: `cargo run --release -p attn-bench --example w1_bound` (x86-64 only)

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

attn_runtime::attention! {
    /// W1 as attn generates it.
    fn w1<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

/// q and the output of W1.
type Q = [[[f32; 3]; 2]; 1];
/// k and v of W1.
type KV = [[[f32; 3]; 4]; 1];

/// `exp` by the steps of `attn_runtime::simd::exp`, 8 lanes.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp8(x: __m256) -> __m256 {
    // SAFETY: the caller guarantees AVX2 and FMA; no pointer is read or written.
    unsafe {
        let x = _mm256_max_ps(_mm256_set1_ps(-110.0), x);
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-0.693_359_4), x);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.121_944_4e-4), r);
        let r2 = _mm256_mul_ps(r, r);
        let r4 = _mm256_mul_ps(r2, r2);
        let c = |v: f32| _mm256_set1_ps(v);
        let p01 = _mm256_fmadd_ps(r, c(1.0 / 6.0), c(0.5));
        let p23 = _mm256_fmadd_ps(r, c(1.0 / 120.0), c(1.0 / 24.0));
        let p45 = _mm256_fmadd_ps(r, c(1.0 / 5040.0), c(1.0 / 720.0));
        let p = _mm256_fmadd_ps(r4, p45, _mm256_fmadd_ps(r2, p23, p01));
        let p = _mm256_add_ps(_mm256_fmadd_ps(r2, p, r), c(1.0));
        let half = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(n, c(0.5)),
        );
        let rest = _mm256_sub_ps(n, half);
        let pow = |n: __m256| {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                _mm256_cvtps_epi32(n),
                _mm256_set1_epi32(127),
            )))
        };
        _mm256_mul_ps(_mm256_mul_ps(p, pow(half)), pow(rest))
    }
}

/// W1 with AVX2+FMA: scores of both rows in one vector, row max and sum by two in-lane
/// shuffles each, values by four broadcasts of the weights.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn w1_avx(q: &Q, k: &KV, v: &KV, out: &mut Q) {
    let (q, k, v) = (&q[0], &k[0], &v[0]);
    // SAFETY: AVX2 and FMA are enabled on this function; the only store is to a local
    // array of 8 floats.
    unsafe {
        let kt = |d: usize| {
            let t = _mm_setr_ps(k[0][d], k[1][d], k[2][d], k[3][d]);
            _mm256_set_m128(t, t)
        };
        let qd = |d: usize| _mm256_set_m128(_mm_set1_ps(q[1][d]), _mm_set1_ps(q[0][d]));
        let s = _mm256_mul_ps(qd(0), kt(0));
        let s = _mm256_fmadd_ps(qd(1), kt(1), s);
        let s = _mm256_fmadd_ps(qd(2), kt(2), s);
        let s = _mm256_mul_ps(s, _mm256_set1_ps(0.57735026));
        let m = _mm256_max_ps(s, _mm256_permute_ps::<0b10_11_00_01>(s));
        let m = _mm256_max_ps(m, _mm256_permute_ps::<0b01_00_11_10>(m));
        let w = exp8(_mm256_sub_ps(s, m));
        let sum = _mm256_add_ps(w, _mm256_permute_ps::<0b10_11_00_01>(w));
        let sum = _mm256_add_ps(sum, _mm256_permute_ps::<0b01_00_11_10>(sum));
        let vrow = |j: usize| {
            let r = _mm_setr_ps(v[j][0], v[j][1], v[j][2], 0.0);
            _mm256_set_m128(r, r)
        };
        let o = _mm256_mul_ps(_mm256_permute_ps::<0x00>(w), vrow(0));
        let o = _mm256_fmadd_ps(_mm256_permute_ps::<0x55>(w), vrow(1), o);
        let o = _mm256_fmadd_ps(_mm256_permute_ps::<0xAA>(w), vrow(2), o);
        let o = _mm256_fmadd_ps(_mm256_permute_ps::<0xFF>(w), vrow(3), o);
        let o = _mm256_div_ps(o, sum);
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), o);
        out[0][0] = [lanes[0], lanes[1], lanes[2]];
        out[0][1] = [lanes[4], lanes[5], lanes[6]];
    }
}

/// `exp` by the same steps, 4 lanes of SSE2, with two roundings per multiply-add.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn exp4(x: __m128) -> __m128 {
    // SAFETY: SSE2 is in every x86-64 CPU.
    unsafe {
        let c = |v: f32| _mm_set1_ps(v);
        let magic = c(12_582_912.0);
        let x = _mm_max_ps(c(-110.0), x);
        let n = _mm_sub_ps(
            _mm_add_ps(_mm_mul_ps(x, c(std::f32::consts::LOG2_E)), magic),
            magic,
        );
        let r = _mm_add_ps(_mm_mul_ps(n, c(-0.693_359_4)), x);
        let r = _mm_add_ps(_mm_mul_ps(n, c(2.121_944_4e-4)), r);
        let r2 = _mm_mul_ps(r, r);
        let r4 = _mm_mul_ps(r2, r2);
        let fma = |a: __m128, b: __m128, d: __m128| _mm_add_ps(_mm_mul_ps(a, b), d);
        let p01 = fma(r, c(1.0 / 6.0), c(0.5));
        let p23 = fma(r, c(1.0 / 120.0), c(1.0 / 24.0));
        let p45 = fma(r, c(1.0 / 5040.0), c(1.0 / 720.0));
        let p = fma(r4, p45, fma(r2, p23, p01));
        let p = _mm_add_ps(fma(r2, p, r), c(1.0));
        let half = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(n, c(0.5)), magic), magic);
        let rest = _mm_sub_ps(n, half);
        let pow = |n: __m128| {
            _mm_castsi128_ps(_mm_slli_epi32::<23>(_mm_castps_si128(_mm_add_ps(
                n,
                c(127.0 + 12_582_912.0),
            ))))
        };
        _mm_mul_ps(_mm_mul_ps(p, pow(half)), pow(rest))
    }
}

/// W1 with SSE2: one query row per vector, the keys transposed once for both rows.
#[cfg(target_arch = "x86_64")]
fn w1_sse(q: &Q, k: &KV, v: &KV, out: &mut Q) {
    let (q, k, v) = (&q[0], &k[0], &v[0]);
    // SAFETY: SSE2 is in every x86-64 CPU; the only store is to a local array of 4 floats.
    unsafe {
        let kt = |d: usize| _mm_setr_ps(k[0][d], k[1][d], k[2][d], k[3][d]);
        let kt = [kt(0), kt(1), kt(2)];
        let vrow = |j: usize| _mm_setr_ps(v[j][0], v[j][1], v[j][2], 0.0);
        let vr = [vrow(0), vrow(1), vrow(2), vrow(3)];
        for i in 0..2 {
            let s = _mm_mul_ps(_mm_set1_ps(q[i][0]), kt[0]);
            let s = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(q[i][1]), kt[1]), s);
            let s = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(q[i][2]), kt[2]), s);
            let s = _mm_mul_ps(s, _mm_set1_ps(0.57735026));
            let m = _mm_max_ps(s, _mm_shuffle_ps::<0b10_11_00_01>(s, s));
            let m = _mm_max_ps(m, _mm_shuffle_ps::<0b01_00_11_10>(m, m));
            let w = exp4(_mm_sub_ps(s, m));
            let sum = _mm_add_ps(w, _mm_shuffle_ps::<0b10_11_00_01>(w, w));
            let sum = _mm_add_ps(sum, _mm_shuffle_ps::<0b01_00_11_10>(sum, sum));
            let o = _mm_mul_ps(_mm_shuffle_ps::<0x00>(w, w), vr[0]);
            let o = _mm_add_ps(_mm_mul_ps(_mm_shuffle_ps::<0x55>(w, w), vr[1]), o);
            let o = _mm_add_ps(_mm_mul_ps(_mm_shuffle_ps::<0xAA>(w, w), vr[2]), o);
            let o = _mm_add_ps(_mm_mul_ps(_mm_shuffle_ps::<0xFF>(w, w), vr[3]), o);
            let o = _mm_div_ps(o, sum);
            let mut lanes = [0.0f32; 4];
            _mm_storeu_ps(lanes.as_mut_ptr(), o);
            out[0][i] = [lanes[0], lanes[1], lanes[2]];
        }
    }
}

/// `exp` for x <= 0 with AVX-512: the same reduction, `vscalefps` for the power of two.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp16(x: __m512) -> __m512 {
    // SAFETY: the caller guarantees AVX-512F; no pointer is read or written.
    unsafe {
        let c = |v: f32| _mm512_set1_ps(v);
        let x = _mm512_max_ps(c(-110.0), x);
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, c(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fmadd_ps(n, c(-0.693_359_4), x);
        let r = _mm512_fmadd_ps(n, c(2.121_944_4e-4), r);
        let p = _mm512_fmadd_ps(r, c(1.0 / 120.0), c(1.0 / 24.0));
        let p = _mm512_fmadd_ps(r, p, c(1.0 / 6.0));
        let p = _mm512_fmadd_ps(r, p, c(0.5));
        let p = _mm512_fmadd_ps(r, p, c(1.0));
        let p = _mm512_fmadd_ps(r, p, c(1.0));
        _mm512_scalef_ps(p, n)
    }
}

/// Lane indices, as a vector, for `vpermps`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn lanes(f: impl Fn(i32) -> i32) -> __m512i {
    let mut idx = [0i32; 16];
    for (l, x) in idx.iter_mut().enumerate() {
        *x = f(l as i32);
    }
    // SAFETY: AVX-512F by the caller; reads 16 i32 of a local array.
    unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
}

/// W1 with AVX-512: q, k and v each in one register by a masked load, scores of both rows
/// in lanes `4i + j`, outputs in lanes `3i + e`, every rearrangement one `vpermps`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn w1_avx512(q: &Q, k: &KV, v: &KV, out: &mut Q) {
    // SAFETY: AVX-512F is enabled; the masked loads read 6, 12 and 12 floats of arrays
    // of 6, 12 and 12, the masked store writes 6 floats of an array of 6.
    unsafe {
        let qz = _mm512_maskz_loadu_ps(0x3f, q.as_ptr().cast());
        let kz = _mm512_maskz_loadu_ps(0xfff, k.as_ptr().cast());
        let vz = _mm512_maskz_loadu_ps(0xfff, v.as_ptr().cast());
        let qz = _mm512_mul_ps(qz, _mm512_set1_ps(0.57735026));
        let pq = |d: i32| _mm512_permutexvar_ps(lanes(|l| (l / 4 % 2) * 3 + d), qz);
        let pk = |d: i32| _mm512_permutexvar_ps(lanes(|l| (l % 4) * 3 + d), kz);
        let s = _mm512_mul_ps(pq(0), pk(0));
        let s = _mm512_fmadd_ps(pq(1), pk(1), s);
        let s = _mm512_fmadd_ps(pq(2), pk(2), s);
        let m = _mm512_max_ps(s, _mm512_permute_ps::<0b10_11_00_01>(s));
        let m = _mm512_max_ps(m, _mm512_permute_ps::<0b01_00_11_10>(m));
        let w = exp16(_mm512_sub_ps(s, m));
        let sum = _mm512_add_ps(w, _mm512_permute_ps::<0b10_11_00_01>(w));
        let sum = _mm512_add_ps(sum, _mm512_permute_ps::<0b01_00_11_10>(sum));
        let pw = |j: i32| _mm512_permutexvar_ps(lanes(|l| (l / 3 % 2) * 4 + j), w);
        let pv = |j: i32| _mm512_permutexvar_ps(lanes(|l| j * 3 + l % 3), vz);
        let o = _mm512_mul_ps(pw(0), pv(0));
        let o = _mm512_fmadd_ps(pw(1), pv(1), o);
        let o = _mm512_fmadd_ps(pw(2), pv(2), o);
        let o = _mm512_fmadd_ps(pw(3), pv(3), o);
        let o = _mm512_div_ps(o, _mm512_permutexvar_ps(lanes(|l| (l / 3 % 2) * 4), sum));
        let mut lanes = [0.0f32; 16];
        _mm512_storeu_ps(lanes.as_mut_ptr(), o);
        out[0][0] = [lanes[0], lanes[1], lanes[2]];
        out[0][1] = [lanes[3], lanes[4], lanes[5]];
    }
}

/// The best of five means over 10 million calls, in ns.
fn time(name: &str, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let n = 10_000_000u64;
        for _ in 0..n {
            f();
        }
        best = best.min(start.elapsed().as_secs_f64() / n as f64 * 1e9);
    }
    println!("{name}: {best:.1} ns");
    best
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("w1_bound is written for x86-64");
}

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::hint::black_box as bb;
    let mut q: Q = [[[0.0; 3]; 2]; 1];
    let mut k: KV = [[[0.0; 3]; 4]; 1];
    let mut v: KV = [[[0.0; 3]; 4]; 1];
    q.as_flattened_mut()
        .as_flattened_mut()
        .copy_from_slice(&attn_bench::values(6, 1));
    k.as_flattened_mut()
        .as_flattened_mut()
        .copy_from_slice(&attn_bench::values(12, 2));
    v.as_flattened_mut()
        .as_flattened_mut()
        .copy_from_slice(&attn_bench::values(12, 3));
    let mut ours = [[[0.0; 3]; 2]; 1];
    assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
    // SAFETY: checked just above.
    unsafe { w1_avx(&q, &k, &v, &mut ours) };
    let mut rows = [[0.0f32; 3]; 2];
    attn_bench::plain_loops(&q[0], &k[0], &v[0], &mut rows, &mut [0.0; 4]);
    let close = |a: &Q| {
        a[0].iter()
            .flatten()
            .zip(rows.iter().flatten())
            .all(|(x, y)| (x - y).abs() < 1e-6)
    };
    assert!(close(&ours), "AVX2: {ours:?} against {rows:?}");
    let plain = time("plain", || {
        let mut rows = [[0.0f32; 3]; 2];
        attn_bench::plain_loops(bb(&q[0]), bb(&k[0]), bb(&v[0]), &mut rows, &mut [0.0; 4]);
        bb(rows);
    });
    let generated = time("attn", || {
        bb(w1(bb(&q), bb(&k), bb(&v)));
    });
    println!("plain loops / attn: {:.2}x", plain / generated);
    let avx = time("avx2 by hand", || {
        let mut out = [[[0.0f32; 3]; 2]; 1];
        // SAFETY: checked above.
        unsafe { w1_avx(bb(&q), bb(&k), bb(&v), &mut out) };
        bb(out);
    });
    println!("plain loops / AVX2 by hand: {:.2}x", plain / avx);
    let mut by_sse = [[[0.0f32; 3]; 2]; 1];
    w1_sse(&q, &k, &v, &mut by_sse);
    assert!(close(&by_sse), "SSE2: {by_sse:?} against {rows:?}");
    let sse = time("sse2 by hand", || {
        let mut out = [[[0.0f32; 3]; 2]; 1];
        w1_sse(bb(&q), bb(&k), bb(&v), &mut out);
        bb(out);
    });
    println!("plain loops / SSE2 by hand: {:.2}x", plain / sse);
    if is_x86_feature_detected!("avx512f") {
        let mut by_512 = [[[0.0f32; 3]; 2]; 1];
        // SAFETY: checked just above.
        unsafe { w1_avx512(&q, &k, &v, &mut by_512) };
        assert!(close(&by_512), "AVX-512: {by_512:?} against {rows:?}");
        let avx512 = time("avx-512 by hand", || {
            let mut out = [[[0.0f32; 3]; 2]; 1];
            // SAFETY: checked above.
            unsafe { w1_avx512(bb(&q), bb(&k), bb(&v), &mut out) };
            bb(out);
        });
        println!("plain loops / AVX-512 by hand: {:.2}x", plain / avx512);
    }
}
