//! Header templates, bounded (docs/access.md): no app file may make the
//! proxy hold more than a few MiB for it, at load or per request. The
//! corpus's templates are Jinja expressions (`{{ auth.client_id }}`,
//! `admin@{{ portal.domain }}`, `{{ portal.id[:6] }}@example.com`), so a
//! header template is held to what such expressions need:
//!
//! - at most [`MAX_TEMPLATE_BYTES`] of source, and [`MAX_TEMPLATES`] per
//!   app;
//! - expressions only: no `{% %}` statements (no loops, no `set`), and no
//!   `*` (string and list repetition build up to 100 MB in one step);
//! - a small set of filters that never enlarge a value more than a few
//!   times (`lower`, `upper`, `title`, `capitalize`, `trim`, `default`,
//!   `first`, `last`, `length`, `string`), no functions;
//! - a rendering runs on minijinja's fuel ([`FUEL`] instructions) and its
//!   output stops at [`MAX_VALUE_BYTES`].
//!
//! With every context value bounded too (names and IDs of terminals and
//! peers are at most [`crate::caller::MAX_NAME_BYTES`]), what a
//! rendering holds is bounded by source length times value length; the
//! app's dry render with a worst-case context at load proves each
//! template renders within the limits.

use std::io::Write;

use minijinja::{Environment, UndefinedBehavior};

/// Longest template source.
pub const MAX_TEMPLATE_BYTES: usize = 1024;
/// Longest rendered header value.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
/// Header templates an app may declare, all rules together.
pub const MAX_TEMPLATES: usize = 256;
/// Instructions one rendering may run.
pub const FUEL: u64 = 2_000;

/// The environment header templates are compiled in: strict about unknown
/// variables (a typo is caught at load time instead of sending an empty
/// identity), no HTML escaping (header values), the filters and tests
/// above only, and fuel.
pub fn environment() -> Environment<'static> {
    use minijinja::{filters, tests};
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.add_filter("lower", filters::lower);
    env.add_filter("upper", filters::upper);
    env.add_filter("title", filters::title);
    env.add_filter("capitalize", filters::capitalize);
    env.add_filter("trim", filters::trim);
    env.add_filter("default", filters::default);
    env.add_filter("d", filters::default);
    env.add_filter("first", filters::first);
    env.add_filter("last", filters::last);
    env.add_filter("length", filters::length);
    env.add_filter("string", filters::string);
    env.add_test("defined", tests::is_defined);
    env.add_test("undefined", tests::is_undefined);
    env.add_test("none", tests::is_none);
    env
}

/// Why a template source is refused before it is compiled.
pub fn check_source(source: &str) -> Result<(), String> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "template of {} bytes; at most {MAX_TEMPLATE_BYTES} are accepted",
            source.len()
        ));
    }
    if source.contains("{%") {
        return Err("header templates are expressions only: no {% %} statements".into());
    }
    // `*` outside string literals, inside `{{ }}`.
    let mut in_expr = false;
    let mut quote: Option<char> = None;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match (in_expr, quote, c) {
            (false, _, '{') if chars.peek() == Some(&'{') => {
                chars.next();
                in_expr = true;
            }
            (true, None, '}') if chars.peek() == Some(&'}') => {
                chars.next();
                in_expr = false;
            }
            (true, None, '"' | '\'') => quote = Some(c),
            (true, Some(_), '\\') => {
                chars.next();
            }
            (true, Some(q), c) if c == q => quote = None,
            (true, None, '*') => {
                return Err("'*' (repetition) is not allowed in header templates".into())
            }
            _ => {}
        }
    }
    Ok(())
}

/// A writer that refuses to grow past [`MAX_VALUE_BYTES`].
struct Capped {
    out: Vec<u8>,
    overflowed: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_VALUE_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("over the limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders the template `name` of `env` with `ctx`, within the limits.
pub fn render(env: &Environment<'_>, name: &str, ctx: minijinja::Value) -> Result<String, String> {
    let mut out = Capped {
        out: Vec::new(),
        overflowed: false,
    };
    let rendered = env
        .get_template(name)
        .and_then(|t| t.render_captured_to(ctx, &mut out).map(|_| ()));
    if out.overflowed {
        return Err(format!(
            "the rendered value is over {MAX_VALUE_BYTES} bytes"
        ));
    }
    rendered.map_err(|e| describe(&e))?;
    String::from_utf8(out.out).map_err(|_| "the rendered value is not UTF-8".into())
}

/// A one-line description of a template error, with the detail minijinja
/// knows (its own `Display` leaves out the cause).
pub fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.to_string(),
    }
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod tests;
