//! What kernels cost to build: the added release build time and machine code per kernel.
//!
//! Builds six small crates that depend on this workspace's `attn-runtime`, sharing one
//! target directory so that the dependencies are built once: one with no kernel (the
//! baseline), one with a kernel over 128 keys, the same over 16,384 keys, one with eight
//! kernels of varied shapes, and the 128-key kernel and the eight, each with its backward
//! pass (forward and backward called). The backward is compiled once in the runtime: a
//! crate pays its code once, however many kernels it has. Each kernel is called, so none is optimized away; every crate
//! also makes one small `Tensor`, so that what using `Tensor` at all costs is in the baseline.
//!
//! Run: `cargo bench -p attn-bench --bench build_cost`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The kernels of the eight-kernel crate: varied ranks, sizes, plans and unbound lengths.
const EIGHT: &[(&str, &str)] = &[
    ("textbook", "q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]"),
    (
        "small_heads",
        "q: [2, 2, 3, 5], k: [2, 2, 4, 5], v: [2, 2, 4, 2]",
    ),
    (
        "one_head",
        "q: [1, 128, 64], k: [1, 128, 64], v: [1, 128, 64]",
    ),
    (
        "long",
        "q: [1, 4096, 64], k: [1, 4096, 64], v: [1, 4096, 64]",
    ),
    (
        "encoder",
        "q: [1, 12, N, 64], k: [1, 12, N, 64], v: [1, 12, N, 64]",
    ),
    (
        "decoder",
        "q: [1, 8, 1, 128], k: [1, 8, N, 128], v: [1, 8, N, 128]",
    ),
    ("odd", "q: [3, 67, 7], k: [3, 131, 7], v: [3, 131, 5]"),
    ("cross", "q: [2, Nq, 32], k: [2, Nk, 32], v: [2, Nk, 16]"),
];

/// Kernels by name and shape (`q: [..], k: [..], v: [..]`).
type Kernels = Vec<(&'static str, &'static str)>;

/// Sizes that stand for the unbound names when the kernel is called.
fn instantiate(shape: &str) -> String {
    shape
        .replace("Nq", "17")
        .replace("Nk", "300")
        .replace('N', "200")
}

/// The source of a crate that declares and calls `kernels`, each with its backward pass
/// (and calling it) when `backward` is set.
fn crate_source(kernels: &[(&str, &str)], backward: bool) -> String {
    let mut source = String::from("use attn_runtime::{Array, Tensor};\n\n");
    if !kernels.is_empty() {
        source += "attn_runtime::attention! {\n";
        for (name, shape) in kernels {
            if backward {
                source += "    #[attn(backward)]\n";
            }
            source += &format!("    pub fn {name}<{shape}>;\n");
        }
        source += "}\n";
    }
    source += "\n/// A tensor of the argument type of `f`, on the heap.\n";
    source += "fn zeros<A: Array>() -> Tensor<A> { Tensor::zeros() }\n\nfn main() {\n";
    // Every crate, the baseline too, makes one small tensor: the storage code that any user
    // of `Tensor` pays once (1.9 KiB with the huge-page maps) is then not counted per kernel.
    source += "    std::hint::black_box(zeros::<[f32; 16]>());\n";
    for (name, shape) in kernels {
        let dims: Vec<Vec<String>> = instantiate(shape)
            .split("],")
            .map(|part| {
                let inner = part.split('[').nth(1).unwrap_or("").trim_end_matches(']');
                inner.split(',').map(|d| d.trim().to_owned()).collect()
            })
            .collect();
        let ty = |dims: &[String]| {
            dims.iter()
                .rev()
                .fold("f32".to_owned(), |inner, d| format!("[{inner}; {d}]"))
        };
        let (q, k, v) = (&dims[0], &dims[1], &dims[2]);
        let mut out = q.clone();
        if let (Some(last), Some(value_depth)) = (out.last_mut(), v.last()) {
            last.clone_from(value_depth);
        }
        let (q_ty, k_ty, v_ty, out_ty) = (ty(q), ty(k), ty(v), ty(&out));
        source += &format!(
            "    {{\n        let (q, k, v) = (zeros::<{q_ty}>(), zeros::<{k_ty}>(), zeros::<{v_ty}>());\n        let mut out = zeros::<{out_ty}>();\n"
        );
        if backward {
            let lse_ty = ty(&q[..q.len() - 1]);
            source += &format!(
                "        let mut lse = zeros::<{lse_ty}>();\n        {name}_into(std::hint::black_box(&q), &k, &v, &mut out, &mut lse);\n        let (mut dq, mut dk, mut dv) = (zeros::<{q_ty}>(), zeros::<{k_ty}>(), zeros::<{v_ty}>());\n        {name}_backward_into(&q, &k, &v, &out, &lse, std::hint::black_box(&out), &mut dq, &mut dk, &mut dv);\n        std::hint::black_box((&dq, &dk, &dv));\n"
            );
        } else {
            source +=
                &format!("        {name}_into(std::hint::black_box(&q), &k, &v, &mut out);\n");
        }
        source += "        std::hint::black_box(&out);\n    }\n";
    }
    source + "}\n"
}

