//! The signing side of the Portal profile: what outbound peering and the
//! `sign` subcommand add to a request so that [`super::verify`] accepts it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use http::HeaderMap;
use sfv::{InnerList, ListEntry, Parser};
use sha2::{Digest, Sha256};

use super::{
    authority, malformed, serialize_inner_list, signature_base, RequestParts, SignatureError,
    CONTENT_DIGEST, LABEL, REQUIRED, TAG,
};

/// The `Content-Digest` value for `body`: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", B64.encode(Sha256::digest(body)))
}

/// The headers that sign a request: `Signature-Input` and `Signature`
/// values for the `portal` label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub signature_input: String,
    pub signature: String,
}

/// What to sign, besides the request parts.
#[derive(Debug, Clone)]
pub struct SignParams<'a> {
    pub keyid: &'a str,
    pub created: i64,
    pub expires: i64,
    pub nonce: &'a str,
}

/// A nonce from 16 random bytes (the caller draws them): base64url
/// without padding.
pub fn nonce(random: [u8; 16]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    URL_SAFE_NO_PAD.encode(random)
}

/// Signs a request the way [`verify`] checks it: covers `@method`,
/// `@authority`, `@path`, `@query`, and `content-digest` when the request
/// has a body (its `Content-Digest` header must then be in `parts.headers`).
pub fn sign(
    parts: &RequestParts<'_>,
    key: &SigningKey,
    params: &SignParams<'_>,
) -> Result<SignatureHeaders, SignatureError> {
    let mut components: Vec<String> = REQUIRED.iter().map(|c| c.to_string()).collect();
    if parts.has_body {
        components.push(CONTENT_DIGEST.to_string());
    }
    // Parameters in the order of RFC 9421 section 2.3's list, which some
    // verifiers (httpsig 0.0.24) rebuild rather than read as received.
    let input = format!(
        "({});created={};expires={};nonce=\"{}\";alg=\"ed25519\";keyid=\"{}\";tag=\"{TAG}\"",
        components
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(" "),
        params.created,
        params.expires,
        params.nonce,
        params.keyid
    );
    let parsed: InnerList = match Parser::new(&input).parse::<sfv::List>() {
        Ok(mut list) if list.len() == 1 => match list.remove(0) {
            ListEntry::InnerList(l) => l,
            ListEntry::Item(_) => return Err(malformed("signature parameters")),
        },
        _ => {
            return Err(malformed(
                "nonce or keyid cannot be a structured-field string",
            ))
        }
    };
    let base = signature_base(parts, &components, &parsed)?;
    let signature = key.sign(base.as_bytes());
    Ok(SignatureHeaders {
        signature_input: format!("{LABEL}={}", serialize_inner_list(&parsed)),
        signature: format!("{LABEL}=:{}:", B64.encode(signature.to_bytes())),
    })
}

/// An outgoing request to sign: `method https://<authority><path_and_query>`.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    pub path_and_query: &'a str,
    pub body: Option<&'a [u8]>,
}

/// Signs `request` as `keyid` at `now`, valid for `validity` seconds, with
/// `nonce` (from [`nonce`]); the headers to add, in order: `Content-Digest` (when
/// there is a body), `Signature-Input`, `Signature`. Used by outbound
/// peering and the `sign` subcommand.
pub fn signed_headers(
    key: &SigningKey,
    keyid: &str,
    request: &Outgoing<'_>,
    now: i64,
    validity: i64,
    nonce: &str,
) -> Result<Vec<(&'static str, String)>, SignatureError> {
    let Outgoing {
        method,
        authority: authority_,
        path_and_query,
        body,
    } = *request;
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut headers = HeaderMap::new();
    let mut out = Vec::with_capacity(3);
    if let Some(body) = body {
        let digest = content_digest(body);
        headers.insert(
            CONTENT_DIGEST,
            digest.parse().expect("base64 is a header value"),
        );
        out.push(("Content-Digest", digest));
    }
    let authority_ = authority(authority_);
    let parts = RequestParts {
        method,
        authority: &authority_,
        path: if path.is_empty() { "/" } else { path },
        query,
        headers: &headers,
        has_body: body.is_some(),
    };
    let sig = sign(
        &parts,
        key,
        &SignParams {
            keyid,
            created: now,
            expires: now + validity,
            nonce,
        },
    )?;
    out.push(("Signature-Input", sig.signature_input));
    out.push(("Signature", sig.signature));
    Ok(out)
}
