//! The instruction sets a test runs on, and those it cannot, said on the test's output.

use attn_runtime::simd::Isa;

/// The instruction sets this CPU runs, narrowest first. Each one it lacks is named on the
/// test's output as skipped (`cargo test -- --nocapture` shows it), so that a run on a CPU
/// without AVX-512 says what it did not test rather than passing silently.
///
/// ```
/// let isas: Vec<_> = attn_tests::instruction_sets().collect();
/// assert_eq!(isas[0], attn_runtime::simd::Isa::Portable);
/// ```
pub fn instruction_sets() -> impl Iterator<Item = Isa> {
    for isa in Isa::unsupported() {
        eprintln!(
            "skipped: {isa} (this CPU lacks one of {:?})",
            isa.features()
        );
    }
    Isa::supported()
}
