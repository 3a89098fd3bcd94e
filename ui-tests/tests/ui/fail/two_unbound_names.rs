use attn_runtime::attention;

attention! {
    fn two_names<q: [1, N, Dk], k: [1, M, Dq], v: [1, M, 8]>;
}

fn main() {}
