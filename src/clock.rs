//! The one clock and random source the shells read and pass to the pure
//! core (which reads neither). Any room may use it.

#![forbid(unsafe_code)]

/// Seconds since the Unix epoch: the one clock the shells read and pass
/// to the pure core.
pub fn unix_now() -> i64 {
    unix_time() as i64
}

/// [`unix_now`] with its fraction.
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A fresh signature nonce from the operating system's random source (the
/// core encodes it: [`portal_core::signature::nonce`]).
pub fn fresh_nonce() -> String {
    portal_core::signature::nonce(rand::random())
}
