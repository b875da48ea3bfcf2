//! What is done to an app's answer on its way back to the client: signed
//! when it answers a verified peer (docs/signing.md), compressed otherwise
//! when `portal_core::encoding` chooses to (docs/config.md, "Response
//! compression"; the body then streams through the encoder chunk by chunk,
//! never held whole).

use http::header::{ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, TRANSFER_ENCODING};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use crate::compress::{Compressing, Compressors};
use portal_core::encoding::{choose, compressed_etag, varies_on_accept_encoding, Exchange};
use portal_core::identity::Identity;
use portal_core::signature::response::sign_response;
use portal_core::signature::response::RequestBinding;

/// Adds this Portal's response signature to `head` when the request was a
/// verified peer's (`binding`).
pub(super) fn sign(
    identity: &Identity,
    binding: Option<&RequestBinding<'static>>,
    head: &mut ResponseHeader,
) -> Result<()> {
    let Some(binding) = binding else {
        return Ok(());
    };
    let signed = sign_response(
        &identity.signing_key,
        &identity.id,
        head.status.as_u16(),
        &head.headers,
        binding,
        crate::clock::unix_now(),
    )
    .map_err(|e| Error::because(ErrorType::InternalError, "signing the answer", e))?;
    head.insert_header("signature-input", signed.signature_input)?;
    head.insert_header("signature", signed.signature)?;
    Ok(())
}

/// Prepares the head of an app's answer for compression, and returns its
/// encoder when it is to be compressed. `signed`: the answer to a verified
/// peer, which goes as the app sent it.
pub(super) fn compress(
    compressors: &Compressors,
    session: &Session,
    head: &mut ResponseHeader,
    signed: bool,
) -> Result<Option<Compressing>> {
    let settings = &compressors.settings;
    if !settings.enabled {
        return Ok(None);
    }
    let req = session.req_header();
    let exchange = Exchange {
        method: req.method.as_str(),
        http10: req.version < http::Version::HTTP_11,
        request: &req.headers,
        status: head.status.as_u16(),
        response: &head.headers,
        signed,
    };
    let choice = choose(&exchange, settings.min_bytes as u64);
    if choice.vary && !varies_on_accept_encoding(&head.headers) {
        // By its wire spelling and a static value: given `VARY`, Pingora
        // copies a title-cased name it has no static spelling for, on
        // every answer (benches/README.md, "Allocations of the whole binary").
        head.append_header(
            bytes::Bytes::from_static(b"Vary"),
            http::HeaderValue::from_static("Accept-Encoding"),
        )?;
    }
    let Some(coding) = choice.coding else {
        return Ok(None);
    };
    let Some(compressing) = compressors.start(coding) else {
        return Ok(None);
    };
    // Its length is known only at the end, and ranges of it are not the
    // app's ranges.
    head.remove_header(&CONTENT_LENGTH);
    head.remove_header(&ACCEPT_RANGES);
    head.insert_header(CONTENT_ENCODING, coding.token())?;
    if !session.as_downstream().is_http2() {
        head.insert_header(TRANSFER_ENCODING, http::HeaderValue::from_static("chunked"))?;
    }
    let etag = head.headers.get(ETAG).map(|v| v.as_bytes().to_vec());
    if let Some(etag) = etag {
        match compressed_etag(&etag).and_then(|v| http::HeaderValue::from_bytes(&v).ok()) {
            Some(weak) => head.insert_header(ETAG, weak)?,
            None => {
                head.remove_header(&ETAG);
            }
        }
    }
    Ok(Some(compressing))
}
