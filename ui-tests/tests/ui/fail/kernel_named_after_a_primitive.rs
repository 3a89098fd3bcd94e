use attn_runtime::attention;

attention! {
    fn f32<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
