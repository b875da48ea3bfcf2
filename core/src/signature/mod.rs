//! Peer request signatures (docs/signing.md): the RFC 9421 profile of
//! Portal, with RFC 9530 `Content-Digest`. Parsing (`sfv`), the signature
//! base, ed25519 `verify_strict`, the time window, and the signing side used
//! by outbound peering and the `sign` subcommand. Pure: no Pingora types;
//! `request_filter` calls [`parse`] and [`verify`], `request_body_filter`
//! checks the body against [`ContentDigest`].

use crate::refusal::Reason;
use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;
use sfv::{Dictionary, InnerList, ListEntry, Parser};

/// The label the proxy signs under, and the one it verifies when no
/// signature carries [`TAG`] (senders of the profile before it had one).
pub const LABEL: &str = "portal";
/// The `tag` parameter of the profile's signatures (RFC 9421 section
/// 2.3): the verifier selects the signature carrying it, whatever its
/// label ([`select_label`]).
pub const TAG: &str = "portal";
/// Components every signature must cover.
pub const REQUIRED: [&str; 4] = ["@method", "@authority", "@path", "@query"];
/// Longest `nonce` accepted (docs/signing.md): the replay cache keeps
/// every nonce for the life of its signature.
pub const MAX_NONCE_BYTES: usize = 128;
/// The component that binds the body.
pub const CONTENT_DIGEST: &str = "content-digest";

/// Why a signed request is refused. [`SignatureError::reason`] is the
/// machine-readable code of docs/signing.md.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("keyid {0:?} is not a peer of this Portal")]
    UnknownPeer(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the signature expired at {expires} (now {now})")]
    Expired { expires: i64, now: i64 },
    #[error("the signature was created at {created}, in the future (now {now})")]
    NotYetValid { created: i64, now: i64 },
    #[error("nonce {0:?} was already used")]
    Replayed(String),
    #[error("Content-Digest does not match the body")]
    DigestMismatch,
    #[error("the signature does not cover {0:?}")]
    MissingComponent(String),
    #[error("{0}")]
    Malformed(String),
    /// An answer with no `portal` signature at all (only answers: a
    /// request without one is an anonymous caller's).
    #[error("the answer is not signed (no portal signature)")]
    Unsigned,
    /// A request on a connection whose client proved a peer's key at the
    /// TLS handshake, not signed by that peer.
    #[error(
        "the connection is peer {connection}'s (its TLS key), but the request is not signed by it"
    )]
    PeerMismatch { connection: String },
    /// A peer whose transport is pinned signed a request that came over a
    /// connection without its key.
    #[error("peer {0} must connect with its identity key (peering.transport is pinned for it)")]
    Unpinned(String),
}

impl SignatureError {
    /// The reason code sent in the 401 body and counted in metrics.
    pub fn reason(&self) -> Reason {
        match self {
            SignatureError::UnknownPeer(_) => Reason::UnknownPeer,
            SignatureError::BadSignature => Reason::BadSignature,
            SignatureError::Expired { .. } => Reason::Expired,
            SignatureError::NotYetValid { .. } => Reason::NotYetValid,
            SignatureError::Replayed(_) => Reason::Replayed,
            SignatureError::DigestMismatch => Reason::DigestMismatch,
            SignatureError::MissingComponent(_) => Reason::MissingComponent,
            SignatureError::Malformed(_) => Reason::Malformed,
            SignatureError::Unsigned => Reason::Unsigned,
            SignatureError::PeerMismatch { .. } => Reason::PeerMismatch,
            SignatureError::Unpinned(_) => Reason::Unpinned,
        }
    }
}

fn malformed(message: impl Into<String>) -> SignatureError {
    SignatureError::Malformed(message.into())
}

/// The parts of a request that a signature covers, as the proxy received
/// them.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// `@authority`: see [`authority`].
    pub authority: &'a str,
    /// The path as received, percent-encoding untouched.
    pub path: &'a str,
    /// The query as received, without `?`; `None` when absent.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// Whether the request carries a body (which `content-digest` binds).
    pub has_body: bool,
}

/// `@authority` of a request to `host` (RFC 9421 section 2.2.3): lower case,
/// without the default port of https.
pub fn authority(host: &str) -> String {
    let host = host.strip_suffix(":443").unwrap_or(host);
    host.to_ascii_lowercase()
}

/// One labelled signature of a request: its `Signature-Input` member and
/// its `Signature` bytes (any RFC 9421 profile).
#[derive(Debug, Clone)]
pub struct SignatureField {
    /// The `Signature-Input` member: covered components and parameters.
    pub input: InnerList,
    pub components: Vec<String>,
    pub signature: [u8; 64],
}

/// The `portal` signature of a request, parsed but not yet verified.
#[derive(Debug, Clone)]
pub struct ParsedSignature {
    /// Its label (`portal`, or any other when selected by its tag).
    pub label: String,
    pub field: SignatureField,
    pub created: i64,
    pub expires: i64,
    pub nonce: String,
    pub keyid: String,
}

