//! Counting gRPC messages as they pass: each is a 5-byte prefix (flag, then
//! a big-endian length) and that many bytes, split across frames at will.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The message counts of one RPC, per direction.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) requests: AtomicU64,
    pub(crate) responses: AtomicU64,
}

/// Where a stream of bytes stands in its message framing.
#[derive(Debug, Default)]
pub(crate) struct Framing {
    /// Prefix bytes seen of the current message (0..5).
    prefix_seen: u8,
    /// The length read so far from the prefix.
    length: u32,
    /// Payload bytes still to skip.
    payload_left: u64,
}

impl Framing {
    /// Reads `data`; returns the number of messages whose prefix completed.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut started = 0;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let skip = (self.payload_left as usize).min(data.len());
                self.payload_left -= skip as u64;
                data = &data[skip..];
                continue;
            }
            // The flag byte, then four length bytes.
            if self.prefix_seen > 0 {
                self.length = (self.length << 8) | u32::from(data[0]);
            }
            self.prefix_seen += 1;
            data = &data[1..];
            if self.prefix_seen == 5 {
                started += 1;
                self.payload_left = u64::from(self.length);
                self.prefix_seen = 0;
                self.length = 0;
            }
        }
        started
    }
}

pin_project_lite::pin_project! {
    /// A request body that counts its messages into [`Counts::requests`].
    pub(crate) struct CountedBody<B> {
        #[pin]
        inner: B,
        framing: Framing,
        counts: Arc<Counts>,
    }
}

impl<B> CountedBody<B> {
    pub(crate) fn new(inner: B, counts: Arc<Counts>) -> Self {
        CountedBody {
            inner,
            framing: Framing::default(),
            counts,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = this.framing.feed(data);
            this.counts.requests.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend(len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn messages_are_counted_across_any_split() {
        let mut stream = Vec::new();
        for len in [0, 3, 300, 1] {
            stream.extend(message(len));
        }
        for chunk in [1, 2, 4, 5, 7, 1000] {
            let mut f = Framing::default();
            let n: u64 = stream.chunks(chunk).map(|c| f.feed(c)).sum();
            assert_eq!(n, 4, "chunks of {chunk}");
        }
    }
}
