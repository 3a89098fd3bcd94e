//! Each rule of docs/DESIGN.md section 3 and each malformed-input family: the message, and the token
//! it points at.

use super::{errors, expand, position};

/// Expects exactly these errors: (a fragment of the message, the token it must point at,
/// which occurrence of that token).
fn expect(source: &str, expected: &[(&str, &str, usize)]) {
    let output = expand(source);
    let found = errors(&output);
    let summary = format!("{found:#?}");
    assert_eq!(found.len(), expected.len(), "errors of {source}: {summary}");
    for (error, (fragment, token, nth)) in found.iter().zip(expected) {
        assert!(
            error.message.contains(fragment),
            "expected {fragment:?} in {:?}",
            error.message
        );
        assert_eq!(
            error.at,
            position(source, token, *nth),
            "{fragment:?} should point at {token:?} #{nth}: {summary}"
        );
        assert!(
            error.message.contains("\nhelp: "),
            "no help in {:?}",
            error.message
        );
    }
}

#[test]
fn the_textbook_kernel_is_valid() {
    expect(
        "pub fn seed_example<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>
         where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;",
        &[],
    );
}

#[test]
fn rank_must_be_three_or_four() {
    expect(
        "fn f<q: [1, 2], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[(
            "`q` has rank 2, but attention tensors have rank 3 or 4",
            "[1, 2]",
            0,
        )],
    );
}

#[test]
fn ranks_must_agree() {
    expect(
        "fn f<q: [1, 2, 3], k: [1, 1, 4, 3], v: [1, 4, 3]>;",
        &[("`k` has rank 4 but `q` has rank 3", "[1, 1, 4, 3]", 0)],
    );
}

#[test]
fn batch_sizes_must_agree() {
    expect(
        "fn f<q: [6, 2, 3], k: [7, 4, 3], v: [7, 4, 3]>;",
        &[("`q` has batch 6 but `k` has batch 7", "7", 0)],
    );
}

#[test]
fn query_heads_are_a_multiple_of_key_value_heads() {
    expect(
        "fn f<q: [1, H, 2, 3], k: [1, 5, 4, 3], v: [1, 5, 4, 3]> where H = 6;",
        &[(
            "`q` has `H` = 6 heads, which is not a multiple of `k`'s 5 heads",
            "5",
            0,
        )],
    );
    expect(
        "fn f<q: [1, 6, 2, 3], k: [1, 2, 4, 3], v: [1, 2, 4, 3]>;",
        &[],
    );
    expect(
        "fn f<q: [1, 6, 2, 3], k: [1, 2, 4, 3], v: [1, 3, 4, 3]>;",
        &[("`k` has 2 heads but `v` has 3", "3", 2)],
    );
}

#[test]
fn q_and_k_depths_must_agree() {
    expect(
        "fn f<q: [B, Nq, Dk], k: [B, Nk, 5], v: [B, Nk, 3]> where B = 1, Nq = 2, Nk = 4, Dk = 3;",
        &[("`q` has depth `Dk` = 3 but `k` has depth 5", "5", 0)],
    );
}

#[test]
fn k_and_v_key_counts_must_agree() {
    expect(
        "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 9, 3]>;",
        &[("`k` has 4 keys but `v` has 9", "9", 0)],
    );
}

#[test]
fn every_violation_is_reported_at_once() {
    expect(
        "fn f<q: [6, 2, 3], k: [7, 4, 5], v: [7, 9, 3]>;",
        &[
            ("`q` has batch 6 but `k` has batch 7", "7", 0),
            ("`q` has depth 3 but `k` has depth 5", "5", 0),
            ("`k` has 4 keys but `v` has 9", "9", 0),
        ],
    );
}

#[test]
fn two_unbound_names_on_one_axis_are_an_error() {
    expect(
        "fn f<q: [1, N, Dk], k: [1, M, Dq], v: [1, M, 3]>;",
        &[("`q` has depth `Dk` but `k` has depth `Dq`", "Dq", 0)],
    );
}

#[test]
fn unbound_names_take_the_size_of_the_axis_they_are_tied_to() {
    let output = expand("fn f<q: [1, 2, D], k: [1, N, 3], v: [1, 4, 3]>;");
    assert!(errors(&output).is_empty());
    let text = output.to_string();
    // D = 3 from k's depth and N = 4 from v's keys: nothing is left to a const generic.
    assert!(!text.contains("const D :"), "{text}");
    assert!(text.contains("pub const INFO"), "{text}");
}

