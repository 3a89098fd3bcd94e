//! Tiled kernels read a block of values in place when its rows start on cache lines (a
//! `Tensor`'s rows of 16 f32 or a multiple) and copy it to an aligned buffer otherwise: both
//! must give the reference's result, bit for bit the same.

use attn_runtime::{Tensor, attention};
use attn_tests::{Problem, Rng, accurate_on_every_isa};

attention! {
    /// Tiled, rows of 64 values, a short last key block.
    fn wide<q: [2, 40, 32], k: [2, 150, 32], v: [2, 150, 64]>;
}

/// Values 16 bytes past a cache line: every row off a line, so the kernel copies them.
#[repr(C, align(64))]
struct OffLine {
    _pad: [f32; 4],
    values: [[[f32; 64]; 150]; 2],
}

#[test]
fn values_in_place_and_copied_give_the_same_bits() {
    let mut rng = Rng::new(11);
    let q = rng.tensor::<[[[f32; 32]; 40]; 2]>(1.0);
    let k = rng.tensor::<[[[f32; 32]; 150]; 2]>(1.0);
    let v = rng.tensor::<[[[f32; 64]; 150]; 2]>(1.0);
    let off = Box::new(OffLine {
        _pad: [0.0; 4],
        values: *v,
    });
    assert_eq!(v.as_flat().as_ptr().addr() % 64, 0);
    assert_eq!(off.values.as_ptr().addr() % 64, 16);
    let problem = Problem::with_default_scale(2, 40, 150, 32, 64);
    let inputs = [q.as_flat(), k.as_flat(), v.as_flat()];
    type Out = Tensor<[[[f32; 64]; 40]; 2]>;
    let in_place = accurate_on_every_isa("values in place", &problem, inputs, |out: &mut Out| {
        wide_into(&q, &k, &v, out)
    });
    let copied = accurate_on_every_isa("values copied", &problem, inputs, |out: &mut Out| {
        wide_into(&q, &k, &off.values, out)
    });
    let bits = |t: &Out| t.as_flat().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for ((isa, in_place), (_, copied)) in in_place.iter().zip(&copied) {
        assert_eq!(bits(in_place), bits(copied), "{isa}");
    }
}
