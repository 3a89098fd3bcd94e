use attn_runtime::attention;

attention! {
    /// The layer form's projections have no backward pass.
    #[attn(backward)]
    fn layer<x: [1, 8, 32], q: [1, 2, 8, 16], k: [1, 2, 8, 16], v: [1, 2, 8, 16], out: [1, 8, 32]>;
}

fn main() {}
