//! The never-panic harness: the macro's core, fed malformed inputs and randomly mutated
//! variants of valid ones, must never panic; every error it reports must sit at a token of
//! the input; every input known to be malformed must get an error; and a sample of the
//! mutated inputs it accepts must type-check in rustc (one crate, `cargo check`), so that
//! code the macro emits without an error is code that compiles.
//!
//! The test suite runs a quick slice (3,000 inputs; 300 accepted ones of 10,000 for rustc). The full run,
//! with its counts printed:
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
    "/// Unicode in names and docs: «Ω».
     fn café<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
     fn r#type<q: [1, 2, 3], k: [1, N, 3], v: [1, N, 3]>;",
    "#[cfg(all())] #[cfg_attr(all(), inline)] fn configured<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
     #[cfg(any())] fn never_built<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
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
    // Unicode and raw names.
    "fn f<q: [1, Δ, 3], k: [1, Δ, 3], v: [1, Δ, 3]>;",
    "fn f<q: [1, r#N, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>; fn r#f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    // Names the generated code uses, or that would hide a type.
    "fn f<q: [1, KEY_BLOCK, 3], k: [1, KEY_BLOCK, 3], v: [1, KEY_BLOCK, 3]>;",
    "fn f<q: [1, N, DEPTH], k: [1, N, DEPTH], v: [1, N, DEPTH]>;",
    "fn f32<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<x: [1, 2, 4], q: [1, 1, 2, 4], k: [1, 1, 2, 4], v: [1, 1, 2, 4]>; fn f_attention<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    // Inner attributes, lifetimes, generics, `unsafe`, more than five axes.
    "#![allow(unused)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<'a, q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<T, q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<const N: usize, q: [1, N, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "unsafe fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "fn f<q: [1, 1, 1, 1, 1, 2, 3], k: [1, 1, 1, 1, 1, 4, 3], v: [1, 1, 1, 1, 1, 4, 3]>;",
    // Sizes past what an array or a thread's stack holds.
    "fn f<q: [1, 1, 64], k: [1, 18014398509481984, 64], v: [1, 18014398509481984, 1]>;",
    "#[attn(return_weights)] fn f<q: [1, 4294967296, 1], k: [1, 4294967296, 1], v: [1, 4294967296, 1]>;",
    "fn f<q: [1, N, 16384], k: [1, N, 16384], v: [1, N, 16384]>;",
    // Option values a kernel cannot use as written.
    "#[attn(softcap = 1e-50)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn(scale = --0.125)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
    "#[attn(causal, window = 4u8)] fn f<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;",
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
    "18014398509481984",
    "16384",
    "1e-50",
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
    "f32",
    "bool",
    "DEPTH",
    "r#N",
    "Ω",
    "unsafe",
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

/// Where each token of `stream` starts, delimiters included, as (line, column).
fn token_starts(stream: TokenStream, out: &mut HashSet<(usize, usize)>) {
    for tree in stream {
        let start = tree.span().start();
        out.insert((start.line, start.column));
        if let TokenTree::Group(group) = tree {
            let close = group.span_close().start();
            out.insert((close.line, close.column));
            token_starts(group.stream(), out);
        }
    }
}

