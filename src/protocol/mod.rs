//! The Aerospike client wire protocol as a pure codec (spec: `aerospike-wire.md` §1–§7, §10,
//! §11, §13, §14). Nothing here touches sockets except [`read_frame`], which reads one frame
//! from any `AsyncRead`.
//!
//! Layers, bottom up:
//! - [`frame`]: the 8-byte proto header and bounded frame reading (§1).
//! - [`message`]: AS_MSG header, fields and ops, parsed without trusting any length (§2–§4).
//! - [`particle`] and [`msgpack`]: bin values ⇄ [`storage::record::Value`] (§4.2–§4.3).
//! - [`request`]: AS_MSG → [`Request`] with the server's request-level checks (§2.1, §4, §14).
//! - [`response`]: [`storage::command::Outcome`] → response frame (§4.5).
//! - [`info`] and [`admin`]: info text framing (§7) and the no-security admin reply (§10).

pub mod admin;
pub mod batch;
pub mod frame;
pub mod info;
pub mod info_command;
pub mod message;
pub mod msgpack;
pub mod particle;
pub mod request;
pub mod response;
pub mod scan;

pub use admin::security_not_enabled_reply;
pub use frame::{encode_frame, read_frame, Frame, FrameError, MAX_INFO_BODY, MAX_MSG_BODY};
pub use info::{encode_info_response, parse_info_request};
pub use message::{parse_as_msg, AsMsg, MsgError};
pub use request::{
    decode_request, decode_request_body, ttl_to_void_time, KeyRef, ReadBins, ReadMode, Request,
    RequestError,
};
pub use response::{encode_error, encode_response};

/// Helpers shared by the codec's unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    /// Bytes from hex text, whitespace ignored (for the spec's hand-verified wire examples).
    pub fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