/// Finds and parses the signature labelled `label`. `Ok(None)` when the
/// request carries none with that label.
pub fn parse_field(
    headers: &HeaderMap,
    label: &str,
) -> Result<Option<SignatureField>, SignatureError> {
    field_of(
        field_dictionary(headers, "signature-input")?,
        headers,
        label,
    )
}

/// [`parse_field`] with `Signature-Input` already parsed (`inputs`).
fn field_of(
    inputs: Option<Dictionary>,
    headers: &HeaderMap,
    label: &str,
) -> Result<Option<SignatureField>, SignatureError> {
    let input = inputs.and_then(|mut d| d.shift_remove(label));
    let signature = field_dictionary(headers, "signature")?;
    let signature = signature.as_ref().and_then(|d| d.get(label));
    let (input, signature) = match (input, signature) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(malformed(format!("Signature has no {label:?} member"))),
        (None, Some(_)) => {
            return Err(malformed(format!(
                "Signature-Input has no {label:?} member"
            )))
        }
        (Some(i), Some(s)) => (i, s),
    };
    let ListEntry::InnerList(input) = input else {
        return Err(malformed(format!(
            "Signature-Input {label:?} is not an inner list"
        )));
    };
    let signature = match signature {
        ListEntry::Item(item) => item.bare_item.as_byte_sequence(),
        ListEntry::InnerList(_) => None,
    }
    .ok_or_else(|| malformed(format!("Signature {label:?} is not a byte sequence")))?;
    let signature: [u8; 64] = signature.try_into().map_err(|_| {
        malformed(format!(
            "an ed25519 signature has 64 bytes, not {}",
            signature.len()
        ))
    })?;

    let mut components = Vec::with_capacity(input.items.len());
    for item in &input.items {
        let name = item
            .bare_item
            .as_string()
            .ok_or_else(|| malformed("a covered component is not a string"))?
            .as_str();
        if !item.params.is_empty() {
            return Err(malformed(format!(
                "component parameters are not supported ({name:?})"
            )));
        }
        if components.iter().any(|c| c == name) {
            return Err(malformed(format!("component {name:?} is covered twice")));
        }
        components.push(name.to_string());
    }
    Ok(Some(SignatureField {
        input,
        components,
        signature,
    }))
}

/// The label of the profile's signature among a message's (RFC 9421
/// section 7.2.5, selecting by `tag`): the one member of
/// `Signature-Input` with `tag="portal"`, whatever its label; when none
/// has it, the member labelled `portal` without a `tag` (a sender of the
/// profile before the tag). `Ok(None)`: the message carries no signature
/// that claims to be a Portal's, and any other is the application's
/// business, passed on untouched (docs/access.md, "Who is calling"): a
/// draft-cavage `Signature: keyId=...` header of an ActivityPub delivery
/// (no `Signature-Input`), a `Signature` without `Signature-Input`,
/// another application's members (Web Bot Auth's
/// `tag="web-bot-auth"`, an app's own labels, a `portal` label tagged for
/// another application), and a `Signature-Input` that is no
/// structured-field dictionary at all (it claims nothing anyone could
/// verify). Several tagged members are refused: which one counts would be
/// the sender's guess.
pub fn select_label(headers: &HeaderMap) -> Result<Option<String>, SignatureError> {
    let Ok(Some(inputs)) = field_dictionary(headers, "signature-input") else {
        return Ok(None);
    };
    label_among(&inputs)
}

/// [`select_label`] among the members of a parsed `Signature-Input`.
fn label_among(inputs: &Dictionary) -> Result<Option<String>, SignatureError> {
    let tag_of = |entry: &ListEntry| match entry {
        ListEntry::InnerList(list) => list
            .params
            .get("tag")
            .map(|t| t.as_string().map(|s| s.as_str() == TAG)),
        ListEntry::Item(item) => item
            .params
            .get("tag")
            .map(|t| t.as_string().map(|s| s.as_str() == TAG)),
    };
    let mut tagged = inputs
        .iter()
        .filter(|(_, entry)| tag_of(entry) == Some(Some(true)))
        .map(|(label, _)| label.as_str().to_string());
    match (tagged.next(), tagged.next()) {
        (Some(_), Some(_)) => Err(malformed(format!("several signatures carry tag=\"{TAG}\""))),
        (Some(label), None) => Ok(Some(label)),
        (None, _) => Ok(match inputs.get(LABEL) {
            // Labelled ours but tagged for another application: not ours.
            Some(entry) if tag_of(entry).is_some() => None,
            Some(_) => Some(LABEL.to_string()),
            None => None,
        }),
    }
}

