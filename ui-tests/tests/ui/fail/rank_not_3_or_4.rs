use attn_runtime::attention;

attention! {
    fn flat<q: [1, 2], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
