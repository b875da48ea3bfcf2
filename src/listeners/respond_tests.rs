use super::*;

/// Every kind is one the metrics export from 0.
#[test]
fn error_kinds_are_the_exported_ones() {
    use ErrorType::*;
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
        let kind = error_kind(&Error::new(etype.clone()));
        assert!(
            crate::observe::metrics::UPSTREAM_ERROR_KINDS.contains(&kind),
            "{etype:?} gives {kind}"
        );
    }
}
