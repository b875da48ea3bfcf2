//! The label values of the proxy's series: closed sets, each an enum whose
//! `ALL` list is what its series is exported with from 0, so that no call
//! site can invent a value and every value is seen before its first event
//! (alerts on `increase()` see the first one).

use std::marker::PhantomData;

use prometheus::{IntCounterVec, Registry};

/// A closed set of label values.
pub(crate) trait LabelValue: Copy + 'static {
    /// Every value, exported from 0.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

/// Declares a [`LabelValue`] enum: each variant with its text.
macro_rules! label_values {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The label value.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl $crate::observe::metrics::labels::LabelValue for $name {
            const ALL: &'static [$name] = &[$($name::$variant,)+];
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }
    };
}

/// A counter with one label from a closed set, every value exported from 0.
#[derive(Clone)]
pub(crate) struct Counted<L> {
    vec: IntCounterVec,
    _values: PhantomData<L>,
}

impl<L: LabelValue> Counted<L> {
    pub(crate) fn new(registry: &Registry, name: &str, help: &str, label: &str) -> Self {
        let vec = super::counter_vec(registry, name, help, &[label]);
        for value in L::ALL {
            vec.with_label_values(&[value.as_str()]);
        }
        Counted {
            vec,
            _values: PhantomData,
        }
    }

    pub(crate) fn inc(&self, value: L) {
        self.vec.with_label_values(&[value.as_str()]).inc();
    }

    /// The count of `value`.
    #[cfg(test)]
    pub(crate) fn get(&self, value: L) -> u64 {
        self.vec.with_label_values(&[value.as_str()]).get()
    }
}

label_values! {
    /// `portal_proxy_rate_limited_total{limit}`.
    RateLimit {
        Anonymous = "anonymous",
        Peer = "peer",
        FailedAuthentications = "failed_authentications",
        PeerNonces = "peer_nonces",
    }
}

label_values! {
    /// `portal_proxy_slow_clients_total{phase}`.
    SlowPhase {
        Handshake = "handshake",
        Head = "head",
        MqttIdle = "mqtt_idle",
        BodyRate = "body_rate",
    }
}

label_values! {
    /// `portal_proxy_peer_handshakes_total{result}`.
    PeerHandshake {
        Verified = "verified",
        UnknownKey = "unknown_key",
        BadCertificate = "bad_certificate",
        BadProof = "bad_proof",
    }
}

label_values! {
    /// `portal_proxy_proxy_protocol_total{result}`.
    ProxyHeader {
        Accepted = "accepted",
        Local = "local",
        Missing = "missing",
        Malformed = "malformed",
        Closed = "closed",
        Untrusted = "untrusted",
    }
}

label_values! {
    /// `portal_proxy_dns_lookups_total{result}`.
    DnsLookup {
        Ok = "ok",
        Stale = "stale",
        Error = "error",
    }
}

label_values! {
    /// The result of a reload: `ok`, or `error` (the last good version kept).
    Reload {
        Ok = "ok",
        Error = "error",
    }
}

label_values! {
    /// `portal_proxy_acme_orders_total{result}`: `issued`, or where the
    /// order failed (`acme::Stage`).
    AcmeOrder {
        Issued = "issued",
        AccountError = "account_error",
        CaError = "ca_error",
        SolverError = "solver_error",
        PropagationTimeout = "propagation_timeout",
        WriteError = "write_error",
    }
}

label_values! {
    /// `portal_proxy_compression_skipped_total{reason}`.
    CompressionSkipped {
        MaxConcurrent = "max_concurrent",
    }
}

label_values! {
    /// The `kind` of `portal_proxy_upstream_errors_total`.
    UpstreamError {
        ConnectRefused = "connect_refused",
        ConnectTimeout = "connect_timeout",
        Unresolvable = "unresolvable",
        Tls = "tls",
        Timeout = "timeout",
        ConnectionClosed = "connection_closed",
        Protocol = "protocol",
        Other = "other",
    }
}

label_values! {
    /// A response's status class; `none` when no response was sent.
    StatusClass {
        Informational = "1xx",
        Success = "2xx",
        Redirection = "3xx",
        ClientError = "4xx",
        ServerError = "5xx",
        None = "none",
    }
}

label_values! {
    /// The state file kinds of `portal_proxy_state_reloads_total{file}`.
    StateFile {
        StateDir = "state_dir",
        App = "app",
        Terminals = "terminals",
        TerminalJwtSecret = "terminal_jwt_secret",
        Peers = "peers",
        AppAddresses = "app_addresses",
    }
}

impl StatusClass {
    /// The class of `status`.
    pub(crate) fn of(status: u16) -> StatusClass {
        match status {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::None,
        }
    }
}
