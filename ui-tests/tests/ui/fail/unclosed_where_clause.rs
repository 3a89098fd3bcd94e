use attn_runtime::attention;

attention! {
    fn first<q: [B, 2, 3], k: [B, 4, 3], v: [B, 4, 3]>
    where B = 1

    fn second<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
