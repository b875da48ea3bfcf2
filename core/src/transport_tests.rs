use super::*;

#[test]
fn exceptions_win_over_the_default() {
    let mut t = Transports::default();
    assert_eq!(t.of("a"), Transport::Pinned);
    t.by_peer.insert("a".into(), Transport::Ca);
    assert_eq!(t.of("a"), Transport::Ca);
    assert_eq!(t.of("b"), Transport::Pinned);
    t.default = Transport::Ca;
    t.by_peer.insert("b".into(), Transport::Pinned);
    assert_eq!(t.of("b"), Transport::Pinned);
    assert_eq!(t.of("c"), Transport::Ca);
}
