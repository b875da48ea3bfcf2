//! Whether every configured listening address can be had (README.md,
//! systemd): free to bind now, or listened on by a running portal-proxy,
//! whose sockets a graceful upgrade (`-u`) takes over. Pingora only panics
//! the thread of a listener that cannot bind, and the process runs on
//! without it: `-t`, a start and an upgrade find out first, naming the
//! key.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, TcpListener};

use crate::config::Config;

/// The listening addresses of the config, by key.
fn addresses(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    [
        ("listen.https", Some(config.listen_https)),
        ("listen.http", config.listen_http),
        ("listen.mqtts", config.listen_mqtts),
        ("internal.listen", config.internal_listen),
        ("metrics.listen", config.metrics_listen),
    ]
    .into_iter()
    .filter_map(|(key, addr)| Some((key, addr?)))
    .collect()
}

/// Checks every address: free now, or (`handed_over`: an upgrade, or
/// `-t` of one) listened on by a running portal-proxy, whose sockets an
/// upgrade receives. Every address that can be had by neither way is a
/// problem naming its key. `privileged_elsewhere` (`-t`, which may run
/// without the service's `CAP_NET_BIND_SERVICE`): a port this process may
/// not bind is not a problem of the config.
pub(super) fn check(config: &Config, handed_over: bool, privileged_elsewhere: bool) -> Vec<String> {
    let held = if handed_over {
        running_proxies_sockets()
    } else {
        HashSet::new()
    };
    addresses(config)
        .into_iter()
        .filter_map(|(key, addr)| match TcpListener::bind(addr) {
            Ok(_) => None,
            Err(_) if held.contains(&addr) => None,
            Err(e) if privileged_elsewhere && e.kind() == std::io::ErrorKind::PermissionDenied => {
                println!("note: {key}: {addr} needs privileges this check does not have: not checked");
                None
            }
            Err(e) if handed_over => Some(format!(
                "{key}: cannot listen on {addr}: {e} (and no running portal-proxy listens there to hand it over)"
            )),
            Err(e) => Some(format!("{key}: cannot listen on {addr}: {e}")),
        })
        .collect()
}

/// The TCP addresses every other running portal-proxy process (by its
/// command name, this one's) listens on: its sockets' inodes
/// (`/proc/<pid>/fd`) among the listening sockets of this network
/// namespace. Where a portal-proxy's descriptors cannot be read (another
/// user's, or not dumpable), a listening socket owned by this process's
/// user stands for it: under the systemd unit that user is the proxy's
/// own.
fn running_proxies_sockets() -> HashSet<SocketAddr> {
    let me = std::process::id();
    let comm = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
    let ours = comm("self");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return HashSet::new();
    };
    let mut inodes = HashSet::new();
    let mut opaque = false;
    for pid in procs
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && ours.is_some() && comm(&pid.to_string()) == ours)
    {
        match socket_inodes(pid) {
            Some(found) => inodes.extend(found),
            None => opaque = true,
        }
    }
    let uid = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    listening()
        .into_iter()
        .filter(|l| {
            inodes.contains(&l.inode) || (opaque && uid.as_ref().is_ok_and(|u| *u == l.uid))
        })
        .map(|l| l.addr)
        .collect()
}

/// The inodes of the sockets the process `pid` holds; `None` if its
/// descriptors cannot be read.
fn socket_inodes(pid: u32) -> Option<HashSet<u64>> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        fds.flatten()
            .filter_map(|fd| {
                let link = std::fs::read_link(fd.path()).ok()?;
                let link = link.to_str()?;
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect(),
    )
}

/// A listening TCP socket of this network namespace.
#[derive(Debug, PartialEq, Eq)]
struct Listening {
    addr: SocketAddr,
    uid: u32,
    inode: u64,
}

/// The listening sockets of `/proc/self/net/tcp` and `tcp6` (`/proc/net`
/// itself is hidden under systemd's `ProcSubset=pid`).
fn listening() -> Vec<Listening> {
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_listening)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A line of `/proc/net/tcp{,6}` for a listening socket (state `0A`).
fn parse_listening(line: &str) -> Option<Listening> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (local, state, uid, inode) = (
        fields.get(1)?,
        fields.get(3)?,
        fields.get(7)?,
        fields.get(9)?,
    );
    if *state != "0A" {
        return None;
    }
    let (ip, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // Each 32-bit word is printed as a number whose memory, in the host's
    // byte order, holds the address bytes.
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let ip = match words.as_slice() {
        [w] => IpAddr::from(w.to_ne_bytes()),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::from(bytes)
        }
        _ => return None,
    };
    Some(Listening {
        addr: SocketAddr::new(ip, port),
        uid: uid.parse().ok()?,
        inode: inode.parse().ok()?,
    })
}

#[cfg(test)]
#[path = "bindable_tests.rs"]
mod tests;
