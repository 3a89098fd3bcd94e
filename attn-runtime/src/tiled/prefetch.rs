//! The next problem's operands fetched into the L2 cache while this one runs ([`Ahead`]).

use super::tile::TILE_ROWS;
use crate::simd::prefetch;
use std::ops::Range;
use std::sync::OnceLock;

/// The next problem's queries, keys and values, fetched into the L2 cache a part per tile
/// while the last block of this problem runs, so that the next problem's first tiles do not
/// wait on memory: with operands larger than the cache (W4, 96 problems of 192 KiB), 4-6%
/// faster in A/B runs of bench/examples/profile_w3.rs.
///
/// ```
/// let keys = [1.0f32; 64];
/// let ahead = attn_runtime::__private::Ahead::new([&keys[..], &[], &[]], 2, 12);
/// ahead.fetch(1, 1);
/// ```
pub struct Ahead<'a, T = f32> {
    operands: [&'a [T]; 3],
    tiles: usize,
    steps: usize,
    /// Cache lines of each operand per step: computed once, so that a step multiplies
    /// rather than divides (with six divisions a tile, the steps took 2.1% of the samples of
    /// `profile_w3 w4s` in `perf`; with none, 1.1%).
    lines_per_step: [usize; 3],
}

impl<'a, T> Ahead<'a, T> {
    /// Values of `T` per cache line.
    const LINE: usize = CACHE_LINE_BYTES / size_of::<T>();

