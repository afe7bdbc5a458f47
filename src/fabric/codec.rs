//! Fabric frame encoding and bounded decoding.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest frame accepted: room for a group snapshot, far below anything that could exhaust
/// memory by accident. The body is read incrementally, so a peer claiming a large length must
/// actually send the bytes before they are allocated.
pub const MAX_FRAME: usize = 512 * 1024 * 1024;
const HEADER: usize = 1 + 8 + 4;
/// Read buffer of a fabric connection: many small frames (heartbeats, replies) per syscall.
pub const READ_BUFFER: usize = 64 * 1024;
pub const MAGIC: &[u8; 4] = b"STRF";
pub const VERSION: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Hello = 0,
    Raft = 1,
    Forward = 2,
    /// Propose a command on a group this node leads (the tag is the group).
    Propose = 3,
    Reply = 0x80,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        match b {
            0 => Some(FrameKind::Hello),
            1 => Some(FrameKind::Raft),
            2 => Some(FrameKind::Forward),
            3 => Some(FrameKind::Propose),
            0x80 => Some(FrameKind::Reply),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Frame {
    pub kind: FrameKind,
    pub id: u64,
    pub tag: u32,
    pub payload: Vec<u8>,
}

pub fn encode(kind: FrameKind, id: u64, tag: u32, payload: &[u8], out: &mut Vec<u8>) {
    let len = (HEADER + payload.len()) as u32;
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Read one frame; `Ok(None)` on a clean end of stream.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(HEADER..=MAX_FRAME).contains(&len) {
        return Err(invalid(format!("fabric frame length {len} out of bounds")));
    }
    let mut head = [0u8; HEADER];
    r.read_exact(&mut head).await?;
    let kind = FrameKind::from_u8(head[0])
        .ok_or_else(|| invalid(format!("unknown fabric frame kind {}", head[0])))?;
    let id = u64::from_be_bytes(head[1..9].try_into().unwrap_or_default());
    let tag = u32::from_be_bytes(head[9..13].try_into().unwrap_or_default());
    let body_len = len - HEADER;
    let mut payload = Vec::with_capacity(body_len.min(64 * 1024));
    (&mut *r)
        .take(body_len as u64)
        .read_to_end(&mut payload)
        .await?;
    if payload.len() != body_len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "truncated fabric frame",
        ));
    }
    Ok(Some(Frame {
        kind,
        id,
        tag,
        payload,
    }))
}

pub fn hello(cluster: &str) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.push(VERSION);
    p.extend_from_slice(cluster.as_bytes());
    p
}

pub fn check_hello(f: &Frame, cluster: &str) -> Result<(), String> {
    if f.kind != FrameKind::Hello || f.payload.len() < 5 || &f.payload[..4] != MAGIC {
        return Err("connection did not start with a fabric hello".into());
    }
    if f.payload[4] != VERSION {
        return Err(format!("fabric version {} not supported", f.payload[4]));
    }
    if &f.payload[5..] != cluster.as_bytes() {
        return Err("peer belongs to another cluster".into());
    }
    Ok(())
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn round_trip() {
        let mut buf = Vec::new();
        encode(FrameKind::Raft, 7, 3, b"abc", &mut buf);
        let f = read(&mut buf.as_slice()).await.unwrap().unwrap();
        assert_eq!(
            (f.kind, f.id, f.tag, f.payload.as_slice()),
            (FrameKind::Raft, 7, 3, &b"abc"[..])
        );
        assert!(read(&mut &b""[..]).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_and_unknown_frames_are_refused_without_allocating() {
        let mut huge = (u32::MAX).to_be_bytes().to_vec();
        huge.extend_from_slice(&[1; 13]);
        assert!(read(&mut huge.as_slice()).await.is_err());
        let mut bad = Vec::new();
        encode(FrameKind::Raft, 1, 1, b"", &mut bad);
        bad[4] = 9;
        assert!(read(&mut bad.as_slice()).await.is_err());
        // Claims 100 MiB but sends 3 bytes: an error, not a 100 MiB buffer.
        let mut short = (100u32 << 20).to_be_bytes().to_vec();
        short.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3]);
        assert!(read(&mut short.as_slice()).await.is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut r = bytes.as_slice();
                for _ in 0..8 {
                    match read(&mut r).await {
                        Ok(Some(_)) => continue,
                        _ => break,
                    }
                }
            });
        }
    }
}
