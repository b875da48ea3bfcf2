use super::*;

/// Every kind is one the metrics export from 0.
#[test]
fn error_kinds_are_the_exported_ones() {
    use ErrorType::*;
    let mut seen = Vec::new();
    for etype in [
        ConnectRefused,
        ConnectTimedout,
        ConnectNoRoute,
        TLSHandshakeFailure,
        TLSHandshakeTimedout,
        InvalidCert,
        HandshakeError,
        ReadTimedout,
        WriteTimedout,
        ReadError,
        WriteError,
        ConnectionClosed,
        InvalidHTTPHeader,
        H1Error,
        H2Error,
        InvalidH2,
        H2Downgrade,
        InternalError,
        ConnectProxyFailure,
    ] {
        seen.push(error_kind(&Error::new(etype.clone())));
    }
    // Every kind exported is one some error gives (none is dead).
    use crate::observe::metrics::{LabelValue, UpstreamError};
    for kind in UpstreamError::ALL {
        assert!(seen.contains(kind), "no error gives {kind:?}");
    }
}
