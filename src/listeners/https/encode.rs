//! On the way back to the client: the answer's compression (docs/config.md,
//! "Response compression"). What is compressed is
//! `portal_core::encoding`'s choice; the body streams through the encoder
//! chunk by chunk, never held whole.

use http::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, TRANSFER_ENCODING, VARY,
};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::ops::compress::{Compressing, Compressors};
use portal_core::encoding::{choose, compressed_etag, varies_on_accept_encoding, Exchange};

/// Prepares the head of an app's answer for compression, and returns its
/// encoder when it is to be compressed. `signed`: the answer to a verified
/// peer, which goes as the app sent it.
pub(super) fn compress_answer(
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
        head.append_header(VARY, "Accept-Encoding")?;
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
        head.insert_header(TRANSFER_ENCODING, "chunked")?;
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
