//! A kernel's facts module is named after it: kernels named like the constants and const
//! generics of the generated code still compile.

#![allow(non_snake_case)]

use attn_runtime::attention;

attention! {
    fn DEPTH<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
    fn KEY_BLOCK<q: [1, N, 3], k: [1, N, 3], v: [1, N, 3]>;
    fn N<q: [1, N, 3], k: [1, N, 3], v: [1, N, 3]>;
}

fn main() {
    let q = [[[1.0f32; 3]; 2]; 1];
    let k = [[[1.0f32; 3]; 4]; 1];
    assert_eq!(DEPTH(&q, &k, &k), q);
    assert_eq!(KEY_BLOCK(&q, &q, &q), q);
    assert_eq!(N(&q, &q, &q), q);
}
