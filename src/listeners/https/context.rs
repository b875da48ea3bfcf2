//! The context of one request on the HTTPS listener: what was received,
//! and where the request stands. Each phase of the shell (`mod.rs`) reads
//! and moves it; dropping it ends what the request holds. [`head`] is the
//! request head as the decision reads it.

use std::time::Instant;

use pingora::{Error, ErrorType, Result};

use crate::admission::guard::InFlight;
use crate::admission::live::LiveRequest;
use crate::compress::Compressing;
use crate::listeners::respond::abort;
use pingora::http::RequestHeader;
use portal_core::body::BodyRate;
use portal_core::decide::{Facts, Head, Plan};
use portal_core::names::HostPort;
use portal_core::refusal::Refusal;
use portal_core::signature::response::RequestBinding;
use portal_core::trace::Trace;

/// Carried from phase to phase of one request: what was received, and
/// where the request stands. Dropping it ends what the request holds (its
/// connection's in-flight mark, its place among the live requests).
pub(crate) struct RequestCtx {
    pub(super) received: Received,
    pub(super) stage: Stage,
}

/// What was received, known from the first phase on.
pub(super) struct Received {
    pub(super) started: Instant,
    /// The host the request names, as received: read once, for the
    /// decision, `X-Forwarded-Host` and the access log.
    pub(super) host: Option<String>,
    /// For a request whose peer signature verified: what the answer's
    /// signature binds it to, whatever the answer.
    pub(super) binding: Option<Box<RequestBinding<'static>>>,
    /// Its connection is busy while this is held.
    pub(super) in_flight: Option<InFlight>,
    /// The trace it carries on, once decided (docs/access.md, "Trace
    /// context").
    pub(super) trace: Option<Trace>,
}

/// Where a request stands.
pub(super) enum Stage {
    /// Not decided: before `request_filter`, or the client went away.
    Undecided,
    /// Answered by the proxy: refused, or failed once forwarded.
    Answered {
        facts: Facts,
        refusal: Refusal,
        /// Where it was forwarded to before it failed.
        upstream: Option<HostPort>,
    },
    /// Forwarded as planned.
    Forwarded(Box<Forwarding>),
}

/// A forwarded request's plan and what it holds while it is open.
pub(super) struct Forwarding {
    pub(super) facts: Facts,
    pub(super) plan: Box<Plan>,
    /// Its place among the requests decided again on reload.
    pub(super) _live: Option<LiveRequest>,
    /// The minimum rate of its body, from the body's first byte (not for
    /// upgraded connections, whose bytes flow at the client's will).
    pub(super) body_rate: Option<(BodyRate, Instant)>,
    /// The encoder of its answer, when compressed.
    pub(super) compressing: Option<Compressing>,
}

impl RequestCtx {
    /// The plan of a forwarded request: the phases after `request_filter`
    /// only run for one.
    pub(super) fn plan(&self) -> Result<&Plan> {
        match &self.stage {
            Stage::Forwarded(f) => Ok(&f.plan),
            _ => Err(Error::explain(
                ErrorType::InternalError,
                "forwarding a request that was not decided to be",
            )),
        }
    }

    pub(super) fn facts(&self) -> Option<&Facts> {
        match &self.stage {
            Stage::Undecided => None,
            Stage::Answered { facts, .. } => Some(facts),
            Stage::Forwarded(f) => Some(&f.facts),
        }
    }

    /// What answered the request, if the proxy did.
    pub(super) fn refusal(&self) -> Option<&Refusal> {
        match &self.stage {
            Stage::Answered { refusal, .. } => Some(refusal),
            _ => None,
        }
    }

    /// Where the request went, if it was forwarded.
    pub(super) fn upstream(&self) -> Option<&HostPort> {
        match &self.stage {
            Stage::Answered { upstream, .. } => upstream.as_ref(),
            Stage::Forwarded(f) => Some(&f.plan.upstream),
            Stage::Undecided => None,
        }
    }

    /// The request is answered by the proxy from here on; returns the
    /// error that aborts what Pingora was doing.
    pub(super) fn fail(&mut self, refusal: Refusal) -> Box<Error> {
        let error = abort(&refusal);
        self.stage = match std::mem::replace(&mut self.stage, Stage::Undecided) {
            Stage::Forwarded(f) => Stage::Answered {
                facts: f.facts,
                refusal,
                upstream: Some(f.plan.upstream),
            },
            Stage::Answered {
                facts, upstream, ..
            } => Stage::Answered {
                facts,
                refusal,
                upstream,
            },
            Stage::Undecided => Stage::Answered {
                facts: Facts::default(),
                refusal,
                upstream: None,
            },
        };
        error
    }
}

/// The head as `decide` reads it; `tls_peer`: the peer whose key
/// opened the connection.
pub(super) fn head<'a>(
    req: &'a RequestHeader,
    host: Option<&'a str>,
    has_body: bool,
    tls_peer: Option<&'a str>,
) -> Head<'a> {
    Head {
        method: req.method.as_str(),
        host,
        target: req.raw_path(),
        headers: &req.headers,
        has_body,
        tls_peer,
    }
}