#[test]
fn a_name_bound_twice_is_an_error() {
    expect(
        "fn f<q: [1, 2, Dk], k: [1, 4, Dk], v: [1, 4, 3]> where Dk = 3, Dk = 4;",
        &[("`Dk` is bound twice", "Dk", 3)],
    );
}

#[test]
fn an_unused_binding_is_an_error_with_a_suggestion() {
    expect(
        "fn f<q: [1, 2, Dk], k: [1, 4, Dk], v: [1, 4, 3]> where Dx = 3;",
        &[("`Dx` is bound but no tensor uses it", "Dx", 0)],
    );
    let output = expand("fn f<q: [1, 2, Dk], k: [1, 4, Dk], v: [1, 4, 3]> where Dx = 3;");
    assert!(errors(&output)[0].message.contains("did you mean `Dk`?"));
}

#[test]
fn sizes_are_positive_integers_that_fit() {
    expect(
        "fn f<q: [1, 3.5, 3], k: [1, -4, 3], v: [1, 0, 99999999999999999999]>;",
        &[
            ("`3.5` is not an integer", "3.5", 0),
            ("`-4` is negative", "-", 0),
            ("a size of 0", "0", 0),
            (
                "`99999999999999999999` is too large for a size",
                "99999999999999999999",
                0,
            ),
        ],
    );
}

#[test]
fn element_counts_must_fit_in_isize() {
    expect(
        "fn f<q: [1, 4294967296, 4294967296], k: [1, 4, 4294967296], v: [1, 4, 3]>;",
        &[(
            "q would hold more than 2^64 values",
            "[1, 4294967296, 4294967296]",
            0,
        )],
    );
}

#[test]
fn a_binding_must_be_a_valid_size() {
    expect(
        "fn f<q: [1, 2, D], k: [1, 4, D], v: [1, 4, 3]> where D = 3.0;",
        &[("`3.0` is not an integer", "3.0", 0)],
    );
}

#[test]
fn unknown_tensors_suggest_the_missing_one() {
    expect(
        "fn f<q: [1, 2, 3], k: [1, 4, 3], w: [1, 4, 3]>;",
        &[("unknown tensor `w`", "w", 0)],
    );
    let output = expand("fn f<q: [1, 2, 3], k: [1, 4, 3], w: [1, 4, 3]>;");
    assert!(errors(&output)[0].message.contains("did you mean `v`?"));
}

#[test]
fn a_missing_tensor_is_reported_at_the_closing_angle() {
    expect(
        "fn f<q: [1, 2, 3], k: [1, 4, 3]>;",
        &[("kernel `f` declares no `v` tensor", ">", 0)],
    );
}

#[test]
fn a_tensor_declared_twice_is_an_error() {
    expect(
        "fn f<q: [1, 2, 3], k: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("`k` is declared twice", "k", 1)],
    );
}

#[test]
fn tensors_come_in_the_order_q_k_v() {
    expect(
        "fn f<k: [1, 4, 3], q: [1, 2, 3], v: [1, 4, 3]>;",
        &[("declared in the order k, q, v", "k", 0)],
    );
}

#[test]
fn unknown_options_suggest_a_known_one() {
    expect(
        "#[attn(casual)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("unknown option `casual`", "casual", 0)],
    );
    let output = expand("#[attn(casual)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;");
    assert!(
        errors(&output)[0]
            .message
            .contains("did you mean `causal`?")
    );
}

#[test]
fn an_unknown_option_far_from_any_lists_the_options() {
    expect(
        "#[attn(flash)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("unknown option `flash`", "flash", 0)],
    );
    let output = expand("#[attn(flash)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;");
    assert!(
        errors(&output)[0]
            .message
            .contains("help: the options available now are: scale, causal")
    );
}

#[test]
fn plain_causal_needs_as_many_queries_as_keys() {
    expect(
        "#[attn(causal)] fn f<q: [1, Nq, 3], k: [1, 4, 3], v: [1, 4, 3]> where Nq = 2;",
        &[("`q` has `Nq` = 2 queries and `k` has 4 keys", "causal", 0)],
    );
    expect(
        "#[attn(causal)] fn f<q: [1, N, 3], k: [1, M, 3], v: [1, M, 3]>;",
        &[("`causal` needs as many queries as keys", "causal", 0)],
    );
    expect(
        "#[attn(causal)] fn f<q: [1, N, 3], k: [1, N, 3], v: [1, N, 3]>;",
        &[],
    );
    expect(
        "#[attn(causal(bottom_right))] fn f<q: [1, 1, 3], k: [1, N, 3], v: [1, N, 3]>;",
        &[],
    );
}

