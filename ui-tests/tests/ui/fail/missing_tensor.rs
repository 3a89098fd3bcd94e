use attn_runtime::attention;

attention! {
    fn no_values<q: [1, 2, 3], k: [1, 4, 3]>;
}

fn main() {}
