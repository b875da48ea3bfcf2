//! Response signatures of the Portal profile (DESIGN section 5): the
//! receiving proxy proves its key on its answer to a verified peer
//! request, and the calling proxy checks it before the app gets the
//! answer's head. Label `portal`, the components, in this order:
//! `"@status"`, `"@method";req`, `"@authority";req`, `"@path";req`,
//! `"@query";req`, `"signature";req;key="portal"` (the request's own
//! signature, so the answer is bound to that very request), then
//! `"content-type"` when the response has one; parameters `created`,
//! `keyid` (the answering Portal's ID), `alg="ed25519"`. The body streams
//! and is not covered (TLS protects it).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use http::HeaderMap;
use sfv::{InnerList, ListEntry};

use super::sign::SignatureHeaders;
use super::{field_dictionary, malformed, serialize_inner_list, SignatureError, Window, LABEL};

/// The request an answer is bound to, as it was signed.
#[derive(Debug, Clone, Copy)]
pub struct RequestBinding<'a> {
    pub method: &'a str,
    /// `@authority` of the request (lower case, no default port).
    pub authority: &'a str,
    pub path: &'a str,
    /// Without `?`; `None` when the request had none.
    pub query: Option<&'a str>,
    /// The request's `portal` signature.
    pub signature: &'a [u8; 64],
}

/// The covered components of the profile, serialized.
fn components(content_type: bool) -> Vec<&'static str> {
    let mut ids = vec![
        "\"@status\"",
        "\"@method\";req",
        "\"@authority\";req",
        "\"@path\";req",
        "\"@query\";req",
        "\"signature\";req;key=\"portal\"",
    ];
    if content_type {
        ids.push("\"content-type\"");
    }
    ids
}

fn content_type(headers: &HeaderMap) -> Result<Option<&str>, SignatureError> {
    headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| malformed("content-type is not text"))
        })
        .transpose()
}

/// The signature base of a response with `status` and `content_type`,
/// bound to `request`, with the serialized signature parameters `params`.
fn base(
    status: u16,
    content_type: Option<&str>,
    request: &RequestBinding<'_>,
    params: &str,
) -> Result<String, SignatureError> {
    let ids = components(content_type.is_some());
    let mut values = vec![
        status.to_string(),
        request.method.to_string(),
        request.authority.to_string(),
        if request.path.is_empty() {
            "/".to_string()
        } else {
            request.path.to_string()
        },
        format!("?{}", request.query.unwrap_or("")),
        format!(":{}:", B64.encode(request.signature)),
    ];
    if let Some(ct) = content_type {
        values.push(ct.to_string());
    }
    let mut out = String::with_capacity(512);
    for (id, value) in ids.iter().zip(values) {
        if value.contains('\n') {
            return Err(malformed(format!("component {id} contains a newline")));
        }
        out.push_str(id);
        out.push_str(": ");
        out.push_str(&value);
        out.push('\n');
    }
    out.push_str("\"@signature-params\": ");
    out.push_str(params);
    Ok(out)
}

/// Signs a response of `status` whose headers are `headers` (for its
/// `Content-Type`), as `keyid` at `created`.
pub fn sign_response(
    key: &SigningKey,
    keyid: &str,
    status: u16,
    headers: &HeaderMap,
    request: &RequestBinding<'_>,
    created: i64,
) -> Result<SignatureHeaders, SignatureError> {
    let content_type = content_type(headers)?;
    let params = format!(
        "({});created={created};keyid=\"{keyid}\";alg=\"ed25519\"",
        components(content_type.is_some()).join(" ")
    );
    let base = base(status, content_type, request, &params)?;
    let signature = key.sign(base.as_bytes());
    Ok(SignatureHeaders {
        signature_input: format!("{LABEL}={params}"),
        signature: format!("{LABEL}=:{}:", B64.encode(signature.to_bytes())),
    })
}

