//! What the guard holds: the connections by stage, the counts per
//! address, and who gives at the cap ([`Registry::victim`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::CLOSED;

#[derive(Default)]
pub(super) struct Registry {
    /// In their TLS handshake, by socket.
    pub(super) handshaking: HashMap<RawFd, Arc<Conn>>,
    /// Past it, by the address of their socket digest (what the request
    /// filters see, for HTTP/1 and HTTP/2 alike).
    pub(super) serving: HashMap<usize, Arc<Conn>>,
    /// Public connections per client address.
    pub(super) per_client: HashMap<IpAddr, usize>,
    /// HTTP/2 streams in flight beyond the first of their connection, per
    /// client address (public listeners).
    pub(super) extra_streams: HashMap<IpAddr, usize>,
    /// Private connections per client address, and in all.
    pub(super) private_per_client: HashMap<IpAddr, usize>,
    pub(super) private_open: usize,
    /// Connections admitted past the cap (another shed for each) per
    /// address, in this period of [`PUSH_PERIOD`] and the last one.
    pub(super) pushed: [HashMap<IpAddr, usize>; 2],
    pub(super) pushed_since: Option<Instant>,
}

/// How long an address's pushes past the cap weigh on it (one to two
/// periods).
pub(super) const PUSH_PERIOD: Duration = Duration::from_secs(5);

impl Registry {
    /// The upstream sockets that public connections will open, which the
    /// cap counts ahead: one for a connection without a request in flight
    /// (for its next request), one for each request in flight whose
    /// socket is not open yet (a burst of requests begun at once would
    /// otherwise be recounted short of their sockets, and admit too many).
    pub(super) fn awaiting_upstream(&self) -> usize {
        self.handshaking
            .values()
            .chain(self.serving.values())
            .filter(|c| c.capped && c.state.load(Ordering::Relaxed) != CLOSED)
            .map(|c| match c.inflight.load(Ordering::Relaxed) {
                0 => 1,
                _ => c.connecting.load(Ordering::Relaxed) as usize,
            })
            .sum()
    }

    /// `ip` had a connection admitted past the cap.
    pub(super) fn pushed_in(&mut self, ip: Option<IpAddr>, now: Instant) {
        self.age_pushes(now);
        if let Some(ip) = ip {
            *self.pushed[0].entry(ip).or_default() += 1;
        }
    }

    /// Starts a new period of pushes when this one is over (from each
    /// push and each recount of the cap, so that old pushes are forgotten
    /// with no new one).
    pub(super) fn age_pushes(&mut self, now: Instant) {
        let over = self
            .pushed_since
            .is_none_or(|since| now.saturating_duration_since(since) >= PUSH_PERIOD);
        if over {
            self.pushed[1] = std::mem::take(&mut self.pushed[0]);
            self.pushed_since = Some(now);
        }
    }

    /// Connections `ip` pushed in past the cap lately.
    pub(super) fn pushes(&self, ip: IpAddr) -> usize {
        self.pushed.iter().filter_map(|p| p.get(&ip)).sum()
    }

    /// A client's share in use: its public connections and extra streams.
    pub(super) fn load(&self, ip: IpAddr) -> usize {
        self.per_client.get(&ip).copied().unwrap_or(0)
            + self.extra_streams.get(&ip).copied().unwrap_or(0)
    }

    /// The public connection to shed so that one from `new_ip` is
    /// admitted at the cap, if there is one. What an
    /// address holds is counted in descriptors: two a connection (its
    /// socket and the guard's duplicate) and one a request in flight (the
    /// upstream socket it holds), so that uploads or streams that each
    /// hold an upstream socket weigh what they cost.
    /// `asking` is the connection that needs the room when it is already
    /// admitted (a request of its own short of an upstream socket): never
    /// its own victim, and not counted in its address's weight, so that it
    /// is judged as it was at admission.
    pub(super) fn victim(
        &self,
        new_ip: Option<IpAddr>,
        asking: Option<&Arc<Conn>>,
    ) -> Option<Arc<Conn>> {
        let now = Instant::now();
        let open = |c: &&Arc<Conn>| {
            c.capped
                && c.state.load(Ordering::Relaxed) != CLOSED
                && asking.is_none_or(|a| a.id != c.id)
        };
        let conns: Vec<&Arc<Conn>> = self
            .handshaking
            .values()
            .chain(self.serving.values())
            .filter(open)
            .collect();
        let mut held: HashMap<IpAddr, usize> = HashMap::new();
        for c in &conns {
            if let Some(ip) = c.ip {
                *held.entry(ip).or_default() += descriptors(c);
            }
        }
        let load = |c: &Arc<Conn>| c.ip.map_or(0, |ip| held[&ip]);
        // Idle first; among those, the most loaded address's, oldest idle.
        // An address's load counts the connections it pushed in past the
        // cap lately beside those it holds: a flood arriving faster than
        // it holds (each of its connections shed for the next) gives
        // before a client that holds as much but waits its turn.
        let weight =
            |c: &Arc<Conn>| load(c) + c.ip.map_or(0, |ip| self.pushes(ip)) * CONNECTION_WEIGHT;
        let (busy, idle): (Vec<&Arc<Conn>>, Vec<&Arc<Conn>>) =
            conns.into_iter().partition(|c| c.idle_since(now).is_none());
        if let Some(c) = idle
            .into_iter()
            .min_by_key(|c| (std::cmp::Reverse(weight(c)), c.idle_since(now)))
        {
            return Some(c.clone());
        }
        // All busy: only an address at or over its fair share (the
        // descriptors the connections hold, divided among the addresses,
        // the newcomer's included) gives, to one under it: a cap full of
        // addresses that each hold their share still lets a new one in,
        // the oldest connection of the heaviest giving way. What no
        // address holds (listeners, logs, shed sockets not yet closed) is
        // no one's share.
        let addresses = held.len() + usize::from(new_ip.is_some_and(|ip| !held.contains_key(&ip)));
        let share = held.values().sum::<usize>() / addresses.max(1);
        let heaviest = busy
            .into_iter()
            .max_by_key(|c| (load(c), std::cmp::Reverse(c.accepted)))?;
        let under = new_ip.map_or(0, |ip| held.get(&ip).copied().unwrap_or(0)) < share;
        (load(heaviest) >= share && under).then(|| heaviest.clone())
    }
}

/// The descriptors a connection holds: its socket and the guard's
/// duplicate, and one upstream socket for each request in flight.
pub(super) fn descriptors(conn: &Conn) -> usize {
    CONNECTION_WEIGHT + conn.inflight.load(Ordering::Relaxed) as usize
}

/// The descriptors of a connection without a request: its socket and
/// the guard's duplicate.
pub(super) const CONNECTION_WEIGHT: usize = 2;
