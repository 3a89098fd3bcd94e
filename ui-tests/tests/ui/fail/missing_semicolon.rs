use attn_runtime::attention;

attention! {
    fn last<q: [B, 2, 3], k: [B, 4, 3], v: [B, 4, 3]>
    where B = 1
}

fn main() {}