/// Checks the `portal` signature of a response of `status` with
/// `headers`, bound to `request`, made by the peer `keyid` whose key is
/// `key`, at `now`: exactly the profile's components, `created` within
/// the window, `keyid` the peer's, ed25519 `verify_strict`.
pub fn verify_response(
    headers: &HeaderMap,
    status: u16,
    request: &RequestBinding<'_>,
    keyid: &str,
    key: &VerifyingKey,
    now: i64,
    window: Window,
) -> Result<(), SignatureError> {
    let input = field_dictionary(headers, "signature-input")?
        .and_then(|mut d| d.shift_remove(LABEL))
        .ok_or_else(|| SignatureError::MissingComponent("signature-input".into()))?;
    let ListEntry::InnerList(input) = input else {
        return Err(malformed("Signature-Input portal is not an inner list"));
    };
    let signature = field_dictionary(headers, "signature")?
        .and_then(|d| match d.get(LABEL) {
            Some(ListEntry::Item(item)) => item.bare_item.as_byte_sequence().map(<[u8]>::to_vec),
            _ => None,
        })
        .ok_or_else(|| SignatureError::MissingComponent("signature".into()))?;
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| malformed("an ed25519 signature has 64 bytes"))?;
    let content_type = content_type(headers)?;
    let covered = serialize_inner_list(&InnerList {
        items: input.items.clone(),
        params: Default::default(),
    });
    let expected = format!("({})", components(content_type.is_some()).join(" "));
    if covered != expected {
        return Err(SignatureError::MissingComponent(format!(
            "the response signature covers {covered}, not {expected}"
        )));
    }
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
    let base = base(status, content_type, request, &serialize_inner_list(&input))?;
    key.verify_strict(base.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| SignatureError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn request(signature: &[u8; 64]) -> RequestBinding<'_> {
        RequestBinding {
            method: "POST",
            authority: "files.b2blla.p.getportal.org",
            path: "/peer/share",
            query: Some("item=42"),
            signature,
        }
    }

    fn signed(
        status: u16,
        content_type: Option<&str>,
        key: &SigningKey,
        req: &RequestBinding<'_>,
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert("content-type", ct.parse().unwrap());
        }
        let sig = sign_response(key, "the-peer-id", status, &headers, req, NOW).unwrap();
        headers.insert("signature-input", sig.signature_input.parse().unwrap());
        headers.insert("signature", sig.signature.parse().unwrap());
        headers
    }

    #[test]
    fn signed_answers_verify_and_bound_ones_only() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key();
        let req_sig = [7u8; 64];
        let req = request(&req_sig);
        let window = Window::default();
        let verify = |h: &HeaderMap, status, r: &RequestBinding<'_>, k: &VerifyingKey, now| {
            verify_response(h, status, r, "the-peer-id", k, now, window)
        };
        for ct in [Some("application/json"), None] {
            let h = signed(200, ct, &key, &req);
            assert_eq!(verify(&h, 200, &req, &public, NOW), Ok(()), "{ct:?}");
            // Another status, another request, another key: refused.
            assert_eq!(
                verify(&h, 500, &req, &public, NOW),
                Err(SignatureError::BadSignature)
            );
            let other_sig = [8u8; 64];
            assert_eq!(
                verify(&h, 200, &request(&other_sig), &public, NOW),
                Err(SignatureError::BadSignature)
            );
            let other = SigningKey::from_bytes(&[4; 32]).verifying_key();
            assert_eq!(
                verify(&h, 200, &req, &other, NOW),
                Err(SignatureError::BadSignature)
            );
            // Too old, or from the future.
            assert!(matches!(
                verify(&h, 200, &req, &public, NOW + 400),
                Err(SignatureError::Expired { .. })
            ));
            assert!(matches!(
                verify(&h, 200, &req, &public, NOW - 60),
                Err(SignatureError::NotYetValid { .. })
            ));
        }
        // A content type added after signing is not covered: refused.
        let mut h = signed(200, None, &key, &req);
        h.insert("content-type", "text/html".parse().unwrap());
        assert!(matches!(
            verify(&h, 200, &req, &public, NOW),
            Err(SignatureError::MissingComponent(_))
        ));
        // No signature at all.
        assert!(matches!(
            verify(&HeaderMap::new(), 200, &req, &public, NOW),
            Err(SignatureError::MissingComponent(_))
        ));
        // Another Portal's keyid.
        let h = signed(200, None, &key, &req);
        assert!(matches!(
            verify_response(&h, 200, &req, "someone-else", &public, NOW, window),
            Err(SignatureError::UnknownPeer(_))
        ));
    }

    #[test]
    fn the_base_follows_the_profile() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let req_sig = [7u8; 64];
        let req = request(&req_sig);
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        let sig = sign_response(&key, "pid", 201, &headers, &req, NOW).unwrap();
        assert_eq!(
            sig.signature_input,
            "portal=(\"@status\" \"@method\";req \"@authority\";req \"@path\";req \"@query\";req \
             \"signature\";req;key=\"portal\" \"content-type\");created=1800000000;keyid=\"pid\";alg=\"ed25519\""
        );
        let params = sig.signature_input.strip_prefix("portal=").unwrap();
        let b = base(201, Some("application/json"), &req, params).unwrap();
        let lines: Vec<&str> = b.lines().collect();
        assert_eq!(lines[0], "\"@status\": 201");
        assert_eq!(lines[1], "\"@method\";req: POST");
        assert_eq!(lines[4], "\"@query\";req: ?item=42");
        assert_eq!(
            lines[5],
            format!(
                "\"signature\";req;key=\"portal\": :{}:",
                B64.encode(req_sig)
            )
        );
        assert_eq!(lines[6], "\"content-type\": application/json");
        assert!(lines[7].starts_with("\"@signature-params\": (\"@status\""));
    }
}
