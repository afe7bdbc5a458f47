//! The 8-byte proto header that frames every message on a client connection (spec §1).
//!
//! ```text
//! byte 0      version   = 2
//! byte 1      type      1 info, 2 admin, 3 AS_MSG, 4 compressed AS_MSG
//! bytes 2..7  size      48-bit big-endian body length, header excluded
//! ```
//!
//! A framing error means the byte stream can no longer be trusted, so the caller closes the
//! socket (spec §1.1: "close it only on framing errors"); everything above this layer answers
//! with a result code instead.

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Size of the proto header.
pub const PROTO_HEADER_SIZE: usize = 8;
/// The only protocol version clients send (spec §1).
pub const PROTO_VERSION: u8 = 2;

/// Info request/response: text commands (spec §7).
pub const TYPE_INFO: u8 = 1;
/// Admin/security request/response (spec §10).
pub const TYPE_ADMIN: u8 = 2;
/// AS_MSG: data commands (spec §2).
pub const TYPE_MSG: u8 = 3;
/// Compressed AS_MSG (spec §1.2): `u64 BE` inner size + zlib stream.
pub const TYPE_MSG_COMPRESSED: u8 = 4;

/// Largest AS_MSG body accepted (types 3 and 4). A real server allows 128 MiB, but records are
/// capped at 1 MiB here, so 8 MiB leaves room for large batches while bounding memory.
pub const MAX_MSG_BODY: usize = 8 * 1024 * 1024;
/// Largest info or admin body accepted: info requests are a handful of short command lines.
pub const MAX_INFO_BODY: usize = 1024 * 1024;

/// Bodies are read in chunks of at most this many bytes, so a peer that announces a large
/// frame and then stalls or disconnects costs at most one chunk beyond what it really sent.
const READ_CHUNK: usize = 64 * 1024;

/// One framed message: its proto type and its body (header stripped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub body: Vec<u8>,
}

/// Why a frame could not be read. Every variant means "close the connection".
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("unsupported proto version {version} (type {kind})")]
    BadVersion { version: u8, kind: u8 },
    #[error("unsupported proto type {0}")]
    BadType(u8),
    #[error("proto type {kind} body of {size} bytes exceeds the limit of {max}")]
    Oversize { kind: u8, size: u64, max: usize },
    #[error("connection closed after {got} of {expected} bytes of a frame")]
    Truncated { expected: u64, got: u64 },
    #[error("i/o error reading a frame: {0}")]
    Io(#[from] std::io::Error),
}

/// The body limit this layer enforces for a proto type, before the caller's own cap.
pub fn body_limit(kind: u8) -> usize {
    match kind {
        TYPE_MSG | TYPE_MSG_COMPRESSED => MAX_MSG_BODY,
        _ => MAX_INFO_BODY,
    }
}

/// A parsed proto header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoHeader {
    pub version: u8,
    pub kind: u8,
    /// Body length (48 bits on the wire).
    pub size: u64,
}

impl ProtoHeader {
    pub fn parse(bytes: [u8; PROTO_HEADER_SIZE]) -> ProtoHeader {
        let mut size = [0u8; 8];
        size[2..].copy_from_slice(&bytes[2..]);
        ProtoHeader {
            version: bytes[0],
            kind: bytes[1],
            size: u64::from_be_bytes(size),
        }
    }

    /// Check version and type as the server does (SRV `service.c`, spec §1): version 2, or
    /// version 0 with type 2 (old clients' admin messages); types 1..=4. Type 5 is
    /// server-internal XDR and never comes from a client.
    pub fn validate(&self) -> Result<(), FrameError> {
        let version_ok =
            self.version == PROTO_VERSION || (self.version == 0 && self.kind == TYPE_ADMIN);
        if !version_ok {
            return Err(FrameError::BadVersion {
                version: self.version,
                kind: self.kind,
            });
        }
        if !(TYPE_INFO..=TYPE_MSG_COMPRESSED).contains(&self.kind) {
            return Err(FrameError::BadType(self.kind));
        }
        Ok(())
    }
}

/// The 8 header bytes for a body of `size` bytes. `size` must fit in 48 bits; callers only
/// frame bodies far below that (the frame limits above).
pub fn frame_header(kind: u8, size: usize) -> [u8; PROTO_HEADER_SIZE] {
    let size = (size as u64) & 0xFFFF_FFFF_FFFF;
    let word = (u64::from(PROTO_VERSION) << 56) | (u64::from(kind) << 48) | size;
    word.to_be_bytes()
}

