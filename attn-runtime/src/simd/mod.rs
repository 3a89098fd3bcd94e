//! Vector types with run-time CPU-feature dispatch.
//!
//! Kernels are written once, generic over [`Simd`]. [`Isa::active`] is the widest instruction
//! set the CPU has (AVX-512F, then AVX2 with FMA, then portable code), and [`dispatch`] calls
//! the kernel inside a function compiled for it, so a default `cargo build --release` with no `-C target-cpu`
//! flags runs 512-bit code on a CPU that has it. Each instruction set has one
//! `#[target_feature]` wrapper; the kernel's body is `#[inline(always)]` and is compiled into
//! each wrapper.
//!
//! Tests and benchmarks can force an instruction set, on one thread with [`with_isa`] or for
//! the whole process with the `ATTN_ISA` environment variable (`scalar`, `avx2`, `avx512`).
//!
//! `pack.rs` copies keys and values into the layouts the tiled micro-kernels read, with the
//! transposes of each instruction set: this layer calls nothing above it.

pub(crate) mod elements;
mod exp;
pub(crate) mod pack;
mod portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod registers;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use exp::{exp, exp_f32, exp_in_bulk, tanh, tanh_f32};
pub(crate) use exp::{exp_of_nonpositive, exp_of_nonpositive_in_bulk, exp_of_nonpositive_unscaled};
pub use portable::{Lane, Portable};
#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

/// Writes, from one list, each instruction set's CPU features ([`Isa::features`]) and their
/// run-time detection, so that no feature a path is compiled with goes undetected.
macro_rules! instruction_sets {
    ($($isa:ident: [$($feature:tt),*],)*) => {
        impl Isa {
            /// The CPU features its code is compiled with (each `#[target_feature]` of the
            /// vector layer names a subset), all of which [`Isa::is_supported`] detects.
            ///
            /// ```
            /// use attn_runtime::simd::Isa;
            /// assert_eq!(Isa::Avx512.features(), ["avx512f", "avx2", "fma"]);
            /// ```
            pub const fn features(self) -> &'static [&'static str] {
                match self {
                    $(Isa::$isa => &[$($feature),*],)*
                }
            }

            #[cfg(target_arch = "x86_64")]
            fn cpu_has_features(self) -> bool {
                match self {
                    $(Isa::$isa => true $(&& std::arch::is_x86_feature_detected!($feature))*,)*
                }
            }

            #[cfg(not(target_arch = "x86_64"))]
            fn cpu_has_features(self) -> bool {
                self == Isa::Portable
            }
        }
    };
}

instruction_sets! {
    Portable: [],
    Avx2: ["avx2", "fma", "f16c"],
    Avx512: ["avx512f", "avx2", "fma"],
}

/// An instruction set a kernel can run on.
///
/// ```
/// use attn_runtime::simd::Isa;
/// assert!(Isa::Portable.is_supported());
/// assert!(Isa::detected().is_supported());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust over arrays of 4 lanes: runs everywhere; the compiler vectorizes it for the
    /// baseline of the target (SSE2 on x86-64, NEON on aarch64), one 128-bit register each.
    Portable,
    /// 256-bit AVX2 with FMA, 8 lanes.
    Avx2,
    /// 512-bit AVX-512F, 16 lanes.
    Avx512,
}

impl Isa {
    /// Every instruction set, narrowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The instruction sets this CPU can run, narrowest first: the portable one always.
    ///
    /// ```
    /// use attn_runtime::simd::Isa;
    /// assert_eq!(Isa::supported().next(), Some(Isa::Portable));
    /// ```
    pub fn supported() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_supported())
    }

    /// The instruction sets this CPU cannot run, narrowest first: what a test that runs every
    /// supported one leaves untested here.
    ///
    /// ```
    /// use attn_runtime::simd::Isa;
    /// assert_eq!(Isa::supported().count() + Isa::unsupported().count(), Isa::ALL.len());
    /// ```
    pub fn unsupported() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|isa| !isa.is_supported())
    }

    /// Whether this CPU can run it: it has every feature of [`Isa::features`].
    pub fn is_supported(self) -> bool {
        self.cpu_has_features()
    }

    /// The widest instruction set this CPU supports.
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            Isa::ALL
                .into_iter()
                .rev()
                .find(|isa| isa.is_supported())
                .unwrap_or(Isa::Portable)
        })
    }

    /// What kernels run on, on this thread: the one forced by [`with_isa`], else the one named
    /// by `ATTN_ISA` (if this CPU supports it), else [`Isa::detected`].
    #[inline]
    pub fn active() -> Isa {
        FORCED.with(Cell::get).unwrap_or_else(from_environment)
    }

    /// The name `ATTN_ISA` takes: `scalar`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[inline]
fn from_environment() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let wanted = std::env::var("ATTN_ISA").ok();
        Isa::ALL
            .into_iter()
            .find(|isa| wanted.as_deref() == Some(isa.name()) && isa.is_supported())
            .unwrap_or_else(Isa::detected)
    })
}

