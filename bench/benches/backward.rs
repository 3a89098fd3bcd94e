//! attn's backward pass (`#[attn(backward)]`) on the workloads W2-W5 of docs/PERFORMANCE.md:
//! the time of `name_backward_into`, its GFLOP/s counting 10 B H Nq Nk D (the five products
//! of FlashAttention-2's backward, as PyTorch's benchmarks count them) and its share of the
//! FMA peak measured in alternation with it, on one thread; then on two threads, timed in
//! alternation with one, and whether the gradients are the same bits.
//!
//! Run: `cargo bench -p attn-bench --bench backward`; add workload names (`-- W3 W4`) to
//! run only those.

use attn_bench::{Peak, beside_peak, paired_medians, values};
use attn_runtime::simd::{Isa, dispatch};
use attn_runtime::threads::with_threads;
use attn_runtime::{Array, Tensor, attention};

attention! {
    /// W2, W3: one head of depth 64, any length.
    #[attn(backward)]
    fn one_head<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;
    /// W3 with a causal mask.
    #[attn(backward, causal)]
    fn causal_head<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;
    /// W4: 96 problems (batch x heads) of 256 x 256.
    #[attn(backward)]
    fn heads<q: [96, 256, 64], k: [96, 256, 64], v: [96, 256, 64]>;
    /// W5: 16 query heads over 4 key/value heads.
    #[attn(backward)]
    fn grouped<q: [1, 16, 512, 64], k: [1, 4, 512, 64], v: [1, 4, 512, 64]>;
}

fn tensor<A: Array<Element = f32>>(seed: u64) -> Tensor<A> {
    Tensor::from_vec(values(A::LEN, seed)).expect("the workload's length")
}

fn time(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.1} us", seconds * 1e6)
    } else {
        format!("{:.2} ms", seconds * 1e3)
    }
}

/// One workload's gradients: `Q` shaped like q, `K` like k and v.
struct Gradients<Q: Array, K: Array> {
    dq: Tensor<Q>,
    dk: Tensor<K>,
    dv: Tensor<K>,
}

impl<Q: Array<Element = f32>, K: Array<Element = f32>> Gradients<Q, K> {
    fn new() -> Self {
        Gradients {
            dq: Tensor::zeros(),
            dk: Tensor::zeros(),
            dv: Tensor::zeros(),
        }
    }

    fn bits(&self) -> [&[f32]; 3] {
        [self.dq.as_flat(), self.dk.as_flat(), self.dv.as_flat()]
    }
}

/// Times `backward` (which writes the gradients) on one thread beside the FMA peak, then on
/// two threads in alternation with one, and prints a row of each. `flops` counts the work
/// the backward does (half of the full count under a causal mask).
fn measure<Q: Array<Element = f32>, K: Array<Element = f32>>(
    name: &str,
    flops: f64,
    isa: Isa,
    backward: impl Fn(&mut Gradients<Q, K>),
) {
    let mut one = Gradients::new();
    let (seconds, peak) = with_threads(1, || beside_peak(4.0, isa, || backward(&mut one)));
    let gflops = flops / seconds / 1e9;
    println!(
        "{name:<34} {:>10} {gflops:>8.1} {:>6.1}% of {peak:>3.0}",
        time(seconds),
        100.0 * gflops / peak
    );
    let mut two = Gradients::new();
    let (single, double) = paired_medians(
        6.0,
        || with_threads(1, || backward(&mut one)),
        || with_threads(2, || backward(&mut two)),
    );
    println!(
        "{:<34} {:>10} {:>8.1}  on 2 threads: {:.2}x the single-thread speed, bit-identical: {}",
        "",
        time(double),
        flops / double / 1e9,
        single / double,
        one.bits() == two.bits()
    );
}

