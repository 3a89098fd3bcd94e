//! The linear projections of the layer form: embeddings to the heads of q, k and v, and the
//! merged heads through the output projection.

use crate::padded::rows_to_clear;
use crate::simd::{Isa, Simd, WithSimd, dispatch};
use crate::tiled::pass_vectors;
use crate::weights::Linear;
use std::ops::Range;

/// `y[r] = W · x[r] + b` for every input row `r`, on the active instruction set and, with the
/// `threads` feature, over threads when the work pays.
///
/// A matrix product `x · Wᵀ` as BLAS computes one, over the weight packed once per
/// [`Linear`] into panels of [`PANEL`] features, `[input][feature]` (see [`Packed`]); each
/// panel is swept by tiles of [`TILE_ROWS`] rows times two vectors of its features (see
/// [`tile`]), while it stays in the core's L2 cache. Every output is the same sum,
/// `x[r][0]·W[o][0] + x[r][1]·W[o][1] + ..` in that order, then the bias, whatever the tile
/// or thread it falls in: the same bits for one row alone or among many, on one thread or
/// several.
pub(crate) fn rows<const IN: usize, const OUT: usize>(
    x: &[[f32; IN]],
    linear: &Linear<IN, OUT>,
    y: &mut [[f32; OUT]],
) {
    let product = Product {
        x: x.as_flattened(),
        rows: x.len().min(y.len()),
        packed: linear.packed().values(),
        bias: linear.bias().map(|bias| &bias[..]),
        inputs: IN,
        outputs: OUT,
    };
    product.run(y.as_flattened_mut());
}

/// Features per panel of the packed weight: one tile's four vectors on AVX-512, two tiles'
/// two on AVX2, four on the portable path.
const PANEL: usize = 64;
/// Rows per block, whole tiles: 72 rows of up to 1,536 inputs (432 KiB) stay in the L2
/// cache while every panel passes over them.
const BLOCK_ROWS: usize = 12 * TILE_ROWS;
/// Inputs per block: a panel's 128 rows of 64 features (32 KiB) stay in the L1 cache while
/// every tile of a block of rows passes over them. The sums of one block go on from the
/// last's, so the order of the additions is the same.
const DEPTH_BLOCK: usize = 128;
/// Rows of a tile, as in the attention's micro-kernels: each broadcast input serves the
/// tile's vectors of features ([`pass_vectors`]: 6 x 4 accumulators in AVX-512's 32
/// registers, 6 x 2 in AVX2's 16).
const TILE_ROWS: usize = crate::tiled::TILE_ROWS;
/// Below this many rows, a product stays on one thread: split, each thread would read every
/// weight, and few rows are too little work to wake a pool thread for (eight rows through
/// all-MiniLM-L6-v2 took 5.6-5.7 ms on two threads that split the features, 4.0-4.2 ms on
/// one).
#[cfg(feature = "threads")]
const FEW_ROWS: usize = 4 * TILE_ROWS;

/// A weight packed into panels of [`PANEL`] features, each `[inputs][PANEL]`, the features
/// past the last zero: the layout in which a tile loads a vector of features for one input.
/// Made once per [`Linear`]; each panel row starts on a cache line, so that no vector load
/// straddles two lines (with the rows where a `Vec` put them, every load did, and 266 rows
/// of 384 x 1536 ran 8% slower).
#[derive(Clone, Debug)]
pub(crate) struct Packed(Vec<PanelRow>);

/// One input's row of a panel, on a cache line boundary.
#[derive(Clone, Copy, Debug, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C, align(64))]
struct PanelRow([f32; PANEL]);

impl Packed {
    /// `weight` (`[outputs][inputs]`), packed.
    pub(crate) fn new(weight: &[f32], inputs: usize, outputs: usize) -> Packed {
        let mut packed = vec![PanelRow([0.0; PANEL]); outputs.div_ceil(PANEL) * inputs];
        for (o, row) in weight.chunks_exact(inputs.max(1)).take(outputs).enumerate() {
            let panel = &mut packed[o / PANEL * inputs..];
            for (panel_row, &w) in panel.iter_mut().zip(row) {
                panel_row.0[o % PANEL] = w;
            }
        }
        Packed(packed)
    }

    /// The values, panel after panel.
    pub(crate) fn values(&self) -> &[f32] {
        bytemuck::cast_slice(&self.0)
    }
}

