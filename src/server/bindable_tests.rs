use super::*;

#[test]
fn proc_net_tcp_lines() {
    // 127.0.0.1:8080 listening; 0.0.0.0:443 listening; an established one.
    let cases = [
            ("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1", Some(("127.0.0.1:8080", 0, 12345))),
            ("   1: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 777 1", Some(("0.0.0.0:443", 998, 777))),
            ("   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 999 1", None),
            ("   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1", Some(("[::1]:8080", 0, 4242))),
            ("   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1", Some(("[::]:443", 0, 4343))),
        ];
    for (line, want) in cases {
        let want = want.map(|(a, uid, inode)| Listening {
            addr: a.parse().unwrap(),
            uid,
            inode,
        });
        assert_eq!(parse_listening(line), want, "{line}");
    }
}

/// This very process, listening: its sockets are found by their
/// inodes, as a running portal-proxy's are by an upgrade.
#[test]
fn a_process_listening_sockets_are_found() {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = socket_inodes(std::process::id()).unwrap();
    let found: Vec<SocketAddr> = listening()
        .into_iter()
        .filter(|l| ours.contains(&l.inode))
        .map(|l| l.addr)
        .collect();
    assert!(found.contains(&v4.local_addr().unwrap()), "{found:?}");
}