fn write_crate(
    root: &Path,
    name: &str,
    runtime: &Path,
    kernels: &[(&str, &str)],
    backward: bool,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("src")).expect("create the crate");
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\nattn-runtime = {{ path = {:?} }}\n\n[workspace]\n",
        runtime.display()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    std::fs::write(dir.join("src/main.rs"), crate_source(kernels, backward))
        .expect("write main.rs");
    dir
}

/// Builds the crate in release, twice over a touched `main.rs` to time only the crate
/// itself; returns the faster build's seconds and the binary's `.text` bytes.
fn build(dir: &Path, target: &Path, name: &str) -> (f64, u64) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let main = dir.join("src/main.rs");
        let source = std::fs::read_to_string(&main).expect("read main.rs");
        std::fs::write(&main, source).expect("touch main.rs");
        let start = Instant::now();
        let status = Command::new(&cargo)
            .args(["build", "--release", "--quiet"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target)
            .status()
            .expect("run cargo");
        assert!(status.success(), "building {name} failed");
        best = best.min(start.elapsed().as_secs_f64());
    }
    let binary = target.join("release").join(name);
    let output = Command::new("size")
        .args(["-A"])
        .arg(&binary)
        .output()
        .expect("run size");
    let text = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| line.starts_with(".text"))
        .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (best, text)
}

fn main() {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../attn-runtime");
    let runtime = runtime.canonicalize().expect("the runtime crate");
    let root = std::env::temp_dir().join("attn-build-cost");
    let target = root.join("target");
    let short = (
        "one_head",
        "q: [1, 128, 64], k: [1, 128, 64], v: [1, 128, 64]",
    );
    let long = (
        "one_head",
        "q: [1, 16384, 64], k: [1, 16384, 64], v: [1, 16384, 64]",
    );
    // Each crate's name, kernels, and whether they have (and call) their backward pass.
    let crates: [(&str, Kernels, bool); 6] = [
        ("zero_kernels", vec![], false),
        ("one_kernel_short", vec![short], false),
        ("one_kernel_long", vec![long], false),
        ("eight_kernels", EIGHT.to_vec(), false),
        ("one_with_backward", vec![short], true),
        ("eight_with_backward", EIGHT.to_vec(), true),
    ];
    let mut results = Vec::new();
    for (name, kernels, backward) in &crates {
        let dir = write_crate(&root, name, &runtime, kernels, *backward);
        // The first build compiles the dependencies into the shared target directory.
        let (seconds, text) = build(&dir, &target, name);
        results.push((name, kernels.len(), seconds, text));
    }
    let (_, _, base_seconds, base_text) = results[0];
    println!("release build of a crate that calls attn kernels, minus the same crate with none:\n");
    println!(
        "{:<18} {:>8} {:>14} {:>16} {:>16}",
        "crate", "kernels", "build (s)", "+time/kernel (s)", "+code/kernel (KiB)"
    );
    for &(name, kernels, seconds, text) in &results {
        let per = |x: f64| {
            if kernels == 0 {
                0.0
            } else {
                x / kernels as f64
            }
        };
        println!(
            "{:<18} {:>8} {:>14.2} {:>16.3} {:>16.1}",
            name,
            kernels,
            seconds,
            per(seconds - base_seconds),
            per((text as f64 - base_text as f64) / 1024.0)
        );
    }
}
