use attn_runtime::attention;

attention! {
    // Self-attention: every token of x is a query and a key.
    fn encoder<x: [1, 16, 64], q: [1, 4, 12, 16], k: [1, 4, 16, 16], v: [1, 4, 16, 16]>;
}

fn main() {}