thread_local! {
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// An instruction set this CPU does not have.
///
/// ```
/// use attn_runtime::simd::{Isa, UnsupportedIsa};
/// let error = UnsupportedIsa { isa: Isa::Avx512 };
/// assert_eq!(error.to_string(), "this CPU does not support avx512");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsupportedIsa {
    /// The instruction set asked for.
    pub isa: Isa,
}

impl fmt::Display for UnsupportedIsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "this CPU does not support {}", self.isa)
    }
}

impl std::error::Error for UnsupportedIsa {}

/// Runs `f` with every kernel on this thread forced onto `isa`; an error, and `f` not run, if
/// this CPU does not support it.
///
/// ```
/// use attn_runtime::simd::{Isa, with_isa};
/// let seen = with_isa(Isa::Portable, Isa::active)?;
/// assert_eq!(seen, Isa::Portable);
/// # Ok::<(), attn_runtime::simd::UnsupportedIsa>(())
/// ```
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> Result<R, UnsupportedIsa> {
    if !isa.is_supported() {
        return Err(UnsupportedIsa { isa });
    }
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|forced| forced.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|forced| forced.replace(Some(isa))));
    Ok(f())
}

/// The operations kernels use, on vectors of [`Simd::LANES`] f32.
///
/// Loads and stores take slices: they read or write the first `LANES` elements, and panic if
/// there are fewer (a bug in attn, never a consequence of user input: every slice a kernel
/// passes is cut from an array whose size the macro checked).
pub trait Simd: Copy + Send + Sync + 'static {
    /// f32 lanes per vector.
    const LANES: usize;
    /// A vector of `LANES` f32.
    type V: Copy;

    /// Every lane `x`.
    fn splat(self, x: f32) -> Self::V;
    /// The first `LANES` values of `src`.
    fn load(self, src: &[f32]) -> Self::V;
    /// Writes `v` to the first `LANES` values of `dst`.
    fn store(self, dst: &mut [f32], v: Self::V);
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`, rounded once where the instruction set has FMA.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `max(a, b)` per lane; a NaN in `b` is returned, a NaN in `a` is not (as x86 `maxps`).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `min(a, b)` per lane; a NaN in `b` is returned, a NaN in `a` is not (as x86 `minps`).
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// Rounds each lane to the nearest integer, ties to even, for `|a| < 2^22`: larger
    /// values may come back wrong (the portable paths round by two additions, exact only
    /// there; [`exp`] keeps its arguments within ±160).
    fn round(self, a: Self::V) -> Self::V;
    /// `a · 2^n` for integral `n` in `[-127, 127]`, exactly when the result is normal.
    fn scale_by_pow2(self, a: Self::V, n: Self::V) -> Self::V;
    /// `a · 2^n` for `a` in `[0.5, 2]` and integral `n` in `[-160, 128]`: the last step of
    /// `exp`, whose results below the normal range round to subnormals or 0, and above it
    /// overflow to infinity. By default two steps of [`Simd::scale_by_pow2`], each within its
    /// range; an instruction set that scales into the subnormals in one instruction does it
    /// in one.
    #[inline(always)]
    fn scale_by_pow2_wide(self, a: Self::V, n: Self::V) -> Self::V {
        let half = self.round(self.mul(n, self.splat(0.5)));
        let rest = self.sub(n, half);
        self.scale_by_pow2(self.scale_by_pow2(a, half), rest)
    }
    /// `yes` in the lanes where `a < b`, `no` elsewhere (a NaN compares false).
    fn select_lt(self, a: Self::V, b: Self::V, yes: Self::V, no: Self::V) -> Self::V;
    /// The largest lane. A NaN lane may or may not be ignored: the softmax gives NaN for a
    /// row with a NaN score either way, through that score's own exponential.
    fn reduce_max(self, a: Self::V) -> f32;
    /// The sum of the lanes.
    fn reduce_sum(self, a: Self::V) -> f32;
    /// Whether `a <= b` in every lane (false if any lane holds a NaN): one comparison, where
    /// the softmax would otherwise reduce a block's max only to find the running max held.
    fn all_at_most(self, a: Self::V, b: Self::V) -> bool;
    /// Packs keys for the scores micro-kernel: `packed[d * block + j] = keys[j * depth + d]`
    /// for the first `count` keys, 0 for `count <= j < block`, every `d < depth`. By default
    /// element by element; the vector instruction sets transpose squares of `LANES x LANES`
    /// in registers (64 keys of depth 64 in about 300 ns with AVX-512, 1,000 with the
    /// portable 4 x 4 squares: `bench/examples/micro.rs`). Each is one function compiled in
    /// this crate, not in every kernel: inlined, the transposes added 0.1 s to each
    /// kernel's release build.
    ///
    /// Panics if `keys` holds fewer than `count * depth` values or `packed` fewer than
    /// `depth * block`, or if `count > block`.
    #[inline(always)]
    fn pack_keys(self, keys: &[f32], depth: usize, count: usize, packed: &mut [f32], block: usize) {
        pack::pack_keys_by_element(keys, depth, count, packed, block);
    }
    /// [`Simd::pack_keys`] of 16-bit keys, widened to f32 as each square is loaded (element
    /// by element by default). Panics as [`Simd::pack_keys`] does.
    #[inline(always)]
    fn pack_keys_widened<T: elements::Element>(
        self,
        keys: &[T],
        depth: usize,
        count: usize,
        packed: &mut [f32],
        block: usize,
    ) {
        pack::pack_keys_by_element(keys, depth, count, packed, block);
    }
    /// `LANES` f16 from the start of `src`, widened to f32. Panics if `src` is shorter.
    ///
    /// ```
    /// use attn_runtime::half::f16;
    /// use attn_runtime::simd::{Portable, Simd};
    /// let v = Portable.load_f16(&[f16::from_f32(0.25); 4]);
    /// assert_eq!(Portable.reduce_sum(v), 1.0);
    /// ```
    fn load_f16(self, src: &[half::f16]) -> Self::V;
    /// `LANES` bf16 from the start of `src`, widened to f32 (a shift of each by 16 bits).
    /// Panics if `src` is shorter.
    ///
    /// ```
    /// use attn_runtime::half::bf16;
    /// use attn_runtime::simd::{Portable, Simd};
    /// let v = Portable.load_bf16(&[bf16::from_f32(0.25); 4]);
    /// assert_eq!(Portable.reduce_sum(v), 1.0);
    /// ```
    fn load_bf16(self, src: &[half::bf16]) -> Self::V;
}

