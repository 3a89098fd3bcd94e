use attn_runtime::attention;

attention! {
    #[attn(dtype = f16)]
    fn half<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