    /// Spreads `operands` (empty slices when there is no next problem) over the tiles of
    /// `key_blocks` blocks of keys times `rows` query rows.
    #[inline(always)]
    pub fn new(operands: [&'a [T]; 3], key_blocks: usize, rows: usize) -> Self {
        let tiles = rows.div_ceil(TILE_ROWS);
        // Nothing to fetch without a next problem; and a next problem larger than this would
        // push the current one out of the L2 cache before it is read (decoding over a long
        // context streams each key once anyway). Then no step fetches anything.
        let values: usize = operands.iter().map(|data| data.len()).sum();
        let steps = if values == 0 || values * size_of::<T>() > AHEAD_MOST_BYTES {
            0
        } else {
            key_blocks * tiles
        };
        Ahead {
            operands,
            tiles,
            steps,
            lines_per_step: operands.map(|data| lines_per_step(data.len(), steps, Self::LINE)),
        }
    }

    /// Fetches the part of the operands that belongs to tile `tile` of key block `key_block`:
    /// inline, so that a tile with nothing to fetch (most of them) costs one comparison
    /// rather than a call.
    #[inline(always)]
    pub fn fetch(&self, key_block: usize, tile: usize) {
        if self.steps != 0 {
            self.fetch_step(key_block * self.tiles + tile);
        }
    }

    /// Not inlined: one copy in this crate serves every kernel and instruction set, at the
    /// cost of a call per tile that fetches.
    #[inline(never)]
    fn fetch_step(&self, step: usize) {
        for (data, lines) in self.operands.into_iter().zip(self.lines_per_step) {
            fetch_lines(&data[part(data.len(), step, lines, Self::LINE)]);
        }
    }
}

/// The keys and values of the key block after `block` (of `keys`, the keys walked) that a
/// kernel reading them as stored (a decode step over a long cache streams each once) fetches
/// into the L2 cache by software while it reads `block`, a row beside the same row of this
/// block, on the processors whose own prefetchers fall behind that stream
/// (`prefetchers_fall_behind`: AMD's, not Intel's); elsewhere none.
///
/// ```
/// let keys = attn_runtime::__private::next_block(0..64, 0..1000);
/// assert!(keys.is_empty() || keys == (64..128));
/// assert!(attn_runtime::__private::next_block(960..1000, 0..1000).is_empty());
/// ```
#[inline(always)]
pub fn next_block(block: Range<usize>, keys: Range<usize>) -> Range<usize> {
    if prefetchers_fall_behind() {
        block.end..(2 * block.end - block.start).min(keys.end)
    } else {
        block.end..block.end
    }
}

/// What the pass of a tile's row `row` fetches of `next` (the next block's rows, see
/// [`next_block`]): the first row's pass fetches every line, and the other rows' passes read
/// the same block after it, so they fetch nothing.
///
/// ```
/// let next = [1.0f32; 4];
/// assert_eq!(attn_runtime::__private::fetched_by_row(&next, 0).len(), 4);
/// assert!(attn_runtime::__private::fetched_by_row(&next, 1).is_empty());
/// ```
#[inline(always)]
pub fn fetched_by_row<T>(next: &[T], row: usize) -> &[T] {
    if row == 0 { next } else { &[] }
}

/// Every cache line of `data` fetched into the L2 cache.
#[inline(always)]
pub(crate) fn fetch_lines<T>(data: &[T]) {
    let line = (CACHE_LINE_BYTES / size_of::<T>().max(1)).max(1);
    for at in (0..data.len()).step_by(line) {
        prefetch(&data[at..]);
    }
}

/// Whether the hardware's prefetchers leave a decode step's one thread short of the memory's
/// speed, which software prefetches of the next key block then make up: on AMD's processors
/// (an AMD EPYC, family 25 model 17, `cargo bench -p attn-bench --bench decode`: f32 from
/// 73% of the speed of a loop of loads to 97%; with each row fetched beside the same row of
/// the block before, 16-bit caches from 58-72% of the faster of two reading loops to
/// 86-98%), not on Intel's (an Intel Xeon, family 6 model 167: 79-80% with a block four
/// ahead fetched at once, against 89-91% without). Asked once.
fn prefetchers_fall_behind() -> bool {
    static AMD: OnceLock<bool> = OnceLock::new();
    *AMD.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let id = std::arch::x86_64::__cpuid(0);
            [id.ebx, id.edx, id.ecx]
                .map(u32::to_le_bytes)
                .as_flattened()
                == b"AuthenticAMD"
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Bytes per cache line.
const CACHE_LINE_BYTES: usize = 64;

/// The most bytes of a next problem's operands that [`Ahead`] fetches: 512 KiB, a quarter of
/// a core's L2 cache on the machines measured (W4's problems hold 192 KiB).
const AHEAD_MOST_BYTES: usize = 512 * 1024;

/// The cache lines of `len` values, `line` to a cache line, that each of `steps` steps
/// fetches, the last steps fewer (or none): enough that all of them cover the values.
#[inline]
fn lines_per_step(len: usize, steps: usize, line: usize) -> usize {
    len.div_ceil(line).div_ceil(steps.max(1))
}

/// Part `step` of `len` values split in parts of `lines` cache lines of `line` values (from
/// [`lines_per_step`]): the parts of all steps cover `0..len` once.
#[inline]
fn part(len: usize, step: usize, lines: usize, line: usize) -> std::ops::Range<usize> {
    let at = |step: usize| (step * lines * line).min(len);
    at(step)..at(step + 1)
}

#[cfg(test)]
mod tests {
    use super::{fetch_lines, lines_per_step, part};

    #[test]
    fn fetching_stays_inside_any_slice() {
        // Lengths around a cache line's 16 f32 or 32 16-bit values, and none.
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 1000] {
            fetch_lines(&vec![0.0f32; len]);
            fetch_lines(&vec![half::bf16::ZERO; len]);
            fetch_lines(&vec![[0u8; 100]; len]);
        }
    }

    #[test]
    fn the_parts_of_a_prefetch_cover_every_line_once() {
        for line in [16, 32] {
            for len in [0, 1, 15, 16, 17, 1000, 16384] {
                for steps in [1, 2, 7, 43, 172, 5000] {
                    let mut next = 0;
                    let lines = lines_per_step(len, steps, line);
                    for step in 0..steps {
                        let range = part(len, step, lines, line);
                        assert_eq!(range.start, next, "len {len}, step {step} of {steps}");
                        assert!(range.start.is_multiple_of(line) || range.is_empty());
                        next = range.end;
                    }
                    assert_eq!(next, len, "len {len}, {steps} steps");
                }
            }
        }
    }
}