/// `y = x · Wᵀ + b`, not generic over the sizes: the loop nest is compiled once, in this
/// crate, for every layer.
struct Product<'a> {
    /// `[rows][inputs]`.
    x: &'a [f32],
    rows: usize,
    /// The weight, as [`Packed`] lays it out.
    packed: &'a [f32],
    bias: Option<&'a [f32]>,
    inputs: usize,
    outputs: usize,
}

impl Product<'_> {
    fn run(&self, y: &mut [f32]) {
        if self.rows == 0 || self.outputs == 0 {
            return;
        }
        if self.inputs == 0 {
            // An empty sum: each row is the bias, or 0.
            for row in y.chunks_exact_mut(self.outputs).take(self.rows) {
                match self.bias {
                    Some(bias) => row.copy_from_slice(bias),
                    None => row.fill(0.0),
                }
            }
            return;
        }
        let isa = Isa::active();
        let all = Share {
            product: self,
            rows: 0..self.rows,
            y,
        };
        #[cfg(feature = "threads")]
        {
            let flops = (self.rows * self.inputs * self.outputs * 2) as u64;
            let threads = crate::threads::for_work(flops);
            if threads > 1 && self.rows >= FEW_ROWS {
                let shares = all.split_rows(threads);
                crate::threads::run_shares(shares, |share| dispatch(isa, share));
                return;
            }
        }
        dispatch(isa, all);
    }
}

/// The rows of a product that one thread computes, into `y`, whose first row is row
/// `rows.start`'s.
struct Share<'a, 'p> {
    product: &'a Product<'p>,
    rows: Range<usize>,
    y: &'a mut [f32],
}

impl<'a, 'p> Share<'a, 'p> {
    /// The rows in `threads` shares starting at tile boundaries.
    #[cfg(feature = "threads")]
    fn split_rows(self, threads: usize) -> Vec<Share<'a, 'p>> {
        let Share {
            product, rows, y, ..
        } = self;
        let per_share = rows.len().div_ceil(threads).next_multiple_of(TILE_ROWS);
        y.chunks_mut(per_share * product.outputs)
            .enumerate()
            .map(|(i, y)| Share {
                product,
                rows: i * per_share..(i * per_share + y.len() / product.outputs),
                y,
            })
            .collect()
    }
}

impl WithSimd for Share<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        match pass_vectors::<S>() {
            4 => self.sweep::<S, 4>(simd),
            _ => self.sweep::<S, 2>(simd),
        }
    }
}

