//! An `_into` kernel overwrites its output, whatever the buffer held: the tiled kernels do not
//! zero it first (the first block of keys a tile sees writes its rows), so rows that see no
//! key, tiles that skip blocks and rows of a padded tail must all come out as with a zeroed
//! buffer, bit for bit.

use attn_runtime::simd::with_isa;
use attn_runtime::{Array, Tensor, attention};
use attn_tests::Rng;

attention! {
    /// Tiled, with a short last key block and a tail tile of 4 rows.
    fn plain<q: [2, 40, 16], k: [2, 100, 16], v: [2, 100, 8]>;
    /// The first 30 queries see no key.
    #[attn(causal(bottom_right))]
    fn more_queries<q: [1, 50, 16], k: [1, 20, 16], v: [1, 20, 16]>;
    /// Later tiles skip the first key blocks.
    #[attn(causal, window = 20)]
    fn window<q: [1, 200, 16], k: [1, 200, 16], v: [1, 200, 16]>;
    /// Batch entry 0 has no valid key.
    #[attn(valid_lengths)]
    fn padded<q: [2, 20, 16], k: [2, 100, 16], v: [2, 100, 8]>;
    /// One query (values read in place), batch entry 0 with no valid key.
    #[attn(valid_lengths, causal(bottom_right))]
    fn decode<q: [2, 1, 1, 32], k: [2, 1, 64, 32], v: [2, 1, 64, 32]>;
}

/// Inputs of a kernel's shapes.
fn inputs<Q: Array<Element = f32>, K: Array<Element = f32>, V: Array<Element = f32>>(
    seed: u64,
) -> (Tensor<Q>, Tensor<K>, Tensor<V>) {
    let mut rng = Rng::new(seed);
    (rng.tensor(1.0), rng.tensor(1.0), rng.tensor(1.0))
}

/// Runs `kernel` into a zeroed buffer and into one full of NaN, on every instruction set,
/// and checks that both give the same bits.
fn same_whatever_the_buffer<O: Array<Element = f32>>(what: &str, kernel: impl Fn(&mut Tensor<O>)) {
    for isa in attn_tests::instruction_sets() {
        let mut zeroed = Tensor::<O>::zeros();
        let mut dirty = Tensor::<O>::from_vec(vec![f32::NAN; O::LEN]).unwrap();
        with_isa(isa, || {
            kernel(&mut zeroed);
            kernel(&mut dirty);
        })
        .unwrap();
        let bits = |t: &Tensor<O>| t.as_flat().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            zeroed.as_flat().iter().all(|x| x.is_finite()),
            "{what} on {isa}: {:?}",
            zeroed.as_flat()
        );
        assert_eq!(bits(&zeroed), bits(&dirty), "{what} on {isa}");
    }
}

#[test]
fn a_tiled_kernel_overwrites_its_output() {
    let (q, k, v) = inputs(1);
    same_whatever_the_buffer("plain", |out| plain_into(&q, &k, &v, out));
}

#[test]
fn rows_that_see_no_key_come_out_zero() {
    let (q, k, v) = inputs(2);
    same_whatever_the_buffer("more queries than keys", |out| {
        more_queries_into(&q, &k, &v, out)
    });
    let mut out = Tensor::from_vec(vec![f32::NAN; 50 * 16]).unwrap();
    more_queries_into(&q, &k, &v, &mut out);
    assert!(out.as_flat()[..30 * 16].iter().all(|&x| x == 0.0));
}

#[test]
fn tiles_that_skip_key_blocks_are_written_by_their_first() {
    let (q, k, v) = inputs(3);
    same_whatever_the_buffer("window", |out| window_into(&q, &k, &v, out));
}

#[test]
fn entries_without_valid_keys_come_out_zero() {
    let (q, k, v) = inputs(4);
    same_whatever_the_buffer("padded", |out| {
        padded_into(&q, &k, &v, &[0, 37], out).unwrap()
    });
    let (q, k, v) = inputs(5);
    same_whatever_the_buffer("decode", |out| {
        decode_into(&q, &k, &v, &[0, 40], out).unwrap()
    });
}
