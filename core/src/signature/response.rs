//! Response signatures of the Portal profile (docs/signing.md): the
//! receiving proxy proves its key on its answer to a verified peer
//! request, and the calling proxy checks it before the app gets the
//! answer's head (docs/signing.md). Label `portal`, the components, in
//! this order: `"@status"`, `"@method";req`, `"@authority";req`,
//! `"@path";req`, `"@query";req`, `"signature";req;key="portal"` (the
//! request's own signature, so the answer is bound to that very request),
//! then every header field of the answer but those each hop sets for
//! itself (framing and connection fields, the signature fields), by name
//! in order, each as all its lines combined (RFC 9421 section 2.1);
//! parameters `created`, `keyid` (the answering Portal's ID),
//! `alg="ed25519"`. The calling proxy passes on only the fields covered:
//! so the app gets only what the peer signed. The body streams; when the
//! answer carries `Content-Digest`, that is covered like any field and
//! the caller checks the body against it as it streams.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use http::HeaderMap;
use sfv::{BareItem, InnerList, ListEntry};

use super::sign::SignatureHeaders;
use super::{
    field_dictionary, field_value, malformed, select_label, serialize_inner_list, SignatureError,
    Window, LABEL, TAG,
};

/// The request an answer is bound to, as it was signed (docs/signing.md,
/// response signatures): borrowed from a request at hand, or owned
/// ([`RequestBinding::into_owned`]) to outlive it, as a verified peer's
/// request is kept for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBinding<'a> {
    pub method: Cow<'a, str>,
    /// `@authority` of the request (lower case, no default port).
    pub authority: Cow<'a, str>,
    pub path: Cow<'a, str>,
    /// Without `?`; `None` when the request had none.
    pub query: Option<Cow<'a, str>>,
    /// The label of the request's signature (`portal` when this Portal
    /// signed it; the sender's when selected by tag).
    pub label: Cow<'a, str>,
    /// The request's signature.
    pub signature: [u8; 64],
}

impl RequestBinding<'_> {
    /// The same binding, owning its text.
    pub fn into_owned(self) -> RequestBinding<'static> {
        RequestBinding {
            method: Cow::Owned(self.method.into_owned()),
            authority: Cow::Owned(self.authority.into_owned()),
            path: Cow::Owned(self.path.into_owned()),
            query: self.query.map(|q| Cow::Owned(q.into_owned())),
            label: Cow::Owned(self.label.into_owned()),
            signature: self.signature,
        }
    }
}

/// The components every answer's signature starts with, serialized,
/// bound to the request signature labelled `label`.
fn bound(label: &str) -> [String; 6] {
    [
        "\"@status\"".to_string(),
        "\"@method\";req".to_string(),
        "\"@authority\";req".to_string(),
        "\"@path\";req".to_string(),
        "\"@query\";req".to_string(),
        format!("\"signature\";req;key=\"{label}\""),
    ]
}

/// Header fields an answer's signature never covers: each hop sets them
/// for itself (framing, connection), or they carry the signature.
const NOT_COVERED: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "signature",
    "signature-input",
    "date",
];

/// Whether the signature of an answer covers a field named `name` (lower
/// case) when the answer has it.
pub fn is_coverable(name: &str) -> bool {
    !NOT_COVERED.contains(&name)
}

/// The names of the fields `headers` has that a signature covers, in
/// order, once each.
fn coverable_fields(headers: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| is_coverable(n))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The signature base of a response with `status` and the covered
/// `fields` of `headers`, bound to `request`, with the serialized
/// signature parameters `params`.
fn base(
    status: u16,
    headers: &HeaderMap,
    fields: &[String],
    request: &RequestBinding<'_>,
    params: &str,
) -> Result<String, SignatureError> {
    let mut lines: Vec<(String, String)> = bound(&request.label)
        .into_iter()
        .zip([
            status.to_string(),
            request.method.to_string(),
            request.authority.to_string(),
            if request.path.is_empty() {
                "/".to_string()
            } else {
                request.path.to_string()
            },
            format!("?{}", request.query.as_deref().unwrap_or("")),
            format!(":{}:", B64.encode(request.signature)),
        ])
        .collect();
    for name in fields {
        lines.push((format!("\"{name}\""), field_value(headers, name)?));
    }
    let mut out = String::with_capacity(512);
    for (id, value) in lines {
        if value.contains('\n') {
            return Err(malformed(format!("component {id} contains a newline")));
        }
        out.push_str(&id);
        out.push_str(": ");
        out.push_str(&value);
        out.push('\n');
    }
    out.push_str("\"@signature-params\": ");
    out.push_str(params);
    Ok(out)
}