impl Share<'_, '_> {
    /// The share's products, by tiles of [`TILE_ROWS`] rows times `N` vectors of features.
    #[inline(always)]
    #[allow(unused_labels)]
    fn sweep<S: Simd, const N: usize>(self, simd: S) {
        const {
            assert!(
                PANEL.is_multiple_of(N * S::LANES),
                "a panel is whole tiles wide"
            )
        };
        let Product {
            x,
            packed,
            bias,
            inputs,
            ..
        } = *self.product;
        let width = self.product.outputs;
        // This share's rows packed a tile at a time, `[input][row]`, so that a tile reads its
        // inputs from one pointer at fixed offsets (read from the rows in place, the six
        // row addresses took the general registers the loop needed: 85 against 100
        // GFLOP/s on 266 rows of 384 x 1536).
        let rows = &x[self.rows.start * inputs..self.rows.end * inputs];
        let mut tiles = ROW_TILES.take();
        tiles.clear();
        tiles.resize(rows.len(), 0.0);
        for (rows, tile) in rows
            .chunks(TILE_ROWS * inputs)
            .zip(tiles.chunks_mut(TILE_ROWS * inputs))
        {
            let tile_rows = rows.len() / inputs;
            for (r, row) in rows.chunks_exact(inputs).enumerate() {
                for (i, &value) in row.iter().enumerate() {
                    tile[i * tile_rows + r] = value;
                }
            }
        }
        'row_blocks: for block in self.rows.clone().step_by(BLOCK_ROWS) {
            let block = block..(block + BLOCK_ROWS).min(self.rows.end);
            'panels: for panel_first in (0..width).step_by(PANEL) {
                let panel = &packed[panel_first * inputs..][..PANEL * inputs];
                // The next panel, fetched while the first tile sweeps this one: with few rows a
                // product streams its weight from memory once, and a stream fetched ahead of its
                // use was read 1.7x faster than one the hardware prefetcher alone found (eight
                // rows through eighteen weights of 384 x 1536, 42 MB: 7.7 against 12.8 GB/s).
                let next = packed
                    .get((panel_first + PANEL) * inputs..)
                    .unwrap_or_default();
                'tile_columns: for column in (0..PANEL).step_by(N * S::LANES) {
                    let first = panel_first + column;
                    if first >= width {
                        break;
                    }
                    let count = (N * S::LANES).min(width - first);
                    let bias = bias.map(|bias| &bias[first..][..count]);
                    'depth_blocks: for depth in (0..inputs).step_by(DEPTH_BLOCK) {
                        let depth = depth..(depth + DEPTH_BLOCK).min(inputs);
                        let panel = &panel[depth.start * PANEL..depth.end * PANEL];
                        let next = next.get(depth.start * PANEL..).unwrap_or_default();
                        // The sums so far come back from `y`; the bias goes in after the last
                        // inputs.
                        let (resume, bias) =
                            (depth.start > 0, bias.filter(|_| depth.end == inputs));
                        'tiles: for row in block.clone().step_by(TILE_ROWS) {
                            let tile_rows = TILE_ROWS.min(block.end - row);
                            let local = row - self.rows.start;
                            let x = &tiles[local * inputs..(local + tile_rows) * inputs];
                            let x = &x[depth.start * tile_rows..depth.end * tile_rows];
                            let y = &mut self.y[local * width..(local + tile_rows) * width];
                            let out = Out {
                                y,
                                width,
                                first,
                                count,
                                resume,
                                bias,
                            };
                            let first_tile = column == 0 && row == self.rows.start;
                            let next = if first_tile { next } else { &[] };
                            let panel = (panel, column, next);
                            match tile_rows {
                                6 => tile::<S, 6, N>(simd, x, panel, out),
                                5 => tile::<S, 5, N>(simd, x, panel, out),
                                4 => tile::<S, 4, N>(simd, x, panel, out),
                                3 => tile::<S, 3, N>(simd, x, panel, out),
                                2 => tile::<S, 2, N>(simd, x, panel, out),
                                _ => tile::<S, 1, N>(simd, x, panel, out),
                            }
                        }
                    }
                }
            }
        }
        ROW_TILES.set(tiles);
    }
}

thread_local! {
    /// A thread's last share of rows packed in tiles, kept for its next product: a fresh
    /// buffer of a share of hundreds of rows was a fresh map from the allocator, paid for in
    /// page faults at every call.
    static ROW_TILES: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Where a tile's results go: `count` features from column `first` of rows `width` long;
/// `resume`: the sums of the inputs before this block are there, to go on from; and the
/// bias of those features, after the last block.
struct Out<'a> {
    y: &'a mut [f32],
    width: usize,
    first: usize,
    count: usize,
    resume: bool,
    bias: Option<&'a [f32]>,
}

/// `y[r][first + f] = Σ_i x[i][r] · panel[i][column + f] + bias[f]` for the `MR` rows of
/// the tile `x` (`[input][row]`) and `N` vectors of the panel's features from `column`, the
/// sum going on from `y`'s when `out.resume`: each input of each row is broadcast once and
/// multiplied into the `N` vectors, in input order. The rows of `next` (the next panel, or
/// nothing) are fetched into the cache on the way.
#[inline(always)]
fn tile<S: Simd, const MR: usize, const N: usize>(
    simd: S,
    x: &[f32],
    (panel, column, next): (&[f32], usize, &[f32]),
    out: Out,
) {
    let lanes = S::LANES;
    let Out {
        y,
        width,
        first,
        count,
        resume,
        bias,
    } = out;
    // Whole vectors of features are loaded and stored in place; fewer (the last features of
    // a layer whose width is not a multiple of them) go through a buffer.
    let whole = count == N * lanes;
    let vectors = |values: &[f32]| std::array::from_fn(|v| simd.load(&values[v * lanes..]));
    let mut acc = [[simd.splat(0.0); N]; MR];
    if resume {
        for (acc, y) in acc.iter_mut().zip(y.chunks_exact(width)) {
            let mut buffer = [0.0f32; PANEL];
            *acc = vectors(match whole {
                true => &y[first..first + count],
                false => {
                    buffer[..count].copy_from_slice(&y[first..first + count]);
                    &buffer
                }
            });
        }
    }
    for (i, (weights, inputs)) in panel
        .chunks_exact(PANEL)
        .zip(x.chunks_exact(MR))
        .enumerate()
    {
        if !next.is_empty() {
            // The cache lines of the next panel's row `i`.
            for line in (0..PANEL).step_by(16) {
                crate::simd::prefetch(next.get(i * PANEL + line..).unwrap_or_default());
            }
        }
        let weights: [S::V; N] = vectors(&weights[column..column + N * lanes]);
        for (acc, &input) in acc.iter_mut().zip(inputs) {
            let input = simd.splat(input);
            for (acc, &weights) in acc.iter_mut().zip(&weights) {
                *acc = simd.mul_add(input, weights, *acc);
            }
        }
    }
    let bias: Option<[S::V; N]> = bias.map(|bias| {
        let mut buffer = [0.0f32; PANEL];
        buffer[..count].copy_from_slice(bias);
        vectors(&buffer)
    });
    for (acc, y) in acc.iter().zip(y.chunks_exact_mut(width)) {
        let mut buffer = [0.0f32; PANEL];
        let sums = match whole {
            true => &mut y[first..first + count],
            false => &mut buffer[..],
        };
        for (v, &acc) in acc.iter().enumerate() {
            let sum = bias.map_or(acc, |bias| simd.add(acc, bias[v]));
            simd.store(&mut sums[v * lanes..], sum);
        }
        if !whole {
            y[first..first + count].copy_from_slice(&buffer[..count]);
        }
    }
}

