//! The textbook example: one batch, two queries over four tokens, depth three.
//!
//! Run with `cargo run -p attn-runtime --example textbook`. It prints Q, K and V, the
//! attention weights softmax(Q·Kᵀ/√3) of each query over the four keys and the output, both
//! as the generated kernel returns them (`return_weights`), then checks the weights against a
//! plain computation and the output against weights·V.

use attn_runtime::attention;

attention! {
    /// Two queries over four tokens, depth three: weights `[1, 2, 4]`, output `[1, 2, 3]`.
    #[attn(return_weights)]
    pub fn seed_example<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>
    where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;
}

fn main() {
    let q = [[[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]];
    let k = [[
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 1.0],
    ]];
    let v = [[
        [1.0, 2.0, 3.0],
        [4.0, 5.0, 6.0],
        [7.0, 8.0, 9.0],
        [10.0, 11.0, 12.0],
    ]];

    let (out, weights) = seed_example(&q, &k, &v);

    print_matrix("Q [1, 2, 3]", &q[0]);
    print_matrix("K [1, 4, 3]", &k[0]);
    print_matrix("V [1, 4, 3]", &v[0]);
    print_matrix("attention weights softmax(Q·Kᵀ/√3) [2, 4]", &weights[0]);
    print_matrix("output [1, 2, 3]", &out[0]);
    println!("{}", seed_example::INFO);

    // The weights as a plain computation gives them, and the output as weights · V.
    let plain = attention_weights(&q[0], &k[0]);
    for (i, row) in plain.iter().enumerate() {
        for (j, &expected) in row.iter().enumerate() {
            let weight = weights[0][i][j];
            assert!(
                (weight - expected).abs() < 1e-6,
                "weight [{i}][{j}] = {weight}, plain softmax = {expected}"
            );
        }
    }
    let weights = weights[0];
    for (i, row) in out[0].iter().enumerate() {
        for (e, &value) in row.iter().enumerate() {
            let expected: f32 = (0..4).map(|j| weights[i][j] * v[0][j][e]).sum();
            assert!(
                (value - expected).abs() < 1e-5,
                "output [{i}][{e}] = {value}, weights·V = {expected}"
            );
        }
    }
    println!("\nchecked: weights = plain softmax, output = weights · V");
}

/// softmax(q · kᵀ / √3), row by row, the plain way.
fn attention_weights(q: &[[f32; 3]; 2], k: &[[f32; 3]; 4]) -> [[f32; 4]; 2] {
    let scale = 1.0 / 3f32.sqrt();
    q.map(|query| {
        let scores = k.map(|key| (0..3).map(|d| query[d] * key[d]).sum::<f32>() * scale);
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let exps = scores.map(|s| (s - max).exp());
        let sum: f32 = exps.iter().sum();
        exps.map(|e| e / sum)
    })
}

fn print_matrix<const C: usize>(title: &str, rows: &[[f32; C]]) {
    println!("\n{title}");
    for row in rows {
        let cells: Vec<String> = row.iter().map(|x| format!("{x:8.4}")).collect();
        println!("  [{}]", cells.join(" "));
    }
}
