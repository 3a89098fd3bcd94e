//! A padding mask, an ALiBi-style bias per head, and the weights returned beside the output.
use attn_runtime::attention;

attention! {
    #[attn(mask = [B, 1, 1, N], bias = [1, H, N, N], return_weights)]
    fn encoder<q: [B, H, N, 8], k: [B, H, N, 8], v: [B, H, N, 8]>
    where B = 2, H = 2;
}

fn main() {
    let q = [[[[0.5f32; 8]; 3]; 2]; 2];
    let mask = [[[[true, true, false]]], [[[true; 3]]]];
    let bias = [[[[0.0f32; 3]; 3]; 2]];
    let (out, weights) = encoder(&q, &q, &q, &mask, &bias);
    assert_eq!(weights[0][1][2], [0.5, 0.5, 0.0]);
    assert_eq!(out[1][0][0], [0.5; 8]);
}