/// `out[b][h][n][d] = (W · x[b][n] + b)[h·D + d]`: one projection of the embeddings, split
/// into `H` heads of depth `D` (`W = H·D` features). With `counts`, only the first
/// `counts[b]` tokens of batch entry `b` are projected (the valid queries, or keys, of a layer
/// with valid lengths): the rows after them are left as they are, which no kernel reads.
///
/// ```
/// use attn_runtime::Linear;
/// // Two heads of depth 1: feature 0 is head 0, feature 1 head 1.
/// let linear = Linear::<2, 2>::from_slices("p", &[1.0, 0.0, 0.0, 1.0], None)?;
/// let mut heads = [[[[0.0f32; 1]; 2]; 2]; 1];
/// attn_runtime::__private::project_heads(&[[[3.0, 4.0], [5.0, 6.0]]], &linear, &mut heads, None);
/// assert_eq!(heads, [[[[3.0], [5.0]], [[4.0], [6.0]]]]);
/// // Only the first token of the entry.
/// let mut heads = [[[[0.0f32; 1]; 2]; 2]; 1];
/// attn_runtime::__private::project_heads(&[[[3.0, 4.0], [5.0, 6.0]]], &linear, &mut heads, Some(&[1]));
/// assert_eq!(heads, [[[[3.0], [0.0]], [[4.0], [0.0]]]]);
/// # Ok::<(), attn_runtime::WeightError>(())
/// ```
pub fn project_heads<
    const B: usize,
    const N: usize,
    const DM: usize,
    const W: usize,
    const H: usize,
    const D: usize,
>(
    x: &[[[f32; DM]; N]; B],
    linear: &Linear<DM, W>,
    out: &mut [[[[f32; D]; N]; H]; B],
    counts: Option<&[usize; B]>,
) {
    const {
        assert!(
            W == H * D,
            "a projection to H heads of depth D has H·D features"
        )
    };
    // One product over every entry's tokens that count, gathered when some do not.
    let tokens = |b| counted(counts, b, N);
    let gathered: Vec<[f32; DM]>;
    let input = match counts {
        None => x.as_flattened(),
        Some(_) => {
            gathered = (0..B)
                .flat_map(|b| x[b][..tokens(b)].iter().copied())
                .collect();
            &gathered[..]
        }
    };
    let mut features = vec![[0.0f32; W]; input.len()];
    rows(input, linear, &mut features);
    // Feature h·D + d of token n is lane d of head h's row n.
    let mut features = features.iter();
    for (b, out) in out.iter_mut().enumerate() {
        for (n, token) in (0..tokens(b)).zip(&mut features) {
            for (h, head) in out.iter_mut().enumerate() {
                head[n].copy_from_slice(&token[h * D..][..D]);
            }
        }
    }
}

/// The tokens of batch entry `b` that count: `counts[b]`, at most `n`, or all `n`. A count
/// past `n` is the kernel's error to report (before it writes anything); here it only must
/// not index past the tokens.
fn counted<const B: usize>(counts: Option<&[usize; B]>, b: usize, n: usize) -> usize {
    counts.map_or(n, |counts| counts[b].min(n))
}

