//! Scrubbing `url.path` before it is recorded
//! ([`OtelLayer::scrub_path`](crate::OtelLayer::scrub_path)).

use std::borrow::Cow;
use std::sync::Arc;

/// A function that rewrites `url.path` before it is recorded.
pub(crate) type PathScrubber = Arc<dyn for<'a> Fn(&'a str) -> Cow<'a, str> + Send + Sync>;

/// The replacement of a scrubbed path segment.
pub const SCRUBBED: &str = "[REDACTED]";

/// A path scrubber for [`OtelLayer::scrub_path`](crate::OtelLayer::scrub_path)
/// from segment patterns: each pattern is a path of literal segments and
/// `*` (any one segment); the segments of a path that match a pattern's `*`
/// become [`SCRUBBED`]. Path parameters (`;jsessionid=…` in any segment)
/// are always removed.
///
/// ```
/// let scrub = otelwire_axum::scrub_segments(&["/reset/*", "/users/*/tokens/*"]);
/// assert_eq!(scrub("/reset/s3cr3t"), "/reset/[REDACTED]");
/// assert_eq!(scrub("/users/7/tokens/abc;jsessionid=x"), "/users/[REDACTED]/tokens/[REDACTED]");
/// assert_eq!(scrub("/orders/7;jsessionid=x"), "/orders/7");
/// assert_eq!(scrub("/orders/7"), "/orders/7");
/// ```
pub fn scrub_segments(
    patterns: &[&str],
) -> impl for<'a> Fn(&'a str) -> Cow<'a, str> + Send + Sync + 'static {
    let patterns: Vec<Vec<String>> = patterns
        .iter()
        .map(|p| p.split('/').map(str::to_owned).collect())
        .collect();
    move |path: &str| {
        let params = path.contains(';');
        let segments: Vec<&str> = path
            .split('/')
            .map(|s| s.split(';').next().unwrap_or(""))
            .collect();
        let pattern = patterns.iter().find(|p| {
            p.len() == segments.len() && p.iter().zip(&segments).all(|(p, s)| p == "*" || p == s)
        });
        match pattern {
            None if !params => Cow::Borrowed(path),
            None => Cow::Owned(segments.join("/")),
            Some(p) => Cow::Owned(
                p.iter()
                    .zip(&segments)
                    .map(|(p, s)| if p == "*" { SCRUBBED } else { s })
                    .collect::<Vec<_>>()
                    .join("/"),
            ),
        }
    }
}
