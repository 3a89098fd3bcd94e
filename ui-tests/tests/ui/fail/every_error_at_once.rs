use attn_runtime::attention;

attention! {
    fn many<q: [6, 2, 3], k: [7, 4, 5], v: [7, 9, 3]>;
}

fn main() {}
