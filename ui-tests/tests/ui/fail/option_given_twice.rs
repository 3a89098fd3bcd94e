use attn_runtime::attention;

attention! {
    #[attn(causal, scale = 0.5)]
    #[attn(causal(top_left))]
    fn twice<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
