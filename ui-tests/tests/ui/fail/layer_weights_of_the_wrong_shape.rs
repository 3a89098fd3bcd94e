use attn_runtime::{Linear, attention};

attention! {
    fn encoder<x: [1, N, 64], q: [1, 4, N, 16], k: [1, 4, N, 16], v: [1, 4, N, 16]>;
}

fn main() {
    let x = [[[0.0f32; 64]; 8]; 1];
    let query = Linear::<64, 64>::new(attn_runtime::Tensor::zeros(), None);
    // A key projection to 32 features, where 4 heads of depth 16 need 64.
    let key = Linear::<64, 32>::new(attn_runtime::Tensor::zeros(), None);
    let _ = encoder(&x, &query, &key, &query);
}
