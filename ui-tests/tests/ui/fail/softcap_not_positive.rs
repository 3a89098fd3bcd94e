use attn_runtime::attention;

attention! {
    #[attn(softcap = -30.0)]
    fn capped<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
