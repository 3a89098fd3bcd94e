//! Runs the compile-fail cases (each with its committed `.stderr`) and the pass cases.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/pass/*.rs");
}
