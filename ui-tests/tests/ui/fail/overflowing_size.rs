use attn_runtime::attention;

attention! {
    fn huge<q: [1, 2, 3], k: [1, 99999999999999999999, 3], v: [1, 4, 3]>;
}

fn main() {}
