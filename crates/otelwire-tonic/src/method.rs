//! `rpc.method` from a request path: `/package.Service/Method` becomes
//! `package.Service/Method`; anything else is `_OTHER`.

/// What a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcMethod<'a> {
    /// A well-formed gRPC path: `package.Service/Method`.
    Known(&'a str),
    /// Not a gRPC path (the raw path, for `rpc.method_original`).
    Other(&'a str),
}

/// Longest `rpc.method_original` recorded, in bytes.
const MAX_ORIGINAL: usize = 256;

impl<'a> RpcMethod<'a> {
    /// Reads a request path.
    pub(crate) fn parse(path: &'a str) -> Self {
        let Some(rest) = path.strip_prefix('/') else {
            return RpcMethod::Other(path);
        };
        match rest.split_once('/') {
            Some((service, method))
                if !service.is_empty()
                    && !method.is_empty()
                    && !method.contains('/')
                    && rest.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                RpcMethod::Known(rest)
            }
            _ => RpcMethod::Other(path),
        }
    }

    /// `rpc.method`.
    pub(crate) fn name(self) -> &'a str {
        match self {
            RpcMethod::Known(m) => m,
            RpcMethod::Other(_) => "_OTHER",
        }
    }

    /// `rpc.method_original`: only for paths that are not gRPC methods.
    pub(crate) fn original(self) -> Option<&'a str> {
        match self {
            RpcMethod::Known(_) => None,
            RpcMethod::Other(p) => {
                let mut end = p.len().min(MAX_ORIGINAL);
                while !p.is_char_boundary(end) {
                    end -= 1;
                }
                Some(&p[..end])
            }
        }
    }

    /// The span name: the method, or `grpc` when it is not one (the
    /// conventions' fallback to `rpc.system.name`: never the raw path).
    pub(crate) fn span_name(self) -> &'a str {
        match self {
            RpcMethod::Known(m) => m,
            RpcMethod::Other(_) => "grpc",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let m = RpcMethod::parse("/shop.v1.Pricing/Quote");
        assert_eq!(m.name(), "shop.v1.Pricing/Quote");
        assert_eq!(m.span_name(), "shop.v1.Pricing/Quote");
        assert_eq!(m.original(), None);
        for other in ["/", "", "/x", "/a/", "//m", "/a/b/c", "/a b/c", "nope/x"] {
            let m = RpcMethod::parse(other);
            assert_eq!(m.name(), "_OTHER", "{other}");
            assert_eq!(m.span_name(), "grpc");
            assert_eq!(m.original(), Some(other));
        }
        let long = format!("/{}", "é".repeat(300));
        assert!(RpcMethod::parse(&long).original().unwrap().len() <= 256);
    }
}
