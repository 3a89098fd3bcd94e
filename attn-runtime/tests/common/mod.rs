//! What the runtime's integration tests share.

use attn_runtime::simd::Isa;

/// The instruction sets this CPU runs; each one it lacks is named on the test's output as
/// skipped (`cargo test -- --nocapture` shows it), so that nothing is left untested silently.
pub fn instruction_sets() -> impl Iterator<Item = Isa> {
    for isa in Isa::unsupported() {
        eprintln!(
            "skipped: {isa} (this CPU lacks one of {:?})",
            isa.features()
        );
    }
    Isa::supported()
}
