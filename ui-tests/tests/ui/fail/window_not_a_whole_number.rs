use attn_runtime::attention;

attention! {
    #[attn(causal, window = 2.0)]
    fn windowed<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
