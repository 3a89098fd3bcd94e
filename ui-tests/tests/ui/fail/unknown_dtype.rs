use attn_runtime::attention;

attention! {
    #[attn(dtype = f8)]
    fn tiny<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
