use attn_runtime::attention;

attention! {
    fn fractional<q: [1, 3.5, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
