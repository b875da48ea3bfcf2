use super::*;

#[test]
fn readiness_follows_the_certificate() {
    assert_eq!(not_ready(Some((100, 200)), 150), None);
    assert!(not_ready(Some((100, 200)), 201)
        .unwrap()
        .contains("expired at 200"));
    assert!(not_ready(Some((100, 200)), 99)
        .unwrap()
        .contains("not valid before 100"));
    assert!(not_ready(None, 150).is_some());
}
