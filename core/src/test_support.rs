//! Helpers shared by the core's tests.

use http::HeaderMap;

/// A header map of `pairs`, in order (a name given twice is two fields).
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

/// Runs `property` over `cases` inputs of `strategy` as `proptest!` does
/// (a failure is shrunk, and its seed kept beside `source_file`), and
/// fails unless at least one input in `one_in` was accepted.
///
/// `property` returns whether the function under test accepted the input,
/// that is whether the assertions kept for accepted inputs ran. A property
/// whose inputs are mixed, hostile and sound, would otherwise pass for a
/// function that refuses every input.
pub(crate) fn check_accepting<S: proptest::strategy::Strategy>(
    source_file: &'static str,
    cases: u32,
    one_in: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<bool, proptest::test_runner::TestCaseError>,
) {
    use std::cell::Cell;

    let mut config = proptest::test_runner::Config::with_cases(cases);
    config.source_file = Some(source_file);
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let (run, accepted) = (Cell::new(0u32), Cell::new(0u32));
    let result = runner.run(&strategy, |input| {
        let was_accepted = property(input)?;
        run.set(run.get() + 1);
        accepted.set(accepted.get() + u32::from(was_accepted));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
    let (run, accepted) = (run.get(), accepted.get());
    assert!(
        accepted * one_in >= run,
        "{accepted} of {run} inputs accepted, fewer than one in {one_in}"
    );
}