/// The heads side by side, `out[b][n][h·D + d] = heads[b][h][n][d]`: the layer's output when
/// it has no output projection. With `counts`, the rows of batch entry `b` from `counts[b]`
/// on are padding, as the attention's rows are: [`pad`] writes them, and the heads' rows
/// there are not read.
///
/// ```
/// let mut out = [[[0.0f32; 2]; 2]; 1];
/// let heads = [[[[3.0], [5.0]], [[4.0], [6.0]]]];
/// attn_runtime::__private::merge_heads(&heads, &mut out, None, None);
/// assert_eq!(out, [[[3.0, 4.0], [5.0, 6.0]]]);
/// attn_runtime::__private::merge_heads(&heads, &mut out, Some(&[1]), None);
/// assert_eq!(out, [[[3.0, 4.0], [0.0, 0.0]]]);
/// ```
pub fn merge_heads<
    const B: usize,
    const N: usize,
    const H: usize,
    const D: usize,
    const W: usize,
>(
    heads: &[[[[f32; D]; N]; H]; B],
    out: &mut [[[f32; W]; N]; B],
    counts: Option<&[usize; B]>,
    written: Option<&[usize]>,
) {
    const { assert!(W == H * D, "H heads of depth D merge into H·D features") };
    for (b, (heads, out)) in heads.iter().zip(out.iter_mut()).enumerate() {
        let tokens = counted(counts, b, N);
        for (h, head) in heads.iter().enumerate() {
            for (row, out) in head[..tokens].iter().zip(out.iter_mut()) {
                out[h * D..][..D].copy_from_slice(row);
            }
        }
    }
    pad(out, counts, written);
}

/// The merged heads through the output projection: `out[b][n] = Wo · merged[b][n] + bo`.
/// With `counts`, the rows of batch entry `b` from `counts[b]` on are padding, not computed
/// (a layer's query rows past their valid count, as its attention's rows are): [`pad`]
/// writes them.
///
/// ```
/// use attn_runtime::Linear;
/// // Sums the two heads, plus 1.
/// let output = Linear::<2, 1>::from_slices("o", &[1.0, 1.0], Some(&[1.0]))?;
/// let mut out = [[[9.0f32; 1]; 2]; 1];
/// let heads = [[[[3.0], [5.0]], [[4.0], [6.0]]]];
/// attn_runtime::__private::merge_heads_project(&heads, &output, &mut out, None, None);
/// assert_eq!(out, [[[8.0], [12.0]]]);
/// attn_runtime::__private::merge_heads_project(&heads, &output, &mut out, Some(&[1]), None);
/// assert_eq!(out, [[[8.0], [0.0]]]);
/// # Ok::<(), attn_runtime::WeightError>(())
/// ```
pub fn merge_heads_project<
    const B: usize,
    const N: usize,
    const H: usize,
    const D: usize,
    const W: usize,
    const DO: usize,
>(
    heads: &[[[[f32; D]; N]; H]; B],
    linear: &Linear<W, DO>,
    out: &mut [[[f32; DO]; N]; B],
    counts: Option<&[usize; B]>,
    written: Option<&[usize]>,
) {
    const { assert!(W == H * D, "H heads of depth D merge into H·D features") };
    // One product over every entry's rows that count.
    let tokens = |b| counted(counts, b, N);
    let mut merged = Vec::with_capacity((0..B).map(tokens).sum());
    for (b, heads) in heads.iter().enumerate() {
        merged.extend((0..tokens(b)).map(|n| {
            let mut row = [0.0f32; W];
            for (h, head) in heads.iter().enumerate() {
                row[h * D..][..D].copy_from_slice(&head[n]);
            }
            row
        }));
    }
    let mut projected = vec![[0.0f32; DO]; merged.len()];
    rows(&merged, linear, &mut projected);
    let mut projected = projected.iter();
    for (b, out) in out.iter_mut().enumerate() {
        out[..tokens(b)]
            .iter_mut()
            .zip(&mut projected)
            .for_each(|(out, row)| *out = *row);
    }
    pad(out, counts, written);
}

