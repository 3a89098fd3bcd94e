//! The FMA peak of one core over several seconds, second by second: shows whether the
//! clock settles lower under sustained 512-bit load than a short measurement suggests.
//!
//! Run: `cargo run --release -p attn-bench --example peak`

use attn_runtime::simd::{Isa, Simd, WithSimd, dispatch};

struct Peak(f64);

impl WithSimd for Peak {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f64 {
        const CHAINS: usize = 12;
        let (a, b) = (simd.splat(0.999_999), simd.splat(1e-7));
        let mut acc = [simd.splat(1.0); CHAINS];
        let start = std::time::Instant::now();
        let mut iterations = 0u64;
        while start.elapsed().as_secs_f64() < self.0 {
            for _ in 0..100_000 {
                for x in &mut acc {
                    *x = simd.mul_add(*x, a, b);
                }
            }
            iterations += 100_000;
        }
        let seconds = start.elapsed().as_secs_f64();
        std::hint::black_box(acc.iter().map(|&x| simd.reduce_sum(x)).sum::<f32>());
        (iterations as usize * CHAINS * S::LANES * 2) as f64 / seconds / 1e9
    }
}

fn main() {
    let isa = Isa::active();
    for second in 1..=6 {
        println!(
            "{isa}, second {second}: {:.1} GFLOP/s",
            dispatch(isa, Peak(1.0))
        );
    }
}