/// Asks the core to bring the cache line holding `data[0]` into its L2 cache, for a later
/// read: only a hint, which changes no value. On x86-64 one `prefetcht1` (an SSE instruction,
/// so every x86-64 CPU has it, whatever the instruction set of the kernel); elsewhere
/// nothing.
///
/// ```
/// attn_runtime::simd::prefetch(&[1.0, 2.0]);
/// attn_runtime::simd::prefetch::<f32>(&[]);
/// ```
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = data.first() {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        // SAFETY: SSE is part of x86-64, so the instruction exists; a prefetch of the
        // address of a live value never faults and reads nothing the program sees.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(std::ptr::from_ref(first).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// A computation generic over [`Simd`], run by [`dispatch`] on the active instruction set.
pub trait WithSimd {
    /// What the computation returns.
    type Output;
    /// Runs the computation with `simd`'s instructions. Implementations are
    /// `#[inline(always)]`, so that they are compiled into each instruction set's wrapper.
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output;
}

/// Runs `op` on `isa`, which must be supported, else on the portable path.
///
/// ```
/// use attn_runtime::simd::{Isa, Simd, WithSimd, dispatch};
/// struct Sum<'a>(&'a [f32; 16]);
/// impl WithSimd for Sum<'_> {
///     type Output = f32;
///     #[inline(always)]
///     fn with_simd<S: Simd>(self, simd: S) -> f32 {
///         let mut acc = simd.splat(0.0);
///         for chunk in self.0.chunks_exact(S::LANES) {
///             acc = simd.add(acc, simd.load(chunk));
///         }
///         simd.reduce_sum(acc)
///     }
/// }
/// for isa in Isa::supported() {
///     assert_eq!(dispatch(isa, Sum(&[1.0; 16])), 16.0);
/// }
/// ```
pub fn dispatch<Op: WithSimd>(isa: Isa, op: Op) -> Op::Output {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => x86::run_avx512(op),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.is_supported() => x86::run_avx2(op),
        _ => op.with_simd(Portable),
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod feature_tests {
    use super::Isa;

    /// Every `#[target_feature]` list of the vector layer names only features its instruction
    /// set detects: a path compiled with a feature the CPU lacks would be undefined behaviour.
    #[test]
    fn every_feature_a_path_is_compiled_with_is_detected() {
        let sources = [
            ("x86.rs", include_str!("x86.rs")),
            ("registers.rs", include_str!("registers.rs")),
        ];
        let mut lists = 0;
        for (file, source) in sources {
            for rest in source.split("#[target_feature(enable = \"").skip(1) {
                let end = rest.find('"').expect("a closing quote");
                let compiled: Vec<&str> = rest[..end].split(',').collect();
                let isa = if compiled.contains(&"avx512f") {
                    Isa::Avx512
                } else {
                    Isa::Avx2
                };
                let mut detected = isa.features().to_vec();
                if file == "registers.rs" {
                    // The in-register path also detects AVX-512VL (`cpu_has_avx512vl`).
                    detected.push("avx512vl");
                }
                for feature in compiled {
                    assert!(
                        detected.contains(&feature),
                        "{file}: `{feature}` is compiled in but {isa:?} does not detect it"
                    );
                }
                lists += 1;
            }
        }
        assert!(lists >= 4, "found {lists} target_feature lists");
    }
}
