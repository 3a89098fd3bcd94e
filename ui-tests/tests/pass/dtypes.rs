//! f64 all in f64; f16 and bf16 stored, computed in f32.
use attn_runtime::attention;
use attn_runtime::half::{bf16, f16};

attention! {
    #[attn(dtype = f64)]
    fn precise<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
    #[attn(dtype = f16, return_lse)]
    fn half<q: [1, 2, N, 8], k: [1, 2, N, 8], v: [1, 2, N, 8]>;
    #[attn(dtype = bf16)]
    fn brain<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {
    let out: [[[f64; 3]; 2]; 1] = precise(&[[[0.0; 3]; 2]], &[[[1.0; 3]; 4]], &[[[2.0; 3]; 4]]);
    assert_eq!(out, [[[2.0; 3]; 2]]);
    let x = [[[[f16::ONE; 8]; 5]; 2]];
    let (out, lse): ([[[[f16; 8]; 5]; 2]; 1], [[[f32; 5]; 2]; 1]) = half(&x, &x, &x);
    assert_eq!(out[0][1][4][7], f16::ONE);
    assert!((lse[0][0][0] - 5f32.ln() - 8f32.sqrt()).abs() < 1e-5);
    let b = [[[bf16::ONE; 3]; 4]];
    assert_eq!(brain(&[[[bf16::ZERO; 3]; 2]], &b, &b), [[[bf16::ONE; 3]; 2]]);
}
