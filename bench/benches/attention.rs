//! attn against plain loops (and, where built, its peers) on the workloads of the
//! performance issue, in one process. Prints time, GFLOP/s, ratios and the share of the
//! FMA peak it measures itself.
//!
//! Run: `cargo bench -p attn-bench --bench attention`

use attn_bench::{max_difference, median_seconds, plain_loops, values};
use attn_runtime::simd::{Isa, Simd, WithSimd, dispatch};
use attn_runtime::threads::with_threads;
use attn_runtime::{Array, Tensor, attention};

attention! {
    /// W1: the textbook example.
    fn w1<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
    /// W2, W3: one head, any length.
    fn one_head<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;
    /// W4: 96 problems of 256 x 256.
    fn w4<q: [96, 256, 64], k: [96, 256, 64], v: [96, 256, 64]>;
}

/// A long run of independent FMAs: the core's peak, measured.
struct Peak;

impl WithSimd for Peak {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f64 {
        const CHAINS: usize = 12;
        let iterations = 20_000_000 / S::LANES;
        let a = simd.splat(0.999_999);
        let b = simd.splat(1e-7);
        let mut acc = [simd.splat(1.0); CHAINS];
        let start = std::time::Instant::now();
        for _ in 0..iterations {
            for x in &mut acc {
                *x = simd.mul_add(*x, a, b);
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let total: f32 = acc.iter().map(|&x| simd.reduce_sum(x)).sum();
        std::hint::black_box(total);
        (iterations * CHAINS * S::LANES * 2) as f64 / seconds / 1e9
    }
}

fn gflops(flops: f64, seconds: f64) -> f64 {
    flops / seconds / 1e9
}

fn main() {
    let isa = Isa::active();
    let peak = (0..3).map(|_| dispatch(isa, Peak)).fold(0.0, f64::max);
    println!("attn on {isa}; measured FMA peak of one core: {peak:.1} GFLOP/s\n");
    println!(
        "{:<28} {:>12} {:>10} {:>8} {:>14} {:>10}",
        "workload", "attn", "GFLOP/s", "% peak", "plain loops", "speed-up"
    );

    // W1
    {
        let q = [[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]];
        let kv = [[
            [0.1, -0.2, 0.3],
            [0.4, 0.5, -0.6],
            [0.7, 0.8, 0.9],
            [-1.0, 1.1, 1.2],
        ]];
        let ours = median_seconds(0.5, || w1(std::hint::black_box(&q), &kv, &kv));
        let mut out = [[0.0f32; 3]; 2];
        let mut scores = [0.0f32; 4];
        let plain = median_seconds(0.5, || {
            plain_loops(
                std::hint::black_box(&q[0]),
                &kv[0],
                &kv[0],
                &mut out,
                &mut scores,
            )
        });
        let diff = max_difference(w1(&q, &kv, &kv)[0].as_flattened(), out.as_flattened());
        assert!(diff < 1e-5, "W1 disagrees with the plain loops by {diff}");
        let flops = w1::INFO.flops as f64;
        println!(
            "{:<28} {:>9.4} us {:>10.2} {:>7.2}% {:>11.4} us {:>9.1}x",
            "W1 textbook [1, 2, 4, 3]",
            ours * 1e6,
            gflops(flops, ours),
            100.0 * gflops(flops, ours) / peak,
            plain * 1e6,
            plain / ours
        );
    }

    one_head_workload::<128>("W2 one head [1, 128, 128, 64]", peak);
    one_head_workload::<2048>("W3 long [1, 2048, 2048, 64]", peak);

    // W4
    {
        let q = Tensor::<[[[f32; 64]; 256]; 96]>::from_vec(values(96 * 256 * 64, 1)).unwrap();
        let k = Tensor::<[[[f32; 64]; 256]; 96]>::from_vec(values(96 * 256 * 64, 2)).unwrap();
        let v = Tensor::<[[[f32; 64]; 256]; 96]>::from_vec(values(96 * 256 * 64, 3)).unwrap();
        let mut out = Tensor::<[[[f32; 64]; 256]; 96]>::zeros();
        let flops = w4::INFO.flops as f64;
        let ours = with_threads(1, || median_seconds(2.0, || w4_into(&q, &k, &v, &mut out)));
        let mut plain_out = Tensor::<[[[f32; 64]; 256]; 96]>::zeros();
        let mut scores = [0.0f32; 256];
        let plain = median_seconds(2.0, || {
            for b in 0..96 {
                plain_loops(&q[b], &k[b], &v[b], &mut plain_out[b], &mut scores);
            }
        });
        let diff = max_difference(out.as_flat(), plain_out.as_flat());
        assert!(diff < 1e-4, "W4 disagrees with the plain loops by {diff}");
        report("W4 heads [96, 256, 256, 64]", flops, ours, plain, peak);
        threaded("W4", flops, ours, &mut out, |out| w4_into(&q, &k, &v, out));
    }
}

fn one_head_workload<const N: usize>(name: &str, peak: f64) {
    let q = Tensor::<[[[f32; 64]; N]; 1]>::from_vec(values(N * 64, 1)).unwrap();
    let k = Tensor::<[[[f32; 64]; N]; 1]>::from_vec(values(N * 64, 2)).unwrap();
    let v = Tensor::<[[[f32; 64]; N]; 1]>::from_vec(values(N * 64, 3)).unwrap();
    let mut out = Tensor::<[[[f32; 64]; N]; 1]>::zeros();
    let flops = one_head::info::<N>().flops as f64;
    let ours = with_threads(1, || {
        median_seconds(2.0, || one_head_into(&q, &k, &v, &mut out))
    });
    let mut plain_out = Tensor::<[[f32; 64]; N]>::zeros();
    let mut scores = Tensor::<[f32; N]>::zeros();
    let plain = median_seconds(2.0, || {
        plain_loops(&q[0], &k[0], &v[0], &mut plain_out, &mut scores)
    });
    let diff = max_difference(out.as_flat(), plain_out.as_flat());
    assert!(
        diff < 1e-4,
        "{name} disagrees with the plain loops by {diff}"
    );
    report(name, flops, ours, plain, peak);
    if N >= 2048 {
        threaded("W3", flops, ours, &mut out, |out| {
            one_head_into(&q, &k, &v, out)
        });
    }
}

fn report(name: &str, flops: f64, ours: f64, plain: f64, peak: f64) {
    println!(
        "{:<28} {:>9.1} us {:>10.1} {:>7.1}% {:>11.1} us {:>9.1}x",
        name,
        ours * 1e6,
        gflops(flops, ours),
        100.0 * gflops(flops, ours) / peak,
        plain * 1e6,
        plain / ours
    );
}

/// The same workload on 2 threads: its speed-up, and whether the result is bit-identical to
/// the single-thread one that `out` holds.
fn threaded<A: Array>(
    name: &str,
    flops: f64,
    single: f64,
    out: &mut Tensor<A>,
    run: impl Fn(&mut Tensor<A>),
) {
    let single_out = out.as_flat().to_vec();
    let two = with_threads(2, || median_seconds(2.0, || run(out)));
    let identical = out.as_flat() == single_out.as_slice();
    println!(
        "{:<28} {:>9.1} us {:>10.1} {:>8} {:>14} {:>9.2}x  bit-identical: {identical}",
        format!("{name} on 2 threads"),
        two * 1e6,
        gflops(flops, two),
        "",
        "",
        single / two
    );
}
