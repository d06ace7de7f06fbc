//! Request paths: what a `path` may say, and how `[target]`'s joins the
//! URL's base path.
//!
//! The path (and query) of `target.url` is the base. `path` in `[target]`
//! is joined to it: url `http://h:8080/api` with `path = "/orders/{{seq}}"`
//! sends `/api/orders/{{seq}}`. A query in the URL is kept and the path's
//! own query follows it after `&` (`http://h/api?key=k` + `/orders?x=1` →
//! `/api/orders?key=k&x=1`). A `[[requests]]` table's `path` is the whole
//! path on the host, as it always was (the URL's path is only its default).
//!
//! A path may be a template: outside `{{ … }}` it is checked as written,
//! and what it renders for arrival 0 must be a path too.

use super::error::Fail;
use super::raw::Section;
use super::template::{pieces, Piece};
use super::units::quote;

/// A request path: `/`, then no spaces, `#` or control characters outside
/// `{{ … }}` (what an expression renders is checked on the compiled plan).
pub(super) fn http_path(sec: &Section<'_, '_>, p: &str) -> Result<(), Fail> {
    let bad = |b: u8| b <= b' ' || b == 0x7f || b == b'#';
    let literal_ok = pieces(p).into_iter().all(|piece| match piece {
        Piece::Lit(l) => !l.bytes().any(bad),
        Piece::Expr(..) => true,
    });
    if !(p.starts_with('/') && literal_ok) {
        return Err(sec.fail(
            "path",
            format!(
                "expected a path starting with / such as \"/items?id=1\", without spaces or #, got {}",
                quote(p)
            ),
        ));
    }
    Ok(())
}

/// What a templated path renders must be a path too (checked on arrival
/// 0; what varies per arrival is checked again on the compiled plan).
pub(super) fn rendered_path(sec: &Section<'_, '_>, sample: &[u8]) -> Result<(), Fail> {
    let bad = |b: &u8| *b <= b' ' || *b == 0x7f || *b == b'#';
    if sample.starts_with(b"/") && !sample.iter().any(bad) {
        return Ok(());
    }
    Err(sec.fail(
        "path",
        format!(
            "expected the template to render a path starting with / without spaces or #; \
             arrival 0 renders {}",
            quote(&String::from_utf8_lossy(sample))
        ),
    ))
}

/// The byte offset of the `?` starting a path's query, outside `{{ … }}`.
fn query_at(p: &str) -> Option<usize> {
    pieces(p).into_iter().find_map(|piece| match piece {
        Piece::Lit(l) => l
            .find('?')
            .map(|i| l.as_ptr() as usize - p.as_ptr() as usize + i),
        Piece::Expr(..) => None,
    })
}

/// `path` joined to `base` (the URL's path and query): the base's path,
/// then `path`'s, then the base's query and `path`'s, joined by `&`.
pub(super) fn join_path(base: &str, path: &str) -> String {
    let split = |s: &str| -> (String, String) {
        match query_at(s) {
            Some(i) => (s[..i].to_owned(), s[i + 1..].to_owned()),
            None => (s.to_owned(), String::new()),
        }
    };
    let (base_path, base_query) = split(base);
    let (own_path, own_query) = split(path);
    let mut out = format!("{}{own_path}", base_path.trim_end_matches('/'));
    let queries: Vec<&str> = [base_query.as_str(), own_query.as_str()]
        .into_iter()
        .filter(|q| !q.is_empty())
        .collect();
    if !queries.is_empty() {
        out.push('?');
        out.push_str(&queries.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_the_url_base() {
        assert_eq!(join_path("/", "/orders"), "/orders");
        assert_eq!(join_path("/api", "/orders/{{seq}}"), "/api/orders/{{seq}}");
        assert_eq!(join_path("/api/", "/orders"), "/api/orders");
        assert_eq!(join_path("/api", "/"), "/api/");
        assert_eq!(join_path("/api?key=k", "/o?x=1"), "/api/o?key=k&x=1");
        assert_eq!(join_path("/?key=k", "/o"), "/o?key=k");
        assert_eq!(join_path("/api?", "/o"), "/api/o");
        assert_eq!(
            join_path("/a?k=1", "/o/{{pick(\"x?y\")}}?q"),
            "/a/o/{{pick(\"x?y\")}}?k=1&q"
        );
    }
}
