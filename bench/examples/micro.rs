//! The two micro-kernels alone, on data that stays in the L1 cache, beside a synthetic loop
//! of the same instruction mix: how close each comes to the FMA peak by itself, apart from
//! the softmax, the caches and the loops around them; each with its keys and values on a
//! cache line boundary, as the kernels place them, and 16 bytes past one, as a `Vec` of a few
//! hundred KiB often lies (then every vector load touches two lines); and the packing of a
//! block of keys, on this machine's instruction set and on the portable one.
//!
//! Run: `cargo run --release -p attn-bench --example micro`

use attn_runtime::__private::{Aligned, Output, TILE_ROWS, accumulate_values, pack_keys, scores};
use attn_runtime::simd::{Isa, Simd, WithSimd, dispatch};

const DEPTH: usize = 64;
const KB: usize = 64;

/// What to time for one second.
#[derive(Clone, Copy)]
enum Stage {
    /// `scores`: a tile of 6 query rows against a block of 64 packed keys.
    Scores,
    /// `accumulate_values`: the tile's 6 rows of weights times 64 value rows.
    Values,
    /// The scores' inner loop without the kernel around it: per depth step 4 loads, 6
    /// broadcasts from memory and 24 FMAs into 24 accumulators.
    Mix,
}

/// A stage, with its packed keys and values on a cache line boundary or 16 bytes past one.
#[derive(Clone, Copy)]
struct Run {
    stage: Stage,
    off_line: bool,
}

/// `data` 16 bytes past a cache line boundary.
#[repr(C, align(64))]
struct OffLine<T> {
    _before: [f32; 4],
    data: T,
}

impl WithSimd for Run {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f64 {
        let q = std::hint::black_box([[0.01f32; DEPTH]; TILE_ROWS]);
        let keys = std::hint::black_box([[0.02f32; DEPTH]; KB]);
        let mut on_line = Aligned(([[0.0f32; KB]; DEPTH], [[0.03f32; DEPTH]; KB]));
        let mut off_line = OffLine {
            _before: [0.0; 4],
            data: on_line.0,
        };
        let (packed, values) = if self.off_line {
            (&mut off_line.data.0, &off_line.data.1)
        } else {
            (&mut on_line.0.0, &on_line.0.1)
        };
        pack_keys(simd, &keys, packed);
        let (packed, values) = (std::hint::black_box(&*packed), std::hint::black_box(values));
        let mut tile = [[0.0f32; KB]; TILE_ROWS];
        let mut out = [[0.0f32; DEPTH]; TILE_ROWS];
        let mut acc = [simd.splat(0.0); 24];
        let start = std::time::Instant::now();
        let mut tiles = 0u64;
        while start.elapsed().as_secs_f64() < 1.0 {
            for _ in 0..1000 {
                match self.stage {
                    Stage::Scores => scores(simd, &q, packed, KB, 0.125, &mut tile),
                    Stage::Values => {
                        accumulate_values(simd, &tile, values, &mut out, Output::Accumulated)
                    }
                    Stage::Mix => {
                        for (d, keys) in packed.iter().enumerate() {
                            let k = [0, 1, 2, 3].map(|c| simd.load(&keys[c * KB / 4..]));
                            for (r, row) in q.iter().enumerate() {
                                let query = simd.splat(row[d]);
                                for c in 0..4 {
                                    acc[r * 4 + c] = simd.mul_add(query, k[c], acc[r * 4 + c]);
                                }
                            }
                        }
                    }
                }
                std::hint::black_box((&mut tile, &mut out));
            }
            tiles += 1000;
        }
        let mut sink = [0.0f32; 16];
        for a in acc {
            simd.store(&mut sink, a);
            std::hint::black_box(&sink);
        }
        let flops = tiles as f64 * (2 * TILE_ROWS * KB * DEPTH) as f64;
        flops / start.elapsed().as_secs_f64() / 1e9
    }
}

/// Packing one block of 64 keys of depth 64, in nanoseconds: squares transposed in
/// registers, 16 x 16 with AVX-512, 8 x 8 with AVX2, 4 x 4 arrays on the portable set.
struct PackTime;

impl WithSimd for PackTime {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f64 {
        let keys = std::hint::black_box([[0.02f32; DEPTH]; KB]);
        let mut packed = Aligned([[0.0f32; KB]; DEPTH]);
        let start = std::time::Instant::now();
        let mut blocks = 0u32;
        while start.elapsed().as_secs_f64() < 0.5 {
            for _ in 0..1000 {
                pack_keys(simd, std::hint::black_box(&keys), &mut packed.0);
                std::hint::black_box(&mut packed);
            }
            blocks += 1000;
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(blocks)
    }
}

fn main() {
    let isa = Isa::active();
    for round in 1..=2 {
        let (fast, slow) = (dispatch(isa, PackTime), dispatch(Isa::Portable, PackTime));
        println!(
            "round {round}: packing 64 keys of depth 64: {fast:.0} ns on {isa}, \
             {slow:.0} ns on the portable instruction set"
        );
    }
    for round in 1..=3 {
        for off_line in [false, true] {
            let [qk, pv, mix] = [Stage::Scores, Stage::Values, Stage::Mix]
                .map(|stage| dispatch(isa, Run { stage, off_line }));
            let placed = if off_line {
                "16 B off a line"
            } else {
                "on a line"
            };
            println!(
                "{isa}, round {round}, operands {placed}: Q·Kᵀ {qk:.1} GFLOP/s, P·V {pv:.1} GFLOP/s, \
                 the same mix alone {mix:.1} GFLOP/s"
            );
        }
    }
}