#[test]
fn return_lse_adds_an_output_and_takes_no_value() {
    expect(
        "#[attn(return_lse(2))] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("`return_lse` takes no value", "(2)", 0)],
    );
    let output = expand("#[attn(return_lse)] fn f<q: [2, 4, 3], k: [2, 4, 3], v: [2, 4, 3]>;");
    assert!(
        output.to_string().contains("lse : & mut [[f32 ; 4] ; 2]"),
        "{output}"
    );
    // A kernel with an error keeps the extra output in its stub.
    let output = expand("#[attn(return_lse)] fn f<q: [2, 4, 3], k: [2, 4, 5], v: [2, 4, 3]>;");
    assert_eq!(errors(&output).len(), 1);
    assert!(
        output.to_string().contains("lse : & mut [[f32 ; 4] ; 2]"),
        "{output}"
    );
}

#[test]
fn valid_lengths_take_no_value() {
    expect(
        "#[attn(valid_lengths = 3)] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("`valid_lengths` takes no value", "3", 0)],
    );
    let output = expand("#[attn(valid_lengths)] fn f<q: [2, 4, 3], k: [2, 4, 3], v: [2, 4, 3]>;");
    assert!(errors(&output).is_empty());
    assert!(
        output.to_string().contains("valid_keys : & [usize ; 2]"),
        "{output}"
    );
}

#[test]
fn a_soft_cap_is_a_positive_number() {
    expect(
        "#[attn(softcap = -3.0)] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("a soft cap of -3.0 is not a positive number", "3.0", 0)],
    );
    expect(
        "#[attn(softcap = 30)] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[],
    );
}

#[test]
fn a_window_needs_causal_and_a_whole_size() {
    expect(
        "#[attn(window = 4)] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("`window` needs `causal`", "window", 0)],
    );
    expect(
        "#[attn(causal, window = 2.5)] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[(
            "a window of 2.5 keys is not a positive whole number",
            "2.5",
            0,
        )],
    );
    expect(
        "#[attn(causal, window = 2)] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[],
    );
}

#[test]
fn causal_alignments_are_known_and_given_once() {
    expect(
        "#[attn(causal(middle))] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("unknown causal alignment `middle`", "middle", 0)],
    );
    expect(
        "#[attn(causal, causal(top_left))] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("`causal` is given twice", "causal", 1)],
    );
}

#[test]
fn scale_is_given_once() {
    expect(
        "#[attn(scale = 0.5, scale = 0.25)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("`scale` is given twice", "scale", 1)],
    );
}

#[test]
fn dimension_names_start_uppercase() {
    expect(
        "fn f<q: [1, n, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("`n` does not start with an uppercase letter", "n", 1)],
    );
}

#[test]
fn syntax_errors_point_at_their_token() {
    expect(
        "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]> where B = 1 Nq = 2;",
        &[("expected `,` or `;` after the binding of `B`", "Nq", 0)],
    );
    expect(
        "fn f(q: [1, 2, 3]);",
        &[("expected `<` after the kernel's name", "(", 0)],
    );
    expect(
        "fn f<q: [B, 2, 3], k: [B, 4, 3], v: [B, 4, 3]> where B = 1",
        &[("the last kernel does not end with `;`", "1", 0)],
    );
}

#[test]
fn kernel_names_are_unique_in_an_invocation() {
    expect(
        "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
         fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("a kernel named `f` is already declared", "f", 3)],
    );
}

#[test]
fn an_empty_invocation_is_an_error() {
    let output = expand("");
    assert_eq!(errors(&output).len(), 1);
    assert!(errors(&output)[0].message.contains("declares no kernel"));
}

#[test]
fn a_kernel_with_errors_still_gets_its_signature() {
    let output = expand("fn f<q: [1, 2, 3], k: [1, 4, 5], v: [1, 4, 3]>;");
    let text = output.to_string();
    assert!(text.contains("fn f ("), "{text}");
    assert!(text.contains("fn f_into ("), "{text}");
    // The stub takes what the user declared, so a caller's correctly built arguments fit.
    assert!(text.contains("k : & [[[f32 ; 5] ; 4] ; 1]"), "{text}");
    syn::parse2::<syn::File>(output).expect("the stub is valid Rust");
}