/// The padding rows of a layer's output, those of batch entry `b` from `counts[b]` on: 0.
/// `written` (a `ZeroPadded` output's record) says which of them may hold something else,
/// the rows below `written[b]`; without it, all of them.
///
/// ```
/// let mut out = [[[5.0f32; 1]; 3]; 1];
/// // One valid row; the record says rows from 2 on hold zeros, so row 2 is not written.
/// attn_runtime::__private::pad(&mut out, Some(&[1]), Some(&[2]));
/// assert_eq!(out, [[[5.0], [0.0], [5.0]]]);
/// attn_runtime::__private::pad(&mut out, Some(&[1]), None);
/// assert_eq!(out, [[[5.0], [0.0], [0.0]]]);
/// ```
pub fn pad<const B: usize, const N: usize, const W: usize>(
    out: &mut [[[f32; W]; N]; B],
    counts: Option<&[usize; B]>,
    written: Option<&[usize]>,
) {
    for (b, out) in out.iter_mut().enumerate() {
        out[rows_to_clear(counted(counts, b, N), N, written, b)].fill([0.0; W]);
    }
}

#[cfg(test)]
mod tests {
    use super::Product;
    use crate::simd::{Isa, with_isa};

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// `x · Wᵀ + b` on `isa` with at most `threads` threads.
    fn product(
        isa: Isa,
        threads: usize,
        (rows, inputs, outputs): (usize, usize, usize),
        (x, weight, bias): (&[f32], &[f32], Option<&[f32]>),
    ) -> Vec<f32> {
        let mut y = vec![f32::NAN; rows * outputs];
        let packed = super::Packed::new(weight, inputs, outputs);
        let product = Product {
            x,
            rows,
            packed: packed.values(),
            bias,
            inputs,
            outputs,
        };
        let run = || product.run(&mut y);
        #[cfg(feature = "threads")]
        let run = || crate::threads::with_threads(threads, run);
        #[cfg(not(feature = "threads"))]
        let _ = threads;
        with_isa(isa, run).expect("a supported ISA");
        y
    }

    #[test]
    fn products_match_f64_on_every_instruction_set_and_split_and_one_row_alone() {
        // Rows around the tile (6) and block (72) sizes and the few rows kept on one thread
        // (24); inputs around the depth block (128) and past it; outputs around the tiles'
        // widths (8 to 64 features) and the panel's (64) and past them; the larger ones
        // enough work for two threads, the last with rows too few to share.
        let shapes = [
            (1, 1, 1),
            (5, 3, 7),
            (7, 16, 33),
            (23, 40, 70),
            (24, 64, 64),
            (70, 17, 100),
            (130, 96, 40),
            (130, 96, 200),
            (10, 512, 520),
        ];
        for (seed, &(rows, inputs, outputs)) in shapes.iter().enumerate() {
            let seed = seed as u64 * 3;
            let (x, weight) = (
                values(rows * inputs, seed),
                values(outputs * inputs, seed + 1),
            );
            let bias = values(outputs, seed + 2);
            for bias in [None, Some(&bias[..])] {
                let shape = (rows, inputs, outputs);
                let operands = (&x[..], &weight[..], bias);
                let expected: Vec<f64> = (0..rows * outputs)
                    .map(|i| {
                        let (r, o) = (i / outputs, i % outputs);
                        let sum: f64 = (0..inputs)
                            .map(|k| x[r * inputs + k] as f64 * weight[o * inputs + k] as f64)
                            .sum();
                        sum + bias.map_or(0.0, |b| b[o] as f64)
                    })
                    .collect();
                for isa in Isa::supported() {
                    let y = product(isa, 1, shape, operands);
                    for (i, (&y, &e)) in y.iter().zip(&expected).enumerate() {
                        let tolerance = 1e-6 * (inputs as f64 + 1.0);
                        assert!((y as f64 - e).abs() <= tolerance, "{isa:?} {shape:?} [{i}]");
                    }
                    // The same sum in the same order: the same bits on any number of threads
                    // and for a row alone.
                    assert_eq!(
                        product(isa, 2, shape, operands),
                        y,
                        "{isa:?} {shape:?}, 2 threads"
                    );
                    let last = rows - 1;
                    let alone = (&x[last * inputs..], &weight[..], bias);
                    let row = product(isa, 1, (1, inputs, outputs), alone);
                    assert_eq!(
                        row,
                        y[last * outputs..],
                        "{isa:?} {shape:?}, the last row alone"
                    );
                }
            }
        }
    }

    #[test]
    fn a_product_over_no_inputs_is_the_bias() {
        let y = product(
            Isa::Portable,
            1,
            (2, 0, 3),
            (&[], &[], Some(&[1.0, 2.0, 3.0])),
        );
        assert_eq!(y, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        let y = product(Isa::Portable, 1, (1, 0, 2), (&[], &[], None));
        assert_eq!(y, [0.0, 0.0]);
    }
}
