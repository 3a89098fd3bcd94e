//! The never-panic harness: the macro's core, fed malformed inputs and randomly mutated
//! variants of valid ones, must return a compile error or valid code, and never panic.
//!
//! The test suite runs a quick slice. The full run, with its count printed:
//!
//! ```text
//! ATTN_NEVER_PANIC_INPUTS=100000 cargo test -p attn-macros --release never_panic -- --nocapture
//! ```

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::collections::HashSet;
use std::panic;

/// Valid invocations the mutations start from: every form of the grammar.
const SEEDS: &[&str] = &[
    "/// The textbook example.
     pub fn seed_example<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>
     where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;",
    "#[attn(scale = 0.125, softcap = 30.0)]
     pub(crate) fn encoder<q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh]>
     where B = 1, H = 12, N = 128, Dh = 32;
     fn decoder<q: [1, 2, Nq, 64], k: [1, 2, Nk, 64], v: [1, 2, Nk, 16]>;",
    "#[inline] fn tiny<q: [1, 1, 1], k: [1, 1, 1], v: [1, 1, 1]>;",
    "#[attn(valid_lengths, causal(bottom_right))] fn padded<q: [2, 3, 8], k: [2, N, 8], v: [2, N, 4]>;",
    "#[attn(causal(bottom_right))] fn decode<q: [1, 2, 8], k: [1, 5, 8], v: [1, 5, 8]>;
     #[attn(causal, window = 3)] fn square<q: [1, 2, N, 8], k: [1, 2, N, 8], v: [1, 2, N, 4]>;",
    "fn any_length<q: [2, N, 8], k: [2, M, 8], v: [2, M, 5],>;",
    "fn grouped<q: [1, 8, N, 16], k: [1, 2, N, 16], v: [1, 2, N, 16]>;
     fn any_heads<q: [1, Hq, 3, 4], k: [1, Hkv, 5, 4], v: [1, Hkv, 5, 2]>;",
    "#[attn(mask = [B, 1, 1, N], bias = [1, H, N, N], return_weights, return_lse)]
     fn masked<q: [B, H, N, 8], k: [B, H, N, 8], v: [B, H, N, 8]> where B = 2, H = 3;",
    "#[attn(split_heads, causal)]
     fn layer<x: [B, N, Dm], q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh], out: [B, N, Dm]>
     where B = 1, Dm = 64, H = 4, Dh = 16;
     fn merged<x: [1, 3, 6], q: [1, 4, 3, 2], k: [1, 2, 3, 2], v: [1, 2, 3, 3]>;",
];

/// Inputs that are wrong on purpose, beyond what the mutations reach.
const MALFORMED: &[&str] = &[
    "",
    ";",
    "fn",
    "fn f",
    "fn f<",
    "fn f<>;",
    "fn f<q>;",
    "fn f<q:>;",
    "fn f<q: []>;",
    "fn f<q: [], k: [], v: []>;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]> where;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]> where B;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]> where B =;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]> where B = -;",
    "fn f<q: [[1], 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]> extra;",
    "#[attn] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn(mask = [])] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn(mask = [1, 2, 4], mask = [1, 2, 4])] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn(bias = [[1]])] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<x: [], q: [1, 1, 2, 3], k: [1, 1, 4, 3], v: [1, 1, 4, 3]>;",
    "fn f<x: [1, 2, 3], x: [1, 2, 3], q: [1, 1, 2, 3], k: [1, 1, 2, 3], v: [1, 1, 2, 3], out: [1]>;",
    "fn f<x: [1, 2, 0], q: [1, 1, 2, 3], k: [1, 1, 2, 3], v: [1, 1, 2, 3], out: [1, 2, 99999999999999999]>;",
    "#[attn()] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn(scale)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn(scale = 1e400)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn(scale = \"x\")] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn = 3] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [1, 18446744073709551615, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [18446744073709551615, 18446744073709551615, 18446744073709551615], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]> where B = 18446744073709551616;",
    "fn f<q: [1, 2, 3, 4, 5], k: [1], v: []>;",
    "fn f<q: [_, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<r#q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>; fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>; fn f_into<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [TILE_KEYS, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
];

const LITERALS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "3.5",
    "1e9",
    "99999999999999999999",
    "18446744073709551615",
    "4294967296",
    "1usize",
    "7u8",
    "0x10",
    "1_000",
    "\"s\"",
    "'c'",
    "true",
    "b'x'",
    "1f32",
];
const IDENTS: &[&str] = &[
    "q",
    "k",
    "v",
    "w",
    "B",
    "N",
    "Nq",
    "Dk",
    "fn",
    "where",
    "pub",
    "crate",
    "attn",
    "scale",
    "causal",
    "_",
    "self",
    "r#q",
    "TILE_QUERIES",
    "n",
];
const PUNCTS: &[&str] = &[
    ",", ";", ":", "=", "<", ">", "-", "#", "!", "(", ")", "[", "]",
];

