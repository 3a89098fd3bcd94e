use attn_runtime::attention;

attention! {
    #[attn(causal(top_right))]
    fn masked<q: [1, 2, 8], k: [1, 16, 8], v: [1, 16, 8]>;
}

fn main() {}
