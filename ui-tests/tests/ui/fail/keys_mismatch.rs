use attn_runtime::attention;

attention! {
    fn keys<q: [1, 2, 3], k: [1, 4, 3], v: [1, 9, 3]>;
}

fn main() {}
