//! The FMA peak of one core over several seconds, second by second: shows whether the
//! clock settles lower under sustained 512-bit load than a short measurement suggests.
//! Then both cores at once, each running the same loop: what two threads can reach at most.
//!
//! Run: `cargo run --release -p attn-bench --example peak`

use attn_bench::Peak;
use attn_runtime::simd::{Isa, dispatch};

fn main() {
    let isa = Isa::active();
    for second in 1..=4 {
        println!(
            "{isa}, one core, second {second}: {:.1} GFLOP/s",
            dispatch(isa, Peak { seconds: 1.0 })
        );
    }
    for second in 1..=4 {
        let (a, b) = std::thread::scope(|scope| {
            let other = scope.spawn(|| dispatch(isa, Peak { seconds: 1.0 }));
            let mine = dispatch(isa, Peak { seconds: 1.0 });
            (mine, other.join().expect("the other core's loop"))
        });
        println!(
            "{isa}, two cores, second {second}: {:.1} GFLOP/s ({a:.1} + {b:.1})",
            a + b
        );
    }
}
