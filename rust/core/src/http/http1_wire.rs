//! The bytes of one HTTP/1.1 generation exchange (RFC 9112), as functions over buffers: the
//! request head the client writes, the response head it reads (interim 1xx heads skipped),
//! how the response body is delimited, and the chunked transfer coding. No I/O here:
//! `http1` feeds these from its sockets, and the tests feed them byte by byte.

use bytes::{Buf, Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::header::{CONNECTION, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use reqwest::header::{TRANSFER_ENCODING, ValueIter};

/// The most bytes a response head may have (hyper's client allows about 400 KiB of buffer,
/// but no completion API sends a head of more than a few hundred bytes).
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers a response may have (hyper's default).
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line or trailer line accepted.
const MAX_LINE_BYTES: usize = 4 * 1024;
/// The most bytes of trailers accepted after the last chunk.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// The headers every request to one server carries, as `name: value\r\n` lines written once.
#[derive(Clone)]
pub(crate) struct RequestHeaders(Vec<u8>);

impl RequestHeaders {
    /// `headers` in their order (names are lower case in a `HeaderMap`, as hyper writes them).
    pub(crate) fn new(headers: &HeaderMap) -> Self {
        let mut lines = Vec::new();
        for (name, value) in headers {
            lines.extend_from_slice(name.as_str().as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        Self(lines)
    }
}

/// Writes a whole POST request (head and body) into `out`, which is cleared first.
pub(crate) fn write_post(
    out: &mut Vec<u8>,
    path_and_query: &str,
    headers: &RequestHeaders,
    body: &[u8],
) {
    out.clear();
    out.reserve(path_and_query.len() + headers.0.len() + body.len() + 64);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out.extend_from_slice(&headers.0);
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Whether `target` can be written as a request target as it is: visible ASCII only (a
/// `reqwest::Url`'s path and query are already percent-encoded).
pub(crate) fn is_request_target(target: &str) -> bool {
    target.starts_with('/') && target.bytes().all(|byte| byte.is_ascii_graphic())
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A response's status line and headers.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection can carry another request once this body was read.
    pub keep_alive: bool,
}

/// Takes the response head from the start of `buffer`: `Ok(None)` while it is incomplete.
/// Interim heads (1xx other than 101) are taken and skipped, as every client does.
pub(crate) fn take_head(buffer: &mut BytesMut) -> Result<Option<ResponseHead>, String> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut slots);
        let length = match response.parse(buffer) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => {
                if buffer.len() > MAX_HEAD_BYTES {
                    return Err(format!(
                        "the response head is larger than {MAX_HEAD_BYTES} bytes"
                    ));
                }
                return Ok(None);
            }
            Err(error) => return Err(format!("invalid HTTP response head: {error}")),
        };
        let code = response.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| format!("invalid HTTP status code {code}"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err("unexpected 101 Switching Protocols".to_owned());
        }
        if status.is_informational() {
            buffer.advance(length);
            continue;
        }
        let mut headers = HeaderMap::with_capacity(response.headers.len());
        for header in response.headers.iter() {
            let name = HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|_| format!("invalid header name {:?}", header.name))?;
            let value = HeaderValue::from_bytes(header.value)
                .map_err(|_| format!("invalid value of header {:?}", header.name))?;
            headers.append(name, value);
        }
        let http11 = response.version == Some(1);
        buffer.advance(length);
        let framing = framing(status, &headers)?;
        let keep_alive = http11
            && framing != Framing::UntilClose
            && !has_token(headers.get_all(CONNECTION).iter(), "close")
            // A body delimited both ways is a smuggling risk: read it, then close.
            && !(framing == Framing::Chunked && headers.contains_key(CONTENT_LENGTH));
        return Ok(Some(ResponseHead {
            status,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// RFC 9112 section 6.3, for the answer to a POST.
fn framing(status: StatusCode, headers: &HeaderMap) -> Result<Framing, String> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Empty);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .rfind(|coding| !coding.is_empty());
        return Ok(match last {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.to_str().unwrap_or("").split(',') {
            let item = item.trim();
            let parsed = (!item.is_empty() && item.bytes().all(|byte| byte.is_ascii_digit()))
                .then(|| item.parse::<u64>().ok())
                .flatten();
            match (parsed, length) {
                (Some(parsed), None) => length = Some(parsed),
                (Some(parsed), Some(seen)) if parsed == seen => {}
                _ => return Err(format!("invalid content-length {value:?}")),
            }
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

fn has_token(values: ValueIter<'_, HeaderValue>, token: &str) -> bool {
    values
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// What the chunked decoder found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A piece of the body.
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The last chunk and the trailers were read: the body is complete.
    End,
}

/// The chunked transfer coding, decoded from a buffer that fills up piece by piece.
#[derive(Debug, Default)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    trailer_bytes: usize,
}

#[derive(Debug, Default)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl ChunkedDecoder {
    /// The next piece of the body from `buffer` (consuming what it decoded).
    pub(crate) fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, String> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Decoded::End),
                ChunkState::Size => {
                    let Some(line) = take_line(buffer)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buffer.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).map_or(buffer.len(), |n| n.min(buffer.len()));
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(buffer.split_to(take).freeze()));
                }
                ChunkState::DataEnd => {
                    let Some(line) = take_line(buffer)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if !line.is_empty() {
                        return Err("invalid chunked body: no line end after a chunk".to_owned());
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(buffer)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > MAX_TRAILER_BYTES {
                        return Err(format!(
                            "the trailers are larger than {MAX_TRAILER_BYTES} bytes"
                        ));
                    }
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

/// A line (without its CRLF, or a bare LF) taken from the start of `buffer`; `None` until
/// the line end arrived.
fn take_line(buffer: &mut BytesMut) -> Result<Option<BytesMut>, String> {
    match buffer.iter().position(|byte| *byte == b'\n') {
        Some(end) => {
            let mut line = buffer.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            Ok(Some(line))
        }
        None if buffer.len() > MAX_LINE_BYTES => Err(format!(
            "invalid chunked body: a line longer than {MAX_LINE_BYTES} bytes"
        )),
        None => Ok(None),
    }
}

/// The size of a chunk-size line (`1a3f`, possibly with `;extensions`).
fn chunk_size(line: &[u8]) -> Result<u64, String> {
    let digits = line
        .split(|byte| *byte == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let invalid = || {
        format!(
            "invalid chunked body: bad chunk size {:?}",
            String::from_utf8_lossy(line)
        )
    };
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid());
    }
    digits.iter().try_fold(0u64, |size, byte| {
        let digit = char::from(*byte).to_digit(16).ok_or_else(invalid)?;
        Ok(size * 16 + u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(bytes: &[u8]) -> Result<Option<ResponseHead>, String> {
        take_head(&mut BytesMut::from(bytes))
    }

    #[test]
    fn a_post_is_one_buffer_with_the_length() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert("authorization", HeaderValue::from_static("Bearer k"));
        let mut out = b"stale".to_vec();
        write_post(
            &mut out,
            "/v1/chat?x=1",
            &RequestHeaders::new(&headers),
            b"{}",
        );
        assert_eq!(
            out,
            b"POST /v1/chat?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nauthorization: Bearer k\r\n\
              content-length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn request_targets_are_visible_ascii_from_the_root() {
        assert!(is_request_target(
            "/v1/chat/completions?api-version=2024-02-01"
        ));
        assert!(!is_request_target("/a b"));
        assert!(!is_request_target("/caf\u{e9}"));
        assert!(!is_request_target("v1"));
    }

    #[test]
    fn a_head_split_anywhere_is_read_once_complete() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
        for cut in 0..raw.len() {
            let mut buffer = BytesMut::from(&raw[..cut]);
            let head_end = raw.len() - 7;
            let head = take_head(&mut buffer).expect("valid so far");
            assert_eq!(head.is_some(), cut >= head_end, "cut at {cut}");
        }
        let mut buffer = BytesMut::from(&raw[..]);
        let head = take_head(&mut buffer).expect("valid").expect("complete");
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(7));
        assert!(head.keep_alive);
        assert_eq!(head.headers["content-type"], "application/json");
        assert_eq!(&buffer[..], b"{\"a\":1}");
    }

    #[test]
    fn interim_heads_are_skipped() {
        let mut buffer = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n\
               HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 0\r\n\r\n"[..],
        );
        let head = take_head(&mut buffer).expect("valid").expect("complete");
        assert_eq!(head.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(head.headers["retry-after"], "3");
        assert!(head.headers.get("link").is_none());
        assert!(buffer.is_empty());
        let error = head_of(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").expect_err("101");
        assert!(error.contains("101"), "{error}");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |head: &str| {
            let head = head_of(format!("{head}\r\n\r\n").as_bytes())
                .expect("valid")
                .expect("complete");
            (head.framing, head.keep_alive)
        };
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5"),
            (Framing::Length(5), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5, 5"),
            (Framing::Length(5), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked"),
            (Framing::Chunked, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked"),
            (Framing::Chunked, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5"),
            (Framing::Chunked, false)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip"),
            (Framing::UntilClose, false)
        );
        assert_eq!(framing("HTTP/1.1 200 OK"), (Framing::UntilClose, false));
        assert_eq!(framing("HTTP/1.1 204 No Content"), (Framing::Empty, true));
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: keep-alive, Close"),
            (Framing::Length(2), false)
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\ncontent-length: 2"),
            (Framing::Length(2), false)
        );
        for bad in ["5, 6", "-1", "", "0x5", "99999999999999999999"] {
            let error =
                head_of(format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n").as_bytes())
                    .expect_err(bad);
            assert!(error.contains("content-length"), "{bad}: {error}");
        }
    }

    #[test]
    fn bad_heads_are_errors_and_big_ones_are_refused() {
        assert!(head_of(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(head_of(b"SMTP ready\r\n\r\n").is_err());
        let mut big = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 10, b'a');
        let error = head_of(&big).expect_err("too big");
        assert!(error.contains("larger than"), "{error}");
    }

    fn decode_all(
        decoder: &mut ChunkedDecoder,
        buffer: &mut BytesMut,
        body: &mut Vec<u8>,
    ) -> Decoded {
        loop {
            match decoder.decode(buffer).expect("valid") {
                Decoded::Data(piece) => body.extend_from_slice(&piece),
                other => return other,
            }
        }
    }

    #[test]
    fn a_chunked_body_fed_byte_by_byte_is_the_body() {
        let raw = b"4;name=value\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let mut decoder = ChunkedDecoder::default();
        let mut buffer = BytesMut::new();
        let mut body = Vec::new();
        let mut ended_at = None;
        for (index, byte) in raw.iter().enumerate() {
            buffer.extend_from_slice(&[*byte]);
            if decode_all(&mut decoder, &mut buffer, &mut body) == Decoded::End {
                ended_at = Some(index);
                break;
            }
        }
        assert_eq!(body, b"Wikipedia in \r\n\r\nchunks.");
        assert_eq!(
            ended_at,
            Some(raw.len() - 5),
            "ends at the trailers' blank line"
        );
        // Whole, bare LFs accepted, upper-case sizes.
        let mut buffer = BytesMut::from(&b"A\nabcdefghij\n0\n\n"[..]);
        let mut body = Vec::new();
        assert_eq!(
            decode_all(&mut ChunkedDecoder::default(), &mut buffer, &mut body),
            Decoded::End
        );
        assert_eq!(body, b"abcdefghij");
    }

    #[test]
    fn bad_chunked_bodies_are_errors() {
        for raw in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"4\r\nabcdX\r\n",
            b"ffffffffffffffff\r\n",
        ] {
            let mut decoder = ChunkedDecoder::default();
            let mut buffer = BytesMut::from(raw);
            let result = loop {
                match decoder.decode(&mut buffer) {
                    Ok(Decoded::Data(_)) => {}
                    other => break other,
                }
            };
            assert!(result.is_err(), "{raw:?}: {result:?}");
        }
        let mut long = BytesMut::from(&vec![b'1'; MAX_LINE_BYTES + 1][..]);
        assert!(ChunkedDecoder::default().decode(&mut long).is_err());
    }
}
