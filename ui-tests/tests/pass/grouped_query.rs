use attn_runtime::attention;

attention! {
    /// Grouped-query attention: 8 query heads share 2 key/value heads.
    pub fn grouped<q: [1, 8, N, 16], k: [1, 2, N, 16], v: [1, 2, N, 16]>;

    /// Multi-query attention: one key/value head for all.
    pub fn multi_query<q: [1, 4, 2, 4], k: [1, 1, 3, 4], v: [1, 1, 3, 4]>;

    /// Head counts left to the call, checked when it is compiled.
    pub fn any_heads<q: [1, Hq, 4, 8], k: [1, Hkv, 4, 8], v: [1, Hkv, 4, 8]>;

    /// Query heads left to the call over 2 known key/value heads, and the other way round.
    pub fn any_query_heads<q: [1, Hq, 4, 8], k: [1, 2, 4, 8], v: [1, 2, 4, 8]>;
    pub fn any_key_heads<q: [1, 6, 4, 8], k: [1, Hkv, 4, 8], v: [1, Hkv, 4, 8]>;
}

fn main() {
    let q = [[[[1.0f32; 16]; 3]; 8]];
    let kv = [[[[1.0f32; 16]; 3]; 2]];
    assert_eq!(grouped(&q, &kv, &kv)[0][7][2], [1.0; 16]);
    let _ = multi_query(&[[[[0.0; 4]; 2]; 4]], &[[[[0.0; 4]; 3]]], &[[[[0.0; 4]; 3]]]);
    let _ = any_heads(&[[[[0.0; 8]; 4]; 6]], &[[[[0.0; 8]; 4]; 3]], &[[[[0.0; 8]; 4]; 3]]);
    let _ = any_query_heads(&[[[[0.0; 8]; 4]; 4]], &[[[[0.0; 8]; 4]; 2]], &[[[[0.0; 8]; 4]; 2]]);
    let _ = any_key_heads(&[[[[0.0; 8]; 4]; 6]], &[[[[0.0; 8]; 4]; 3]], &[[[[0.0; 8]; 4]; 3]]);
}