/// splitmix64: a small, seedable generator, so that a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// The tokens of `source` as text, with each delimiter its own atom, so that mutations can
/// move and delete brackets too.
fn atoms(stream: TokenStream, out: &mut Vec<String>) {
    for tree in stream {
        match tree {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push(open.to_owned());
                atoms(group.stream(), out);
                out.push(close.to_owned());
            }
            other => out.push(other.to_string()),
        }
    }
}

fn mutate(rng: &mut Rng, atoms: &mut Vec<String>) {
    if atoms.is_empty() {
        atoms.push(rng.pick(IDENTS).to_owned());
        return;
    }
    let i = rng.below(atoms.len());
    match rng.below(8) {
        // A size changed to another: often still valid, so emission sees many shapes.
        6 | 7 => {
            let sizes: Vec<usize> = (0..atoms.len())
                .filter(|&j| atoms[j].bytes().all(|b| b.is_ascii_digit()))
                .collect();
            if !sizes.is_empty() {
                let j = sizes[rng.below(sizes.len())];
                let largest = if rng.below(2) == 0 { 8 } else { 300 };
                atoms[j] = (1 + rng.below(largest)).to_string();
            }
        }
        0 => {
            atoms.remove(i);
        }
        1 => {
            let j = rng.below(atoms.len());
            atoms.swap(i, j);
        }
        2 => atoms[i] = rng.pick(LITERALS).to_owned(),
        3 => atoms[i] = rng.pick(IDENTS).to_owned(),
        4 => {
            let copy = atoms[i].clone();
            atoms.insert(i, copy);
        }
        _ => atoms.insert(i, rng.pick(PUNCTS).to_owned()),
    }
}

/// What one input gave.
#[derive(PartialEq)]
enum Outcome {
    /// The text does not lex: a proc macro never receives it.
    NotTokens,
    /// One or more `compile_error!`s, beside stubs.
    Errors,
    /// Kernels and no error.
    Code,
}

/// Runs the core on one input: it must not panic, and its output must be valid Rust.
fn run_one(source: &str) -> Result<Outcome, String> {
    let Ok(input) = source.parse::<TokenStream>() else {
        return Ok(Outcome::NotTokens);
    };
    let output = panic::catch_unwind(|| crate::expand::attention(input))
        .map_err(|_| format!("the macro panicked on:\n{source}"))?;
    syn::parse2::<syn::File>(output.clone())
        .map_err(|e| format!("invalid output ({e}) for:\n{source}\n\n{output}"))?;
    Ok(if super::errors(&output).is_empty() {
        Outcome::Code
    } else {
        Outcome::Errors
    })
}

fn inputs_wanted() -> usize {
    std::env::var("ATTN_NEVER_PANIC_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000)
}

#[test]
fn the_malformed_corpus_never_panics() {
    for source in MALFORMED.iter().chain(SEEDS) {
        assert!(run_one(source).expect("no panic, valid output") != Outcome::NotTokens);
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let wanted = inputs_wanted();
    let mut rng = Rng(0x5EED_A77E_0000_0001);
    let seeds: Vec<Vec<String>> = SEEDS
        .iter()
        .chain(MALFORMED)
        .map(|source| {
            let mut out = Vec::new();
            atoms(source.parse().expect("seed lexes"), &mut out);
            out
        })
        .collect();
    let mut seen = HashSet::new();
    let mut attempts = 0usize;
    let mut code = 0usize;
    let mut failure = None;
    while seen.len() < wanted && attempts < wanted * 20 {
        attempts += 1;
        // Three times in four from a valid seed, so that many variants get past the checks
        // into planning and emission.
        let start = if rng.below(4) > 0 {
            rng.below(SEEDS.len())
        } else {
            rng.below(seeds.len())
        };
        let mut atoms = seeds[start].clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut atoms);
        }
        let source = atoms.join(" ");
        if seen.contains(&source) {
            continue;
        }
        match run_one(&source) {
            Ok(Outcome::NotTokens) => {}
            Ok(outcome) => {
                code += usize::from(outcome == Outcome::Code);
                seen.insert(source);
            }
            Err(message) => {
                failure = Some(message);
                break;
            }
        }
    }
    if let Some(message) = failure {
        panic!("{message}");
    }
    println!(
        "never_panic: {} distinct inputs ({} expanded to kernels, the rest to errors), \
         {attempts} attempts, no panic, every output valid Rust",
        seen.len(),
        code,
    );
    assert!(
        seen.len() >= wanted,
        "only {} distinct inputs reached",
        seen.len()
    );
}

#[test]
fn seeds_expand_to_kernels_after_the_atom_round_trip() {
    for source in SEEDS {
        let mut out = Vec::new();
        atoms(source.parse().expect("seed lexes"), &mut out);
        let joined = out.join(" ");
        assert!(
            run_one(&joined).expect("no panic") == Outcome::Code,
            "{joined}"
        );
    }
}
