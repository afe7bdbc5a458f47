//! The admin (security) protocol, type 2 (spec §10). Strato has no security: every admin
//! request gets a 16-byte header with result 52 SECURITY_NOT_ENABLED, which the C client
//! treats as "no login needed" on LOGIN/AUTHENTICATE (Aerospike CE's 51 would make a client
//! with a configured user fail to connect).

use super::frame::{encode_frame, TYPE_ADMIN};
use storage::record::ResultCode;

/// Size of the admin header: scheme, result, command, n_fields, 12 zero bytes.
pub const ADMIN_HEADER_SIZE: usize = 16;

/// A complete type-2 frame whose admin header carries `code` and no fields.
pub fn admin_reply(code: ResultCode) -> Vec<u8> {
    let mut header = [0u8; ADMIN_HEADER_SIZE];
    header[1] = code.code();
    encode_frame(TYPE_ADMIN, &header)
}

/// The answer to any admin request on a server without security.
pub fn security_not_enabled_reply() -> Vec<u8> {
    admin_reply(ResultCode::SecurityNotEnabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_layout() {
        let r = security_not_enabled_reply();
        assert_eq!(&r[..8], &[2, 2, 0, 0, 0, 0, 0, 16]);
        assert_eq!(r.len(), 24);
        assert_eq!(r[8], 0);
        assert_eq!(r[9], 52);
        assert!(r[10..].iter().all(|&b| b == 0));
    }
}
