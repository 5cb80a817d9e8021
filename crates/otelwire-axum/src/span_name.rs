//! The span's name, `{METHOD} {route}`.

use std::borrow::Cow;

/// `{METHOD} {route}`, or `{METHOD}` when no route matched (never the raw
/// path). Built by hand: the formatting machinery costs more than the copy.
pub(crate) fn span_name(method: &'static str, route: Option<&str>) -> Cow<'static, str> {
    match route {
        Some(route) => {
            let mut name = String::with_capacity(method.len() + 1 + route.len());
            name.push_str(method);
            name.push(' ');
            name.push_str(route);
            Cow::Owned(name)
        }
        None => Cow::Borrowed(method),
    }
}