/// A complete frame: header followed by `body`.
pub fn encode_frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROTO_HEADER_SIZE + body.len());
    out.extend_from_slice(&frame_header(kind, body.len()));
    out.extend_from_slice(body);
    out
}

/// Start a frame in `out`: writes a placeholder header and returns its offset, to be passed
/// to [`finish_frame`] once the body has been appended. Lets encoders build a frame in one
/// buffer without knowing the body size up front.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; PROTO_HEADER_SIZE]);
    start
}

/// Patch the header written by [`begin_frame`] at `start` with `kind` and the body size.
pub fn finish_frame(out: &mut [u8], start: usize, kind: u8) {
    let size = out.len().saturating_sub(start + PROTO_HEADER_SIZE);
    if let Some(header) = out.get_mut(start..start + PROTO_HEADER_SIZE) {
        header.copy_from_slice(&frame_header(kind, size));
    }
}

/// Read one frame.
///
/// Returns `Ok(None)` on a clean EOF before the first header byte (the client hung up between
/// requests). Rejects bad versions/types and bodies above `min(max_body, body_limit(kind))`
/// before allocating anything. Bodies above 64 KiB are then read one 64 KiB chunk at a time,
/// so a peer that announces a large frame and sends little costs at most one chunk beyond
/// what it actually sent; the full-size buffer is only allocated once every byte is in.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: usize,
) -> Result<Option<Frame>, FrameError> {
    let mut header = [0u8; PROTO_HEADER_SIZE];
    let mut got = 0;
    while got < PROTO_HEADER_SIZE {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                expected: PROTO_HEADER_SIZE as u64,
                got: got as u64,
            });
        }
        got += n;
    }
    let header = ProtoHeader::parse(header);
    header.validate()?;
    let max = max_body.min(body_limit(header.kind));
    let size = match usize::try_from(header.size) {
        Ok(size) if size <= max => size,
        _ => {
            return Err(FrameError::Oversize {
                kind: header.kind,
                size: header.size,
                max,
            })
        }
    };
    let body = read_body(r, size).await?;
    Ok(Some(Frame {
        kind: header.kind,
        body,
    }))
}

async fn read_body<R: AsyncRead + Unpin>(r: &mut R, size: usize) -> Result<Vec<u8>, FrameError> {
    let truncated = |got: usize| FrameError::Truncated {
        expected: (PROTO_HEADER_SIZE + size) as u64,
        got: (PROTO_HEADER_SIZE + got) as u64,
    };
    if size <= READ_CHUNK {
        let mut body = vec![0u8; size];
        let filled = fill(r, &mut body).await?;
        return if filled == size {
            Ok(body)
        } else {
            Err(truncated(filled))
        };
    }
    // Large bodies: one chunk at a time, so memory follows the data that actually arrives;
    // the chunks are joined once the whole body is in.
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(size.div_ceil(READ_CHUNK));
    let mut got = 0;
    while got < size {
        let mut chunk = vec![0u8; (size - got).min(READ_CHUNK)];
        let filled = fill(r, &mut chunk).await?;
        if filled < chunk.len() {
            return Err(truncated(got + filled));
        }
        got += filled;
        chunks.push(chunk);
    }
    Ok(chunks.concat())
}

