//! What each client connection is wrapped in: a deadline for every write (a client that never
//! reads cannot hold a response, or the connection, forever), and the JSON error envelope for
//! the answers hyper writes by itself (malformed requests, oversized heads), which never reach
//! the router.
//!
//! Written here rather than taken from a crate: the envelope rewrite has to sit on the raw
//! bytes hyper writes, and the write deadline is a few lines beside it.

use imgmeta_domain::{ErrorBody, ErrorCode};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A connection's stream with a write deadline and hyper's own error answers rewritten.
pub(crate) struct GuardedIo<T> {
    inner: T,
    write_timeout: Duration,
    /// Running while a write waits for the client to read.
    write_deadline: Option<Pin<Box<Sleep>>>,
    /// A rewritten error answer being written in place of hyper's, and how many of hyper's
    /// bytes it stands for.
    replacement: Option<Replacement>,
}

struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    stands_for: usize,
}

impl<T> GuardedIo<T> {
    pub(crate) fn new(inner: T, write_timeout: Duration) -> Self {
        Self {
            inner,
            write_timeout,
            write_deadline: None,
            replacement: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> GuardedIo<T> {
    /// Polls a write, failing it with `TimedOut` once it has waited `write_timeout` for the
    /// client to make room.
    fn write_with_deadline(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            // A partial write while the client lags behind does not restart the deadline: a
            // client reading a trickle (a byte every few seconds) is cut off like one that
            // reads nothing. Only a write the socket takes whole shows the client keeping up.
            Poll::Ready(Ok(n)) if n < buf.len() && self.write_deadline.is_some() => {
                if self.write_deadline.as_ref().is_some_and(|d| d.is_elapsed()) {
                    self.write_deadline = None;
                    return Poll::Ready(Err(self.timed_out()));
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(result) => {
                self.write_deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.write_timeout;
                let deadline = self
                    .write_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    self.write_deadline = None;
                    return Poll::Ready(Err(self.timed_out()));
                }
                Poll::Pending
            }
        }
    }

    /// The error that ends a connection whose client did not read in time, logged once.
    fn timed_out(&self) -> io::Error {
        tracing::warn!(
            kind = "security",
            event = "response_write_timeout",
            timeout_ms = u64::try_from(self.write_timeout.as_millis()).unwrap_or(u64::MAX),
            "client did not read its response in time; connection closed"
        );
        io::Error::new(io::ErrorKind::TimedOut, "response write timed out")
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none()
            && let Some(bytes) = enveloped(buf)
        {
            this.replacement = Some(Replacement {
                bytes,
                written: 0,
                stands_for: buf.len(),
            });
        }
        let Some(mut replacement) = this.replacement.take() else {
            return this.write_with_deadline(cx, buf);
        };
        while replacement.written < replacement.bytes.len() {
            let rest = replacement.bytes[replacement.written..].to_vec();
            match this.write_with_deadline(cx, &rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => replacement.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    this.replacement = Some(replacement);
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(replacement.stands_for))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Hyper then hands each response head over in one contiguous buffer, which is what the
    // rewrite looks at.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// If `buf` is the head of an error answer hyper made itself (our router's answers always
/// carry a `content-type`; hyper's carry none and no body), the same status with the JSON
/// envelope instead, closing the connection.
fn enveloped(buf: &[u8]) -> Option<Vec<u8>> {
    if !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status_line = head.lines().next()?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?
        .get(..3)?
        .parse()
        .ok()?;
    if status < 400 || head.to_ascii_lowercase().contains("\r\ncontent-type:") {
        return None;
    }
    let (code, message) = match status {
        431 => (
            ErrorCode::HeadersTooLarge,
            "the request's headers are too many or too large",
        ),
        414 => (ErrorCode::UriTooLong, "the request target is too long"),
        408 => (
            ErrorCode::RequestTimeout,
            "the request did not arrive in time",
        ),
        413 => (ErrorCode::PayloadTooLarge, "the request body is too large"),
        _ => (
            ErrorCode::BadRequest,
            "malformed HTTP request (request line, headers or Transfer-Encoding)",
        ),
    };
    metrics::counter!(imgmeta_telemetry::REQUEST_ERRORS, "code" => code.as_str()).increment(1);
    tracing::info!(
        kind = "security",
        event = "malformed_request",
        http.status = status,
        code = code.as_str(),
        "request refused by the HTTP layer"
    );
    let body = ErrorBody::new(code, message).envelope().to_string();
    let reason = status_line.get(13..).unwrap_or("").trim();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::{GuardedIo, enveloped};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client reading one byte every `every`, until the connection ends.
    fn trickle_reader(
        mut client: tokio::io::DuplexStream,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut byte = [0u8; 1];
            loop {
                tokio::time::sleep(every).await;
                if client.read(&mut byte).await.map_or(true, |n| n == 0) {
                    break;
                }
            }
        })
    }

    #[tokio::test]
    async fn a_client_reading_a_trickle_is_cut_off_like_one_that_reads_nothing() {
        let (server, client) = tokio::io::duplex(16);
        let mut io = GuardedIo::new(server, Duration::from_millis(200));
        // Each stall is shorter than the deadline, but the whole answer would take minutes.
        let reader = trickle_reader(client, Duration::from_millis(20));
        let started = Instant::now();
        let written = io.write_all(&[7u8; 4096]).await;
        assert_eq!(written.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        reader.abort();
    }

    #[tokio::test]
    async fn a_client_that_keeps_up_gets_its_whole_answer() {
        let (server, mut client) = tokio::io::duplex(16);
        let mut io = GuardedIo::new(server, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        io.write_all(&[7u8; 64 * 1024]).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), 64 * 1024);
    }

    #[test]
    fn hypers_bare_error_answers_get_the_envelope() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
        let rewritten = String::from_utf8(enveloped(bare).unwrap()).unwrap();
        assert!(rewritten.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(rewritten.contains("content-type: application/json"));
        assert!(rewritten.ends_with(r#"{"error":{"code":"headers_too_large","message":"the request's headers are too many or too large"}}"#));
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert!(
            String::from_utf8(enveloped(bad).unwrap())
                .unwrap()
                .contains("\"bad_request\"")
        );
    }

    #[test]
    fn the_routers_own_answers_and_successes_pass_unchanged() {
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(enveloped(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(enveloped(ok).is_none());
        assert!(enveloped(b"{\"partial\": ").is_none());
    }
}
