//! The FMA peak of one core over several seconds, second by second: shows whether the
//! clock settles lower under sustained 512-bit load than a short measurement suggests.
//!
//! Run: `cargo run --release -p attn-bench --example peak`

use attn_bench::Peak;
use attn_runtime::simd::{Isa, dispatch};

fn main() {
    let isa = Isa::active();
    for second in 1..=6 {
        println!(
            "{isa}, second {second}: {:.1} GFLOP/s",
            dispatch(isa, Peak { seconds: 1.0 })
        );
    }
}
