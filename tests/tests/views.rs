//! Views of flat slices as the nested arrays kernels take: in place, for every element type
//! and masks, and a `ShapeError` naming the shape and both counts for a wrong length.

use attn_runtime::half::{bf16, f16};
use attn_runtime::{ShapeError, attention, view, view_mut};

attention! {
    /// A mask read from a flat `Vec<bool>`, as data from another library arrives.
    #[attn(mask = [1, 2, 4])]
    fn masked<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

#[test]
fn a_view_is_the_slice_itself() {
    let values: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let array: &[[[f32; 4]; 3]; 2] = view(&values).unwrap();
    assert_eq!(array[1][2][3], 23.0);
    assert_eq!(array[0][1][0], 4.0);
    assert!(std::ptr::eq(array.as_ptr().cast::<f32>(), values.as_ptr()));
    let mut out = vec![0.0f64; 6];
    let rows: &mut [[f64; 3]; 2] = view_mut(&mut out).unwrap();
    rows[1][2] = 5.0;
    assert_eq!(out[5], 5.0);
}

#[test]
fn every_element_type_has_views() {
    let halves = vec![f16::ONE; 8];
    assert_eq!(view::<[[f16; 4]; 2]>(&halves).unwrap()[1][3], f16::ONE);
    let brains = vec![bf16::ZERO; 3];
    assert_eq!(view::<[bf16; 3]>(&brains).unwrap(), &[bf16::ZERO; 3]);
    let keep = vec![true, false, true, true, false, false, true, true];
    let mask: &[[[bool; 4]; 2]; 1] = view(&keep).unwrap();
    assert_eq!(mask[0][1], [false, false, true, true]);
    let q = vec![0.0f32; 6];
    let kv: Vec<f32> = (0..12).map(|i| i as f32).collect();
    // Queries of zeros score every key alike: each row averages the values it keeps, keys
    // 0, 2 and 3 for the first, 2 and 3 for the second (value j is [3j, 3j + 1, 3j + 2]).
    let out = masked(
        view(&q).unwrap(),
        view(&kv).unwrap(),
        view(&kv).unwrap(),
        mask,
    );
    for (row, expected) in out[0].iter().zip([[5.0, 6.0, 7.0], [7.5, 8.5, 9.5]]) {
        for (x, e) in row.iter().zip(expected) {
            assert!((x - e).abs() < 1e-5, "{row:?} against {expected:?}");
        }
    }
}

#[test]
fn a_wrong_length_names_the_shape_and_both_counts() {
    for len in [0, 5, 7, 12] {
        let values = vec![0.0f32; len];
        let error = view::<[[f32; 3]; 2]>(&values).unwrap_err();
        assert_eq!(
            error,
            ShapeError {
                shape: vec![2, 3],
                expected: 6,
                actual: len
            }
        );
        let mut values = values;
        assert_eq!(
            view_mut::<[[f32; 3]; 2]>(&mut values).unwrap_err().actual,
            len
        );
    }
    let error = view::<[[bool; 4]; 2]>(&[true; 6]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "a tensor of shape [2, 4] holds 8 values, but 6 were given"
    );
}