#[test]
fn a_mask_or_bias_has_q_rank_and_each_axis_the_kernels_size_or_1() {
    let kernel = "fn f<q: [B, H, Nq, 8], k: [B, H, Nk, 8], v: [B, H, Nk, 8]> where B = 2, H = 3, Nq = 5, Nk = 7;";
    for ok in [
        "mask = [B, H, Nq, Nk]",
        "mask = [2, 1, 5, 7]",
        "bias = [1, 1, 1, Nk]",
        "mask = [B, 1, Nq, Nk], bias = [1, H, Nq, Nk]",
    ] {
        expect(&format!("#[attn({ok})] {kernel}"), &[]);
    }
    expect(
        &format!("#[attn(mask = [B, Nq, Nk])] {kernel}"),
        &[("`mask` has rank 3 but `q` has rank 4", "[B, Nq, Nk]", 0)],
    );
    expect(
        &format!("#[attn(bias = [B, H, Nk, Nq])] {kernel}"),
        &[
            (
                "the queries axis of `bias` is `Nk` = 7, but `q` has `Nq` = 5 queries",
                "Nk",
                0,
            ),
            (
                "the keys axis of `bias` is `Nq` = 5, but `k` has `Nk` = 7 keys",
                "Nq",
                0,
            ),
        ],
    );
    expect(
        &format!("#[attn(mask = [3, H, Nq, Nk])] {kernel}"),
        &[(
            "the batch axis of `mask` is 3, but `q` has `B` = 2 batch",
            "3",
            0,
        )],
    );
    expect(
        &format!("#[attn(mask = [B, H, Nq, Keys])] {kernel}"),
        &[("`Keys` appears in no tensor of this kernel", "Keys", 0)],
    );
    expect(
        &format!("#[attn(mask)] {kernel}"),
        &[("`mask` needs a shape", "mask", 0)],
    );
    expect(
        &format!("#[attn(bias = 2.0)] {kernel}"),
        &[("`bias` takes a shape in brackets", "2.0", 0)],
    );
    expect(
        &format!("#[attn(scale = [1])] {kernel}"),
        &[("`scale` takes a number, not a shape", "[1]", 0)],
    );
    // Unbound names: the same name, or 1; another name or a number is an error.
    let generic = "fn f<q: [1, N, 8], k: [1, M, 8], v: [1, M, 8]>;";
    expect(&format!("#[attn(mask = [1, N, M])] {generic}"), &[]);
    expect(
        &format!("#[attn(mask = [1, N, 4])] {generic}"),
        &[("the keys axis of `mask` is 4, but `k` has `M` keys", "4", 0)],
    );
    // The argument follows v, in the signature and in the stub of a kernel with errors.
    let output = expand(&format!("#[attn(mask = [B, 1, Nq, Nk])] {kernel}"));
    assert!(
        output
            .to_string()
            .contains("mask : & [[[[bool ; 7] ; 5] ; 1] ; 2]"),
        "{output}"
    );
    let output =
        expand("#[attn(mask = [1, 4, 4])] fn f<q: [1, 4, 3], k: [1, 4, 5], v: [1, 4, 3]>;");
    assert_eq!(errors(&output).len(), 1);
    assert!(
        output.to_string().contains("mask : & [[[bool ;"),
        "{output}"
    );
}

#[test]
fn return_weights_adds_an_output_of_queries_by_keys() {
    expect(
        "#[attn(return_weights = 1)] fn f<q: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
        &[("`return_weights` takes no value", "1", 0)],
    );
    let output = expand("#[attn(return_weights)] fn f<q: [2, 3, 8], k: [2, 5, 8], v: [2, 5, 8]>;");
    assert!(
        output
            .to_string()
            .contains("weights : & mut [[[f32 ; 5] ; 3] ; 2]"),
        "{output}"
    );
}

