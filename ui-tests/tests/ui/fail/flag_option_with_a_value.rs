use attn_runtime::attention;

attention! {
    // return_weights, return_lse, valid_lengths and split_heads are bare words.
    #[attn(return_weights = true)]
    fn weighted<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
