use attn_runtime::attention;

attention! {
    fn encoder<x: [1, 4, 8], q: [1, 2, 4, 4], k: [1, 2, 4, 4], v: [1, 2, 4, 4], out: [1, 4, 8]>;
    // The layer `encoder` already defines `encoder_attention`, its attention.
    fn encoder_attention<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
