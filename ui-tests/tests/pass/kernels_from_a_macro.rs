//! A user's macro that stamps out kernels: names, sizes and options passed as `$name:ident`,
//! `$n:expr`, `$n:literal` and `$n:tt` reach the macro inside invisible groups.

use attn_runtime::{Array, attention};

macro_rules! by_expr {
    ($name:ident, $n:expr, $d:expr) => {
        attention! {
            fn $name<q: [1, $n, $d], k: [1, $n, $d], v: [1, $n, $d]>;
        }
    };
}

macro_rules! by_literal {
    ($name:ident, $n:literal, $scale:literal) => {
        attention! {
            #[attn(scale = $scale, causal)]
            fn $name<q: [1, N, 4], k: [1, N, 4], v: [1, N, 4]> where N = $n;
        }
    };
}

macro_rules! by_tt {
    ($name:ident, $($dims:tt)*) => {
        attention! {
            fn $name<q: [$($dims)*], k: [$($dims)*], v: [$($dims)*]>;
        }
    };
}

by_expr!(small, 2, 3);
by_expr!(long, 300, 16);
by_literal!(causal_four, 4, 0.5);
by_tt!(from_tokens, 1, 5, 2);

fn main() {
    let q = [[[1.0f32; 3]; 2]; 1];
    assert_eq!(small(&q, &q, &q), q);
    let x = attn_runtime::Tensor::<[[[f32; 16]; 300]; 1]>::zeros();
    let mut out = attn_runtime::Tensor::<[[[f32; 16]; 300]; 1]>::zeros();
    long_into(&x, &x, &x, &mut out);
    assert_eq!(<[[[f32; 16]; 300]; 1] as Array>::LEN, out.as_flat().len());
    let c = [[[1.0f32; 4]; 4]; 1];
    assert_eq!(causal_four(&c, &c, &c), c);
    let t = [[[2.0f32; 2]; 5]; 1];
    assert_eq!(from_tokens(&t, &t, &t), t);
}
