//! Tiled kernels read a block of values in place when its rows start on cache lines (a
//! `Tensor`'s rows of 16 f32 or a multiple) and copy it to an aligned buffer otherwise: both
//! must give the reference's result, bit for bit the same.

use attn_runtime::simd::{Isa, with_isa};
use attn_runtime::{Tensor, attention};
use attn_tests::{Problem, Rng, assert_accurate};

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
    for isa in Isa::supported() {
        let mut in_place = Tensor::<[[[f32; 64]; 40]; 2]>::zeros();
        let mut copied = Tensor::<[[[f32; 64]; 40]; 2]>::zeros();
        with_isa(isa, || wide_into(&q, &k, &v, &mut in_place)).unwrap();
        with_isa(isa, || wide_into(&q, &k, &off.values, &mut copied)).unwrap();
        let what = format!("values in place on {isa}");
        assert_accurate(
            &what,
            &problem,
            q.as_flat(),
            k.as_flat(),
            v.as_flat(),
            in_place.as_flat(),
        );
        let bits = |t: &Tensor<[[[f32; 64]; 40]; 2]>| {
            t.as_flat().iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(bits(&in_place), bits(&copied), "{isa}");
    }
}