/// Read until `buf` is full or the peer closes; returns the bytes read.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], max: usize) -> Result<Option<Frame>, FrameError> {
        let mut cursor = bytes;
        block_on(read_frame(&mut cursor, max))
    }

    /// `&[u8]` readers are always ready, so a no-op waker suffices.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn header_layout_matches_spec() {
        // §4.8: put reply header, type 3, size 22.
        assert_eq!(
            frame_header(TYPE_MSG, 22),
            [0x02, 0x03, 0, 0, 0, 0, 0, 0x16]
        );
        let h = ProtoHeader::parse([2, 1, 0, 0, 0x01, 0x02, 0x03, 0x04]);
        assert_eq!(
            h,
            ProtoHeader {
                version: 2,
                kind: 1,
                size: 0x0102_0304
            }
        );
    }

    #[test]
    fn reads_frames_back_to_back() {
        let mut bytes = encode_frame(TYPE_INFO, b"node\n");
        bytes.extend(encode_frame(TYPE_MSG, &[7; 30]));
        let mut cursor = &bytes[..];
        let a = block_on(read_frame(&mut cursor, MAX_MSG_BODY))
            .unwrap()
            .unwrap();
        assert_eq!(
            a,
            Frame {
                kind: TYPE_INFO,
                body: b"node\n".to_vec()
            }
        );
        let b = block_on(read_frame(&mut cursor, MAX_MSG_BODY))
            .unwrap()
            .unwrap();
        assert_eq!(
            b,
            Frame {
                kind: TYPE_MSG,
                body: vec![7; 30]
            }
        );
        assert!(block_on(read_frame(&mut cursor, MAX_MSG_BODY))
            .unwrap()
            .is_none());
    }

    #[test]
    fn begin_finish_frame_patches_size() {
        let mut out = vec![9];
        let start = begin_frame(&mut out);
        out.extend_from_slice(b"abc");
        finish_frame(&mut out, start, TYPE_INFO);
        assert_eq!(&out[1..], &encode_frame(TYPE_INFO, b"abc")[..]);
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(matches!(
            read(&[3, 3, 0, 0, 0, 0, 0, 0], 100),
            Err(FrameError::BadVersion { .. })
        ));
        assert!(matches!(
            read(&[0, 3, 0, 0, 0, 0, 0, 0], 100),
            Err(FrameError::BadVersion { .. })
        ));
        assert!(matches!(
            read(&[2, 0, 0, 0, 0, 0, 0, 0], 100),
            Err(FrameError::BadType(0))
        ));
        assert!(matches!(
            read(&[2, 5, 0, 0, 0, 0, 0, 0], 100),
            Err(FrameError::BadType(5))
        ));
        assert!(matches!(
            read(&[2, 6, 0, 0, 0, 0, 0, 0], 100),
            Err(FrameError::BadType(6))
        ));
        // Version 0 is tolerated for admin messages only.
        assert_eq!(
            read(&[0, 2, 0, 0, 0, 0, 0, 0], 100).unwrap().unwrap().kind,
            TYPE_ADMIN
        );
    }

    #[test]
    fn huge_sizes_are_errors_not_allocations() {
        // 2^40 bytes announced.
        let mut h = frame_header(TYPE_MSG, 0);
        h[2] = 1;
        assert!(
            matches!(read(&h, usize::MAX), Err(FrameError::Oversize { size, .. }) if size == 1 << 40)
        );
        // Per-type limits apply even when the caller's cap is larger.
        let h = frame_header(TYPE_INFO, MAX_INFO_BODY + 1);
        assert!(matches!(
            read(&h, MAX_MSG_BODY),
            Err(FrameError::Oversize { .. })
        ));
        let h = frame_header(TYPE_MSG, MAX_MSG_BODY + 1);
        assert!(matches!(
            read(&h, usize::MAX),
            Err(FrameError::Oversize { .. })
        ));
        // And the caller's cap applies below the per-type limit.
        let h = frame_header(TYPE_MSG, 101);
        assert!(matches!(read(&h, 100), Err(FrameError::Oversize { .. })));
    }

    #[test]
    fn truncation_is_an_error() {
        assert!(matches!(
            read(&[2, 3, 0], 100),
            Err(FrameError::Truncated {
                expected: 8,
                got: 3
            })
        ));
        let mut bytes = frame_header(TYPE_MSG, 50).to_vec();
        bytes.extend_from_slice(&[1; 10]);
        assert!(matches!(
            read(&bytes, 100),
            Err(FrameError::Truncated {
                expected: 58,
                got: 18
            })
        ));
    }

    #[test]
    fn large_bodies_arrive_in_chunks() {
        let body: Vec<u8> = (0..(3 * READ_CHUNK + 17)).map(|i| i as u8).collect();
        let bytes = encode_frame(TYPE_MSG, &body);
        let frame = read(&bytes, MAX_MSG_BODY).unwrap().unwrap();
        assert_eq!(frame.body, body);
        // Exactly one chunk, and a chunk plus one byte.
        for size in [READ_CHUNK, READ_CHUNK + 1] {
            let bytes = encode_frame(TYPE_MSG, &body[..size]);
            assert_eq!(
                read(&bytes, MAX_MSG_BODY).unwrap().unwrap().body,
                &body[..size]
            );
            let short = &bytes[..bytes.len() - 1];
            assert!(matches!(
                read(short, MAX_MSG_BODY),
                Err(FrameError::Truncated { .. })
            ));
        }
    }
}
