//! Aerospike result codes: the stable numbers clients act on.

use serde::{Deserialize, Serialize};

/// A result code sent in byte 5 of an AS_MSG header. Numbers are Aerospike's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ResultCode {
    Ok = 0,
    ServerError = 1,
    NotFound = 2,
    Generation = 3,
    Parameter = 4,
    RecordExists = 5,
    BinExists = 6,
    Timeout = 9,
    /// Partition unavailable: clients retry it.
    Unavailable = 11,
    IncompatibleType = 12,
    RecordTooBig = 13,
    KeyBusy = 14,
    UnsupportedFeature = 16,
    BinNotFound = 17,
    DeviceOverload = 18,
    KeyMismatch = 19,
    Namespace = 20,
    BinName = 21,
    Forbidden = 22,
    /// A CDT operation's element is missing (an update-only map write).
    ElementNotFound = 23,
    /// A CDT operation's element exists already (a create-only or unique write).
    ElementExists = 24,
    EnterpriseOnly = 25,
    OpNotApplicable = 26,
    FilteredOut = 27,
    SecurityNotEnabled = 52,
    /// A batch carries more rows than `batch-max-requests`.
    BatchMaxRequests = 151,
    /// An index of this name exists with another definition.
    IndexFound = 200,
    /// No index answers the query (or names this index).
    IndexNotFound = 201,
    /// The index is still being built.
    IndexNotReadable = 203,
    /// The namespace holds as many indexes as it may.
    IndexMaxCount = 206,
    /// The cluster is changing (`cluster-stable`). Appended last: variants are serialized by
    /// position.
    ClusterKeyMismatch = 7,
}

impl ResultCode {
    /// Every code, for decoding.
    const ALL: [ResultCode; 31] = [
        ResultCode::Ok,
        ResultCode::ServerError,
        ResultCode::NotFound,
        ResultCode::Generation,
        ResultCode::Parameter,
        ResultCode::RecordExists,
        ResultCode::BinExists,
        ResultCode::Timeout,
        ResultCode::Unavailable,
        ResultCode::IncompatibleType,
        ResultCode::RecordTooBig,
        ResultCode::KeyBusy,
        ResultCode::UnsupportedFeature,
        ResultCode::BinNotFound,
        ResultCode::DeviceOverload,
        ResultCode::KeyMismatch,
        ResultCode::Namespace,
        ResultCode::BinName,
        ResultCode::Forbidden,
        ResultCode::ElementNotFound,
        ResultCode::ElementExists,
        ResultCode::EnterpriseOnly,
        ResultCode::OpNotApplicable,
        ResultCode::FilteredOut,
        ResultCode::SecurityNotEnabled,
        ResultCode::BatchMaxRequests,
        ResultCode::IndexFound,
        ResultCode::IndexNotFound,
        ResultCode::IndexNotReadable,
        ResultCode::IndexMaxCount,
        ResultCode::ClusterKeyMismatch,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The code with this number, if it is one this server knows.
    pub fn from_code(code: u8) -> Option<ResultCode> {
        ResultCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decode_to_themselves() {
        for c in ResultCode::ALL {
            assert_eq!(ResultCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ResultCode::from_code(8), None);
    }
}
