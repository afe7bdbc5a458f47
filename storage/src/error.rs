//! The error type of the storage crate.
//!
//! Storage errors are mostly fail-stop: once the durable log cannot promise that an
//! acknowledged write survives, the only safe reaction is to stop serving (Raft turns a
//! storage error into a fatal error for the group and the node restarts from disk). The
//! variants below let callers tell that situation ([`Error::Poisoned`], [`Error::Io`],
//! [`Error::Sled`], [`Error::Corruption`]) apart from a caller bug
//! ([`Error::InvalidArgument`]) and from an orderly shutdown ([`Error::Closed`]).

/// Every fallible operation of this crate returns this.
pub type Result<T> = std::result::Result<T, Error>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed (snapshot files, directories).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// sled reported an error. The log store poisons itself when it sees one, because sled
    /// errors are fail-stop and the state of the write that hit it is unknown.
    #[error("sled error: {0}")]
    Sled(#[from] sled::Error),

    /// Data read back from disk does not pass its checks (bad magic, version, length or
    /// checksum). The content must not be used: applying half a snapshot or a wrong log
    /// entry would silently diverge this replica from the others.
    #[error("corruption: {0}")]
    Corruption(String),

    /// The caller broke the contract of the call (for example a hole or an overwrite in
    /// `append`). Nothing was written: refusing is safer than storing a log the Raft layer
    /// does not expect.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The store failed earlier (a flush or write error) and refuses all further work.
    /// After a failed fsync the kernel may have dropped dirty pages, so "retry and continue"
    /// could acknowledge writes that are gone; fail-stop is the only safe answer.
    #[error("storage is poisoned by an earlier failure and refuses further work")]
    Poisoned,

    /// The store is shutting down or was dropped before the request could complete.
    #[error("storage is closed")]
    Closed,
}
