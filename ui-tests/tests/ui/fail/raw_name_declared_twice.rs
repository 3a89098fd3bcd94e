use attn_runtime::attention;

attention! {
    fn step<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
    fn r#step<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
