use attn_runtime::attention;

attention! {
    #[attn(scale = 1e-50)]
    fn scaled<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