#[test]
fn a_layer_ties_x_to_q_k_and_v_and_knows_its_model_sizes() {
    let layer = |x: &str, tail: &str| {
        format!(
            "fn f<x: {x}, q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh]{tail}> where B = 1, H = 4, Dh = 16;"
        )
    };
    expect(&layer("[B, N, 64]", ""), &[]);
    expect(&layer("[B, N, 64]", ", out: [B, N, 32]"), &[]);
    expect(
        &layer("[B, 7, 64]", "").replace("q: [B, H, N, Dh]", "q: [B, H, 5, Dh]"),
        &[("`x` has 7 tokens but `q` has 5 queries", "5", 0)],
    );
    expect(
        &layer("[2, N, 64]", ""),
        &[(
            "batch sizes disagree: `x` has batch 2 but `q` has batch `B` = 1",
            "B",
            0,
        )],
    );
    expect(
        &layer("[B, N, Dm]", ""),
        &[(
            "`x`'s model width `Dm` is a size of the layer's weights",
            "Dm",
            0,
        )],
    );
    expect(
        &layer("[B, N]", ""),
        &[(
            "`x` has rank 2, but a layer's `x` is `[batch, tokens, width]`",
            "[B, N]",
            0,
        )],
    );
    expect(
        "fn f<x: [1, N, 8], q: [1, N, 8], k: [1, N, 8], v: [1, N, 8]>;",
        &[(
            "a layer splits `x` into heads, but `q` has no heads axis",
            "[1, N, 8]",
            1,
        )],
    );
    expect(
        "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3], out: [1, 2, 3]>;",
        &[("`out` is the output of a layer", "out", 0)],
    );
    expect(
        &format!("#[attn(split_heads)] {}", layer("[B, N, 48]", "")),
        &[(
            "`split_heads`: `x`'s model width 48 is not `q`'s `H` = 4 heads times their depth `Dh` = 16",
            "Dh",
            0,
        )],
    );
    expect(
        &format!("#[attn(split_heads)] {}", layer("[B, N, 64]", "")),
        &[],
    );
    expect(
        "fn f<q: [1, H, N, 2], x: [1, N, 8], k: [1, H, N, 2], v: [1, H, N, 2]> where H = 4;",
        &[("the tensors are declared in the order q, x, k, v", "q", 0)],
    );
    // The layer's signature: x and three linear maps in PyTorch's [out, in] layout, and the
    // attention inside under its own name.
    let output = expand(&layer("[B, N, 64]", ", out: [B, N, 32]")).to_string();
    for part in [
        "fn f < const N : usize > (x : & [[[f32 ; 64] ; N] ; 1] , query : & :: attn_runtime :: Linear < 64 , 64 >",
        "output : & :: attn_runtime :: Linear < 64 , 32 >",
        "fn f_attention < const N : usize >",
    ] {
        assert!(output.contains(part), "{part} in {output}");
    }
    // A layer with an error keeps the layer's signature in its stub.
    let output = expand(&layer("[B, N, Dm]", ", out: [B, N, 32]")).to_string();
    assert!(output.contains("x : & [[["), "{output}");
    assert!(
        output.contains("output : & :: attn_runtime :: Linear <"),
        "{output}"
    );
}

#[test]
fn dtype_is_one_of_four_element_types() {
    let kernel = "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;";
    for dtype in ["f32", "f64", "f16", "bf16"] {
        expect(&format!("#[attn(dtype = {dtype})] {kernel}"), &[]);
    }
    expect(
        &format!("#[attn(dtype = f8)] {kernel}"),
        &[("unknown element type `f8`", "f8", 0)],
    );
    expect(
        &format!("#[attn(dtype = 16)] {kernel}"),
        &[("`dtype` takes an element type", "16", 0)],
    );
    expect(
        "#[attn(dtype = f16)] fn f<x: [1, N, 8], q: [1, 2, N, 4], k: [1, 2, N, 4], v: [1, 2, N, 4]>;",
        &[(
            "a layer computes in f32 in this version, not in f16",
            "f16",
            0,
        )],
    );
    let output = expand(&format!("#[attn(dtype = bf16, return_lse)] {kernel}")).to_string();
    assert!(
        output.contains("q : & [[[:: attn_runtime :: half :: bf16 ; 3] ; 2] ; 1]"),
        "{output}"
    );
    assert!(output.contains("lse : & mut [[f32 ; 2] ; 1]"), "{output}");
    let output = expand(&format!("#[attn(dtype = f64, return_lse)] {kernel}")).to_string();
    assert!(output.contains("lse : & mut [[f64 ; 2] ; 1]"), "{output}");
    // A kernel with an error keeps its element type in the stub.
    let output = expand("#[attn(dtype = f64)] fn f<q: [1, 2, 3], k: [1, 4, 5], v: [1, 4, 3]>;");
    assert_eq!(errors(&output).len(), 1);
    assert!(output.to_string().contains("[[[f64 ;"), "{output}");
}