/// Signs a response of `status` whose headers are `headers` (every field
/// a signature covers), as `keyid` at `created`.
pub fn sign_response(
    key: &SigningKey,
    keyid: &str,
    status: u16,
    headers: &HeaderMap,
    request: &RequestBinding<'_>,
    created: i64,
) -> Result<SignatureHeaders, SignatureError> {
    let fields: Vec<String> = coverable_fields(headers)
        .into_iter()
        .map(str::to_string)
        .collect();
    let ids: Vec<String> = bound(&request.label)
        .into_iter()
        .chain(fields.iter().map(|n| format!("\"{n}\"")))
        .collect();
    let params = format!(
        "({});created={created};alg=\"ed25519\";keyid=\"{keyid}\";tag=\"{TAG}\"",
        ids.join(" ")
    );
    let base = base(status, headers, &fields, request, &params)?;
    let signature = key.sign(base.as_bytes());
    Ok(SignatureHeaders {
        signature_input: format!("{LABEL}={params}"),
        signature: format!("{LABEL}=:{}:", B64.encode(signature.to_bytes())),
    })
}

/// Checks the `portal` signature of a response of `status` with
/// `headers`, bound to `request`, made by the peer `keyid` whose key is
/// `key`, at `now`: the profile's components (the bound ones, then
/// header fields present in the answer, each once, no parameters),
/// `created` within the window, `keyid` the peer's, ed25519
/// `verify_strict`. Returns the names of the fields covered: the only
/// ones the caller may pass on.
pub fn verify_response(
    headers: &HeaderMap,
    status: u16,
    request: &RequestBinding<'_>,
    keyid: &str,
    key: &VerifyingKey,
    now: i64,
    window: Window,
) -> Result<Vec<String>, SignatureError> {
    let label = select_label(headers)?.ok_or(SignatureError::Unsigned)?;
    let input = field_dictionary(headers, "signature-input")?
        .and_then(|mut d| d.shift_remove(label.as_str()))
        .ok_or(SignatureError::Unsigned)?;
    let ListEntry::InnerList(input) = input else {
        return Err(malformed(format!(
            "Signature-Input {label} is not an inner list"
        )));
    };
    let signature = field_dictionary(headers, "signature")?
        .and_then(|d| match d.get(label.as_str()) {
            Some(ListEntry::Item(item)) => item.bare_item.as_byte_sequence().map(<[u8]>::to_vec),
            _ => None,
        })
        .ok_or_else(|| {
            malformed(format!(
                "a {label} Signature-Input without a {label} Signature"
            ))
        })?;
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| malformed("an ed25519 signature has 64 bytes"))?;
    let fields = covered_fields(&input, headers, &request.label)?;
    let created = input
        .params
        .get("created")
        .and_then(|v| v.as_integer())
        .map(i64::from)
        .ok_or_else(|| malformed("parameter created is missing or not an integer"))?;
    match input.params.get("keyid").and_then(|v| v.as_string()) {
        Some(id) if id.as_str() == keyid => {}
        _ => {
            return Err(SignatureError::UnknownPeer(format!(
                "response keyid is not {keyid}"
            )))
        }
    }
    if let Some(alg) = input.params.get("alg") {
        if alg.as_string().map(|s| s.as_str()) != Some("ed25519") {
            return Err(malformed("parameter alg must be \"ed25519\""));
        }
    }
    if created > now + window.skew {
        return Err(SignatureError::NotYetValid { created, now });
    }
    if created < now - window.max_validity - window.skew {
        return Err(SignatureError::Expired {
            expires: created + window.max_validity,
            now,
        });
    }
    let base = base(
        status,
        headers,
        &fields,
        request,
        &serialize_inner_list(&input),
    )?;
    key.verify_strict(base.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| SignatureError::BadSignature)?;
    Ok(fields)
}

/// The header fields a response signature's components name after the
/// bound ones: plain lower-case names, once each, present in `headers`.
fn covered_fields(
    input: &InnerList,
    headers: &HeaderMap,
    label: &str,
) -> Result<Vec<String>, SignatureError> {
    let items = &input.items;
    let bound_ids = bound(label);
    let first = serialize_inner_list(&InnerList {
        items: items.iter().take(bound_ids.len()).cloned().collect(),
        params: Default::default(),
    });
    let expected = format!("({})", bound_ids.join(" "));
    if items.len() < bound_ids.len() || first != expected {
        return Err(SignatureError::MissingComponent(format!(
            "the response signature must start with {expected}, not {first}"
        )));
    }
    let mut fields: Vec<String> = Vec::new();
    for item in &items[bound_ids.len()..] {
        let name = match &item.bare_item {
            BareItem::String(name) if item.params.is_empty() => name.as_str(),
            _ => {
                return Err(malformed(
                    "a response signature covers header fields by plain name only",
                ))
            }
        };
        if name.starts_with('@')
            || name.bytes().any(|b| b.is_ascii_uppercase())
            || !is_coverable(name)
            || fields.iter().any(|f| f == name)
        {
            return Err(malformed(format!(
                "the response signature cannot cover {name:?}"
            )));
        }
        if !headers.contains_key(name) {
            return Err(SignatureError::MissingComponent(format!(
                "the answer has no {name} field, which its signature covers"
            )));
        }
        fields.push(name.to_string());
    }
    Ok(fields)
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