/// Finds and parses the profile's signature ([`select_label`]) with the
/// parameters of the Portal profile. `Ok(None)` when the request carries
/// none (it is then not a peer request); an error when it carries one
/// that cannot be used.
pub fn parse(headers: &HeaderMap) -> Result<Option<ParsedSignature>, SignatureError> {
    // `Signature-Input` is parsed once, for the label and the field.
    let Ok(Some(inputs)) = field_dictionary(headers, "signature-input") else {
        return Ok(None);
    };
    let Some(label) = label_among(&inputs)? else {
        return Ok(None);
    };
    let Some(field) = field_of(Some(inputs), headers, &label)? else {
        return Ok(None);
    };
    let param = |name: &str| field.input.params.get(name);
    let int = |name: &str| -> Result<i64, SignatureError> {
        match param(name) {
            None => Err(malformed(format!("parameter {name} is missing"))),
            Some(v) => v
                .as_integer()
                .map(i64::from)
                .ok_or_else(|| malformed(format!("parameter {name} is not an integer"))),
        }
    };
    let string = |name: &str| -> Result<String, SignatureError> {
        match param(name) {
            None => Err(malformed(format!("parameter {name} is missing"))),
            Some(v) => v
                .as_string()
                .map(|s| s.as_str().to_string())
                .ok_or_else(|| malformed(format!("parameter {name} is not a string"))),
        }
    };
    let created = int("created")?;
    let expires = int("expires")?;
    let nonce = string("nonce")?;
    let keyid = string("keyid")?;
    if let Some(alg) = param("alg") {
        if alg.as_string().map(|s| s.as_str()) != Some("ed25519") {
            return Err(malformed("parameter alg must be \"ed25519\""));
        }
    }
    if nonce.is_empty() {
        return Err(malformed("parameter nonce is empty"));
    }
    if nonce.len() > MAX_NONCE_BYTES {
        return Err(malformed(format!(
            "parameter nonce has {} bytes; at most {MAX_NONCE_BYTES} are accepted",
            nonce.len()
        )));
    }
    Ok(Some(ParsedSignature {
        label,
        field,
        created,
        expires,
        nonce,
        keyid,
    }))
}

/// Parses a header as an RFC 8941 dictionary (all its lines, combined).
fn field_dictionary(headers: &HeaderMap, name: &str) -> Result<Option<Dictionary>, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    // Several field lines are one list, joined by commas (RFC 9110 5.3).
    let mut combined = std::borrow::Cow::Borrowed(first.as_bytes());
    for v in values {
        let c = combined.to_mut();
        c.extend_from_slice(b", ");
        c.extend_from_slice(v.as_bytes());
    }
    Parser::new(combined.as_ref())
        .parse::<Dictionary>()
        .map(Some)
        .map_err(|e| malformed(format!("{name} is not a structured-field dictionary: {e}")))
}

/// The time rules of a signature.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Allowed clock difference with the sender, seconds (5).
    pub skew: i64,
    /// Longest allowed `expires - created`, seconds (300).
    pub max_validity: i64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            skew: 5,
            max_validity: 300,
        }
    }
}

/// Checks a parsed signature against the request and the peer's key, at
/// `now` (Unix seconds). The nonce is not checked here (see `replay`), nor
/// the body (see [`ContentDigest`]).
pub fn verify(
    parts: &RequestParts<'_>,
    sig: &ParsedSignature,
    key_of: impl FnOnce(&str) -> Option<VerifyingKey>,
    now: i64,
    window: Window,
) -> Result<(), SignatureError> {
    let components = &sig.field.components;
    for required in REQUIRED {
        if !components.iter().any(|c| c == required) {
            return Err(SignatureError::MissingComponent(required.into()));
        }
    }
    if parts.has_body && !components.iter().any(|c| c == CONTENT_DIGEST) {
        return Err(SignatureError::MissingComponent(CONTENT_DIGEST.into()));
    }
    if sig.expires < sig.created {
        return Err(malformed("expires is before created"));
    }
    if sig.expires - sig.created > window.max_validity {
        return Err(malformed(format!(
            "validity of {} s is longer than the {} s allowed",
            sig.expires - sig.created,
            window.max_validity
        )));
    }
    if sig.created > now + window.skew {
        return Err(SignatureError::NotYetValid {
            created: sig.created,
            now,
        });
    }
    if sig.expires < now - window.skew {
        return Err(SignatureError::Expired {
            expires: sig.expires,
            now,
        });
    }
    let key = key_of(&sig.keyid).ok_or_else(|| SignatureError::UnknownPeer(sig.keyid.clone()))?;
    let base = signature_base(parts, components, &sig.field.input)?;
    key.verify_strict(
        base.as_bytes(),
        &Signature::from_bytes(&sig.field.signature),
    )
    .map_err(|_| SignatureError::BadSignature)
}

mod base;
mod digest;
pub use base::signature_base;
use base::{field_value, serialize_inner_list};
pub mod response;
mod sign;
pub use digest::{ContentDigest, DigestStream};
pub use sign::{
    content_digest, nonce, sign, signed_headers, Outgoing, SignParams, SignatureHeaders,
};

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