/// W2 or W3 (`N` positions), full or causal.
fn one_head_workload<const N: usize>(name: &str, isa: Isa, causal: bool) {
    let (q, k, v) = (
        tensor::<[[[f32; 64]; N]; 1]>(1),
        tensor::<[[[f32; 64]; N]; 1]>(2),
        tensor::<[[[f32; 64]; N]; 1]>(3),
    );
    let d_out = tensor::<[[[f32; 64]; N]; 1]>(4);
    let mut out = Tensor::<[[[f32; 64]; N]; 1]>::zeros();
    let mut lse = Tensor::<[[f32; N]; 1]>::zeros();
    let full = 10.0 * (N * N * 64) as f64;
    if causal {
        causal_head_into(&q, &k, &v, &mut out, &mut lse);
        measure(name, full / 2.0, isa, |g: &mut Gradients<_, _>| {
            causal_head_backward_into(
                &q, &k, &v, &out, &lse, &d_out, &mut g.dq, &mut g.dk, &mut g.dv,
            )
        });
    } else {
        one_head_into(&q, &k, &v, &mut out, &mut lse);
        measure(name, full, isa, |g: &mut Gradients<_, _>| {
            one_head_backward_into(
                &q, &k, &v, &out, &lse, &d_out, &mut g.dq, &mut g.dk, &mut g.dv,
            )
        });
    }
}

fn heads_workload(isa: Isa) {
    let (q, k, v) = (
        tensor::<[[[f32; 64]; 256]; 96]>(1),
        tensor::<[[[f32; 64]; 256]; 96]>(2),
        tensor::<[[[f32; 64]; 256]; 96]>(3),
    );
    let d_out = tensor::<[[[f32; 64]; 256]; 96]>(4);
    let mut out = Tensor::<[[[f32; 64]; 256]; 96]>::zeros();
    let mut lse = Tensor::<[[f32; 256]; 96]>::zeros();
    heads_into(&q, &k, &v, &mut out, &mut lse);
    let flops = 10.0 * (96 * 256 * 256 * 64) as f64;
    measure(
        "W4 heads [96, 256, 256, 64]",
        flops,
        isa,
        |g: &mut Gradients<_, _>| {
            heads_backward_into(
                &q, &k, &v, &out, &lse, &d_out, &mut g.dq, &mut g.dk, &mut g.dv,
            )
        },
    );
}

fn grouped_workload(isa: Isa) {
    let q = tensor::<[[[[f32; 64]; 512]; 16]; 1]>(1);
    let (k, v) = (
        tensor::<[[[[f32; 64]; 512]; 4]; 1]>(2),
        tensor::<[[[[f32; 64]; 512]; 4]; 1]>(3),
    );
    let d_out = tensor::<[[[[f32; 64]; 512]; 16]; 1]>(4);
    let mut out = Tensor::<[[[[f32; 64]; 512]; 16]; 1]>::zeros();
    let mut lse = Tensor::<[[[f32; 512]; 16]; 1]>::zeros();
    grouped_into(&q, &k, &v, &mut out, &mut lse);
    let flops = 10.0 * (16 * 512 * 512 * 64) as f64;
    let name = "W5 grouped [1, 16/4, 512, 512, 64]";
    measure(name, flops, isa, |g: &mut Gradients<_, _>| {
        grouped_backward_into(
            &q, &k, &v, &out, &lse, &d_out, &mut g.dq, &mut g.dk, &mut g.dv,
        )
    });
}

fn main() {
    let isa = Isa::active();
    let peak = (0..3)
        .map(|_| dispatch(isa, Peak { seconds: 0.3 }))
        .fold(0.0, f64::max);
    println!(
        "attn's backward on {isa}; FMA peak of one core, measured: {peak:.1} GFLOP/s\n\
         FLOPs = 10 B H Nq Nk D (half under a causal mask); each share of the peak is of the \
         peak measured in alternation with it (GFLOP/s after \"of\")\n"
    );
    println!(
        "{:<34} {:>10} {:>8} {:>14}",
        "workload [B, H, Nq, Nk, D]", "backward", "GFLOP/s", "% of peak"
    );
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let selected = |name: &str| chosen.is_empty() || chosen.iter().any(|c| name.starts_with(c));
    if selected("W2") {
        one_head_workload::<128>("W2 one head [1, 1, 128, 128, 64]", isa, false);
    }
    if selected("W3") {
        one_head_workload::<2048>("W3 long [1, 1, 2048, 2048, 64]", isa, false);
        one_head_workload::<2048>("W3 causal", isa, true);
    }
    if selected("W4") {
        heads_workload(isa);
    }
    if selected("W5") {
        grouped_workload(isa);
    }
}
