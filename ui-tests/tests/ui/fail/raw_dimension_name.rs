use attn_runtime::attention;

attention! {
    fn raw<q: [1, r#N, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
