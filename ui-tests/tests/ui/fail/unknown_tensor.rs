use attn_runtime::attention;

attention! {
    fn typo<q: [1, 2, 3], k: [1, 4, 3], w: [1, 4, 3]>;
}

fn main() {}
