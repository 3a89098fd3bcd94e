//! The planner's choices, and the promise that code size does not grow with the sequence.

use super::{errors, expand};

fn tokens(source: &str) -> usize {
    fn count(stream: proc_macro2::TokenStream) -> usize {
        stream
            .into_iter()
            .map(|tree| match tree {
                proc_macro2::TokenTree::Group(group) => 1 + count(group.stream()),
                _ => 1,
            })
            .sum()
    }
    let output = expand(source);
    assert!(errors(&output).is_empty(), "{:?}", errors(&output));
    count(output)
}

#[test]
fn tiled_code_does_not_grow_with_the_sequence_lengths() {
    let short = tokens("fn f<q: [1, 128, 64], k: [1, 128, 64], v: [1, 128, 64]>;");
    let long = tokens("fn f<q: [1, 16384, 64], k: [1, 16384, 64], v: [1, 16384, 64]>;");
    let generic = tokens("fn f<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;");
    assert_eq!(short, long);
    assert!(generic.abs_diff(long) < 16, "{generic} vs {long}");
}

#[test]
fn unrolled_code_is_bounded_by_the_unroll_limit() {
    // 8 x 8 x (8 + 8) = 1024 multiply-adds: the largest unrolled kernel of this shape family.
    let at_limit = expand("fn f<q: [1, 8, 8], k: [1, 8, 8], v: [1, 8, 8]>;").to_string();
    let past_limit = expand("fn f<q: [1, 9, 8], k: [1, 8, 8], v: [1, 8, 8]>;").to_string();
    assert!(
        at_limit.contains("'batch_0_query_7"),
        "unrolled at the limit"
    );
    assert!(past_limit.contains("Tiled ::"), "tiled past the limit");
    assert!(tokens("fn f<q: [1, 8, 8], k: [1, 8, 8], v: [1, 8, 8]>;") < 30_000);
}

#[test]
fn blocks_shrink_to_small_known_sizes() {
    let text = expand("fn f<q: [1, 2, 300], k: [1, 40, 300], v: [1, 40, 300]>;").to_string();
    // Rounded up to a whole tile of 6 rows; keys in blocks of 32, a divisor of 64 (depth 300
    // allows no more than 54), not shortened to 16 below the 40 keys there are.
    assert!(text.contains("const QUERY_BLOCK : usize = 6"), "{text}");
    assert!(text.contains("const KEY_BLOCK : usize = 32"), "{text}");
    let text = expand("fn f<q: [1, 8, 16], k: [1, 20, 16], v: [1, 20, 16]>;").to_string();
    assert!(text.contains("const KEY_BLOCK : usize = 32"), "{text}");
}

#[test]
fn deep_keys_get_shorter_key_blocks() {
    // 16 Ki floats of packed keys at most: depth 1024 packs 16 keys at a time.
    let text = expand("fn f<q: [1, 8, 1024], k: [1, N, 1024], v: [1, N, 64]>;").to_string();
    assert!(text.contains("const KEY_BLOCK : usize = 16"), "{text}");
    let text = expand("fn f<q: [1, 8, 256], k: [1, N, 256], v: [1, N, 64]>;").to_string();
    assert!(text.contains("const KEY_BLOCK : usize = 64"), "{text}");
}
