use attn_runtime::attention;

attention! {
    #[attn(window = 256)]
    fn local<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;
}

fn main() {}
