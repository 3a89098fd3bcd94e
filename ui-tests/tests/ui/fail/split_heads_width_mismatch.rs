use attn_runtime::attention;

attention! {
    // As nn.MultiheadAttention: a width of 64 splits into 4 heads of depth 16, not 12.
    #[attn(split_heads)]
    fn encoder<x: [1, N, 64], q: [1, 4, N, 12], k: [1, 4, N, 12], v: [1, 4, N, 12], out: [1, N, 64]>;
}

fn main() {}
