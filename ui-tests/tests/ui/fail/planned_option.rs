use attn_runtime::attention;

attention! {
    #[attn(return_weights)]
    fn masked<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