/// Runs the core on one input: it must not panic, its output must be valid Rust, and each
/// error must point at a token of the input (or, for an input of no tokens, anywhere).
fn run_one(source: &str) -> Result<Outcome, String> {
    let Ok(input) = source.parse::<TokenStream>() else {
        return Ok(Outcome::NotTokens);
    };
    let mut starts = HashSet::new();
    token_starts(input.clone(), &mut starts);
    let output = panic::catch_unwind(|| crate::expand::attention(input))
        .map_err(|_| format!("the macro panicked on:\n{source}"))?;
    syn::parse2::<syn::File>(output.clone())
        .map_err(|e| format!("invalid output ({e}) for:\n{source}\n\n{output}"))?;
    let errors = super::errors(&output);
    if let Some(stray) = errors
        .iter()
        .find(|error| !starts.is_empty() && !starts.contains(&error.at))
    {
        return Err(format!(
            "an error points at no token of the input: {stray:?}, for:\n{source}"
        ));
    }
    Ok(if errors.is_empty() {
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
fn the_malformed_corpus_gets_errors_and_the_seeds_none() {
    for source in MALFORMED {
        let outcome = run_one(source).expect("no panic, valid output");
        assert!(
            outcome == Outcome::Errors,
            "no error for a malformed input:\n{source}"
        );
    }
    for source in SEEDS {
        let outcome = run_one(source).expect("no panic, valid output");
        assert!(outcome == Outcome::Code, "errors for a seed:\n{source}");
    }
    println!(
        "never_panic: {} malformed inputs, each with an error at one of its tokens",
        MALFORMED.len()
    );
}

/// The distinct inputs of a mutation run of `wanted` inputs, each with what it gave: the
/// same inputs on every run, from a fixed seed.
fn mutation_run(wanted: usize) -> Result<Vec<(String, Outcome)>, String> {
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
    let mut inputs = Vec::new();
    let mut attempts = 0usize;
    while inputs.len() < wanted && attempts < wanted * 20 {
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
        if !seen.insert(source.clone()) {
            continue;
        }
        match run_one(&source)? {
            Outcome::NotTokens => {}
            outcome => inputs.push((source, outcome)),
        }
    }
    Ok(inputs)
}

#[test]
fn mutated_inputs_never_panic() {
    let wanted = inputs_wanted();
    let inputs = mutation_run(wanted).unwrap_or_else(|message| panic!("{message}"));
    let code = inputs.iter().filter(|(_, o)| *o == Outcome::Code).count();
    println!(
        "never_panic: {} distinct inputs ({code} expanded to kernels, {} to errors at their \
         tokens), no panic, every output valid Rust",
        inputs.len(),
        inputs.len() - code,
    );
    assert!(
        inputs.len() >= wanted,
        "only {} distinct inputs reached",
        inputs.len()
    );
}

/// The number of accepted mutated inputs that rustc type-checks, one module each in one
/// crate (`ATTN_RUSTC_SAMPLE` to change it).
fn sample_wanted() -> usize {
    std::env::var("ATTN_RUSTC_SAMPLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

#[test]
fn a_sample_of_accepted_inputs_type_checks_in_rustc() {
    let wanted = sample_wanted();
    // Most mutations break the grammar: 10,000 inputs give a few hundred accepted ones.
    let accepted: Vec<String> = mutation_run(inputs_wanted().max(10_000))
        .unwrap_or_else(|message| panic!("{message}"))
        .into_iter()
        .filter(|(source, outcome)| *outcome == Outcome::Code && plain_attributes(source))
        .map(|(source, _)| source)
        .take(wanted)
        .collect();
    assert!(accepted.len() >= wanted, "only {} accepted", accepted.len());
    // One crate of the sample, beside the workspace and built in its own target directory
    // (the running `cargo test` holds the workspace's), with the workspace's lock file, so
    // that it builds on the same versions.
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let dir = workspace.join("target/never-panic-sample");
    std::fs::create_dir_all(dir.join("src")).expect("the sample's folder");
    let runtime = workspace.join("attn-runtime");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"never-panic-sample\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
             publish = false\n\n[dependencies]\nattn-runtime = {{ path = {:?} }}\n\n[workspace]\n",
            runtime.display().to_string()
        ),
    )
    .expect("the sample's manifest");
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).expect("the lock file");
    let mut source = String::from(
        "//! Accepted mutated inputs of the never-panic harness, one module each.\n\
         #![allow(dead_code, unused, non_snake_case, non_upper_case_globals, uncommon_codepoints)]\n",
    );
    for (i, input) in accepted.iter().enumerate() {
        source += &format!("mod input_{i} {{\n    attn_runtime::attention! {{ {input} }}\n}}\n");
    }
    std::fs::write(dir.join("src/lib.rs"), source).expect("the sample's source");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["check", "--quiet", "--offline", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "rustc rejected code the macro accepted (see {}):\n{}",
        dir.join("src/lib.rs").display(),
        stderr.lines().take(60).collect::<Vec<_>>().join("\n")
    );
    println!(
        "never_panic: {} accepted inputs type-check in rustc",
        accepted.len()
    );
}

/// Whether every attribute the macro passes through to the generated functions is a doc
/// comment or `#[inline]`. Other attributes are the user's Rust, passed on as written, which
/// rustc judges at their own tokens (a mutation that makes `#[doc = attn]` of a doc comment
/// gets rustc's error there, and would keep rustc from type-checking the rest).
fn plain_attributes(source: &str) -> bool {
    let mut errors = crate::errors::Errors::default();
    let tokens = source.parse().expect("the input lexes");
    crate::parse::invocation(tokens, &mut errors)
        .iter()
        .flat_map(|parsed| &parsed.kernel.attrs)
        .all(|attr| match &attr.meta {
            syn::Meta::NameValue(doc) if doc.path.is_ident("doc") => matches!(
                &doc.value,
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(_),
                    ..
                })
            ),
            syn::Meta::Path(path) => path.is_ident("inline"),
            _ => false,
        })
}

/// Wraps every identifier and literal of `stream` in an invisible group, as `macro_rules!`
/// passes `$name:ident`, `$n:expr` and `$n:literal` on.
fn invisible(stream: TokenStream) -> TokenStream {
    stream
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), invisible(group.stream()));
                inner.set_span(group.span());
                TokenTree::Group(inner)
            }
            TokenTree::Ident(_) | TokenTree::Literal(_) => {
                let mut wrapped =
                    proc_macro2::Group::new(Delimiter::None, TokenStream::from(tree.clone()));
                wrapped.set_span(tree.span());
                TokenTree::Group(wrapped)
            }
            punct => punct,
        })
        .collect()
}

#[test]
fn sizes_and_names_in_invisible_groups_expand_as_plain_ones() {
    for source in SEEDS {
        let plain = crate::expand::attention(source.parse().expect("seed lexes"));
        let wrapped = crate::expand::attention(invisible(source.parse().expect("seed lexes")));
        assert!(
            super::errors(&wrapped).is_empty(),
            "{source}: {:?}",
            super::errors(&wrapped)
        );
        let reparse = |s: TokenStream| {
            let file: syn::File = syn::parse2(s).expect("valid Rust");
            prettyplease::unparse(&file)
        };
        assert_eq!(reparse(wrapped), reparse(plain), "{source}");
    }
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

#[test]
fn a_hundred_kernels_in_one_invocation_expand() {
    let source: String = (0..100)
        .map(|i| {
            let n = 1 + i % 7;
            format!("fn kernel_{i}<q: [1, {n}, 4], k: [1, N, 4], v: [1, N, {n}]>;\n")
        })
        .collect();
    assert!(run_one(&source).expect("no panic, valid output") == Outcome::Code);
    // One error among them is reported alone, at its token.
    let broken = source.replace("kernel_57<q: [1, 2, 4]", "kernel_57<q: [1, 0, 4]");
    let output = crate::expand::attention(broken.parse().expect("lexes"));
    assert_eq!(
        super::errors(&output).len(),
        1,
        "{:?}",
        super::errors(&output)
    );
}
