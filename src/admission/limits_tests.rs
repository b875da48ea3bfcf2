use super::*;

#[test]
fn the_cap_refuses_past_its_limit() {
    let open = count_open_fds().unwrap();
    assert!(open > 0);
    let cap = ConnectionCap::new(open + 1000);
    assert!(cap.try_admit(0, || 0));
    assert!(cap.try_admit(0, || 0));
    // Below what any process has open (3 descriptors at least):
    // refused, and a refusal is not counted as open.
    let full = ConnectionCap::new(CONNECTION_FDS);
    assert!(!full.try_admit(0, || 0));
    assert!(!full.try_admit(0, || 0));
    // Descriptors of the private listeners are not counted.
    assert!(full.try_admit(1 << 20, || 0));
    // Room for a connection's socket and duplicate, but not for the
    // upstream socket of its request: refused (the count as the cap
    // holds it, never recounted here).
    let with_room = |room: usize| {
        let open = count_open_fds().unwrap();
        ConnectionCap {
            max: open + room,
            hard: open + room,
            open: AtomicUsize::new(open),
            recounted_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
            started: std::time::Instant::now(),
        }
    };
    assert!(!with_room(CONNECTION_FDS - 1).try_admit(0, || 0));
    assert!(with_room(CONNECTION_FDS).try_admit(0, || 0));
    assert!(default_max_connections() >= 64);
}

#[test]
fn the_default_cap_is_bounded_by_memory() {
    // 1 GiB: half of it at 64 KiB a connection.
    assert_eq!(connections_in(1 << 30), 8192);
    assert_eq!(connections_in(0), 0);
    assert_eq!(
        mem_total("MemTotal:       24567892 kB\nMemFree: 1 kB\n"),
        Some(24_567_892 * 1024)
    );
    assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    // The process's own cgroup and those above it, the smallest limit
    // ("max" is none); v1's memory controller; other lines ignored.
    let files = |path: &str| {
        match path {
            "/sys/fs/cgroup/memory.max" => Some("max\n"),
            "/sys/fs/cgroup/system.slice/memory.max" => Some("8589934592\n"),
            "/sys/fs/cgroup/system.slice/pp.service/memory.max" => Some("1073741824\n"),
            "/sys/fs/cgroup/memory/memory.limit_in_bytes" => Some("9223372036854771712\n"),
            "/sys/fs/cgroup/memory/job/7/memory.limit_in_bytes" => Some("536870912\n"),
            _ => None,
        }
        .map(str::to_string)
    };
    let v2 = "0::/system.slice/pp.service\n";
    assert_eq!(cgroup_memory_limit(v2, files), Some(1 << 30));
    assert_eq!(
        cgroup_memory_limit("0::/system.slice/other.service\n", files),
        Some(8 << 30)
    );
    assert_eq!(cgroup_memory_limit("0::/\n", files), None);
    let v1 = "5:cpu,cpuacct:/job/7\n4:memory:/job/7\nbad line\n1:name=systemd:/\n";
    assert_eq!(cgroup_memory_limit(v1, files), Some(512 << 20));
    assert_eq!(
        cgroup_memory_limit("4:memory:/\n", files),
        Some(9_223_372_036_854_771_712)
    );
    let memory = memory_limit().expect("Linux tells the memory");
    assert!(default_max_connections() <= connections_in(memory).max(64));
}
