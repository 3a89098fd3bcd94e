use attn_runtime::attention;

attention! {
    fn unused<q: [1, 2, Dk], k: [1, 4, Dk], v: [1, 4, 3]>
    where Dk = 3, Dx = 3;
}

fn main() {}
