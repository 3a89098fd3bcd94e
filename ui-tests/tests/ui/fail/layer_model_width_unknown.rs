use attn_runtime::attention;

attention! {
    // The weights are [H·Dh, Dm]: their sizes are fixed by the model.
    fn encoder<x: [1, N, Dm], q: [1, 4, N, 16], k: [1, 4, N, 16], v: [1, 4, N, 16]>;
}

fn main() {}
