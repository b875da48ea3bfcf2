//! The signature base of a request (RFC 9421 section 2.5): each covered
//! component's value, then `@signature-params`, built in one string.

use http::HeaderMap;
use sfv::{InnerList, ListSerializer};

use super::{malformed, RequestParts, SignatureError};

/// Appends the value of one covered component (RFC 9421 section 2) to
/// `out`.
fn push_component(
    parts: &RequestParts<'_>,
    name: &str,
    out: &mut String,
) -> Result<(), SignatureError> {
    let path = if parts.path.is_empty() {
        "/"
    } else {
        parts.path
    };
    let query = |out: &mut String| {
        if let Some(q) = parts.query {
            out.push('?');
            out.push_str(q);
        }
    };
    match name {
        "@method" => out.push_str(parts.method),
        "@authority" => out.push_str(parts.authority),
        "@scheme" => out.push_str("https"),
        "@path" => out.push_str(path),
        "@query" => {
            out.push('?');
            out.push_str(parts.query.unwrap_or(""));
        }
        "@request-target" => {
            out.push_str(path);
            query(out);
        }
        "@target-uri" => {
            out.push_str("https://");
            out.push_str(parts.authority);
            out.push_str(path);
            query(out);
        }
        derived if derived.starts_with('@') => {
            return Err(malformed(format!("component {derived:?} is not supported")))
        }
        field => {
            if field.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(malformed(format!(
                    "field component {field:?} must be lower case"
                )));
            }
            if !parts.headers.contains_key(field) {
                return Err(SignatureError::MissingComponent(field.to_string()));
            }
            push_field_value(parts.headers, field, out)?
        }
    }
    Ok(())
}

/// The signature base (RFC 9421 section 2.5) of `components` with the
/// signature parameters `input`.
pub fn signature_base(
    parts: &RequestParts<'_>,
    components: &[String],
    input: &InnerList,
) -> Result<String, SignatureError> {
    let mut base = String::with_capacity(256);
    for name in components {
        base.push('"');
        base.push_str(name);
        base.push_str("\": ");
        let start = base.len();
        push_component(parts, name, &mut base)?;
        if base[start..].contains('\n') {
            return Err(malformed(format!("component {name:?} contains a newline")));
        }
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&serialize_inner_list(input));
    Ok(base)
}

pub(super) fn serialize_inner_list(input: &InnerList) -> String {
    let mut ser = ListSerializer::new();
    {
        let mut list = ser.inner_list();
        list.items(&input.items);
        let _ = list.finish().parameters(&input.params);
    }
    ser.finish().unwrap_or_default()
}

/// A field's value as a signature base has it: every line of it, each
/// trimmed, joined by `, ` (RFC 9421 section 2.1), as text.
pub(super) fn field_value(headers: &HeaderMap, name: &str) -> Result<String, SignatureError> {
    let mut out = String::new();
    push_field_value(headers, name, &mut out)?;
    Ok(out)
}

/// [`field_value`], appended to `out`.
fn push_field_value(
    headers: &HeaderMap,
    name: &str,
    out: &mut String,
) -> Result<(), SignatureError> {
    for (i, line) in headers.get_all(name).iter().enumerate() {
        let text = line
            .to_str()
            .map_err(|_| malformed(format!("field {name:?} is not text")))?;
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(text.trim());
    }
    Ok(())
}
