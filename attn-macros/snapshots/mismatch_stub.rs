// attention! {
//     fn f<q: [1, 2, 3], k: [1, 4, 5], v: [1, 4, 3]>;
// }

#[allow(unused_variables, non_upper_case_globals, clippy::all)]
fn f(
    q: &[[[f32; 3]; 2]; 1],
    k: &[[[f32; 5]; 4]; 1],
    v: &[[[f32; 3]; 4]; 1],
) -> [[[f32; 3]; 2]; 1] {
    ::core::unreachable!("attention! reported an error for this kernel")
}
#[allow(unused_variables, non_upper_case_globals, clippy::all)]
fn f_into(
    q: &[[[f32; 3]; 2]; 1],
    k: &[[[f32; 5]; 4]; 1],
    v: &[[[f32; 3]; 4]; 1],
    out: &mut [[[f32; 3]; 2]; 1],
) {
    ::core::unreachable!("attention! reported an error for this kernel")
}
::core::compile_error! {
    "depths disagree: `q` has depth 3 but `k` has depth 5\nhelp: attention takes the dot product of each query with each key, so q and k need the same last axis"
}
