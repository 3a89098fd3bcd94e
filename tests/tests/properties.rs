//! Properties of attention that hold for any input: the weights form a distribution, and
//! permuting the keys and values together changes nothing.

use attn_runtime::{Tensor, attention};
use attn_tests::Rng;

attention! {
    /// Values of depth Nk: with v the identity, the output row is the weight row.
    fn weights_of<q: [1, Nq, 16], k: [1, Nk, 16], v: [1, Nk, Nk]>;
    /// Unrolled, for the same property on the other plan.
    fn weights_small<q: [1, 3, 4], k: [1, 5, 4], v: [1, 5, 5]>;
    fn permuted<q: [2, 2, Nq, 8], k: [2, 2, Nk, 8], v: [2, 2, Nk, 6]>;
}

#[test]
fn weights_are_a_distribution() {
    for seed in 0..20u64 {
        let mut rng = Rng::new(seed);
        let magnitude = [0.1, 1.0, 10.0, 100.0][seed as usize % 4];
        let q = Tensor::<[[[f32; 16]; 9]; 1]>::from_vec(rng.values(9 * 16, magnitude)).unwrap();
        let k = Tensor::<[[[f32; 16]; 70]; 1]>::from_vec(rng.values(70 * 16, magnitude)).unwrap();
        let mut v = Tensor::<[[[f32; 70]; 70]; 1]>::zeros();
        for (j, row) in v[0].iter_mut().enumerate() {
            row[j] = 1.0;
        }
        let mut weights = Tensor::<[[[f32; 70]; 9]; 1]>::zeros();
        weights_of_into(&q, &k, &v, &mut weights);
        for row in &weights[0] {
            assert!(row.iter().all(|&w| (0.0..=1.0).contains(&w)), "{row:?}");
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "a weight row sums to {sum}");
        }
    }
    let mut rng = Rng::new(99);
    let mut q = [[[0.0; 4]; 3]; 1];
    let mut k = [[[0.0; 4]; 5]; 1];
    q[0].iter_mut()
        .flatten()
        .for_each(|x| *x = rng.uniform(3.0));
    k[0].iter_mut()
        .flatten()
        .for_each(|x| *x = rng.uniform(3.0));
    let mut v = [[[0.0; 5]; 5]; 1];
    for (j, row) in v[0].iter_mut().enumerate() {
        row[j] = 1.0;
    }
    for row in weights_small(&q, &k, &v)[0] {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}

#[test]
fn permuting_keys_and_values_together_changes_nothing() {
    const NQ: usize = 7;
    const NK: usize = 130;
    for seed in 0..5u64 {
        let mut rng = Rng::new(1000 + seed);
        let q = rng.tensor::<[[[[f32; 8]; NQ]; 2]; 2]>(2.0);
        let k = rng.tensor::<[[[[f32; 8]; NK]; 2]; 2]>(2.0);
        let v = rng.tensor::<[[[[f32; 6]; NK]; 2]; 2]>(1.0);
        // A random permutation of the keys, the same for every batch entry and head.
        let mut order: Vec<usize> = (0..NK).collect();
        for i in (1..NK).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut k2 = k.clone();
        let mut v2 = v.clone();
        for b in 0..2 {
            for h in 0..2 {
                for (to, &from) in order.iter().enumerate() {
                    k2[b][h][to] = k[b][h][from];
                    v2[b][h][to] = v[b][h][from];
                }
            }
        }
        let mut out = Tensor::<[[[[f32; 6]; NQ]; 2]; 2]>::zeros();
        let mut out2 = Tensor::<[[[[f32; 6]; NQ]; 2]; 2]>::zeros();
        permuted_into(&q, &k, &v, &mut out);
        permuted_into(&q, &k2, &v2, &mut out2);
        for (x, y) in out.as_flat().iter().zip(out2.as_flat()) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }
}
