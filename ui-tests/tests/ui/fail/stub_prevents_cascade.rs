use attn_runtime::attention;

// The kernel has one error; the calls below still type-check against its stub, so the
// user sees that one error and not one more per call.
attention! {
    fn broken<q: [1, 2, 3], k: [1, 4, 5], v: [1, 4, 3]>;
}

fn main() {
    let q = [[[0.0f32; 3]; 2]; 1];
    let k = [[[0.0f32; 5]; 4]; 1];
    let v = [[[0.0f32; 3]; 4]; 1];
    let out: [[[f32; 3]; 2]; 1] = broken(&q, &k, &v);
    let mut into = out;
    broken_into(&q, &k, &v, &mut into);
}
