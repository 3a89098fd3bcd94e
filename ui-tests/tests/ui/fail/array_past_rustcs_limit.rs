use attn_runtime::attention;

attention! {
    /// 2^54 keys of depth 64 in f32: 2^62 bytes, past rustc's 2^61 on a 64-bit target.
    fn huge<q: [1, 1, 64], k: [1, 18014398509481984, 64], v: [1, 18014398509481984, 1]>;
}

fn main() {}
