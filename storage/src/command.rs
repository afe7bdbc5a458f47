//! Write commands: what a Raft log entry carries, and what applying one answers.
//!
//! Everything time-dependent is decided by the leader before proposing (`now`, the void time),
//! so that every replica applying the same command reaches the same state.

use crate::record::{Bin, Digest, ResultCode, UserKey, Value};
use serde::{Deserialize, Serialize};

/// How a write treats an existing or missing record (Aerospike's `exists` policy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExistsPolicy {
    /// Create or update, merging bins.
    #[default]
    Ignore,
    /// Fail with RecordExists if the record exists.
    Create,
    /// Fail with NotFound if the record is missing; merge bins.
    Update,
    /// Fail with NotFound if missing; drop the bins not written.
    Replace,
    /// Create if missing; drop the bins not written.
    CreateOrReplace,
}

/// The generation check of a write or delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GenerationPolicy {
    #[default]
    None,
    /// Apply only if the record's generation equals this one.
    Eq(u16),
    /// Apply only if this generation is greater than the record's.
    Gt(u16),
}

/// The void time a write leaves on the record, resolved by the leader from the request TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiry {
    /// Set this void time (seconds since 2010; 0 = never expires).
    Set(u32),
    /// Keep the record's void time; a new record gets the given one.
    Keep { if_new: u32 },
}

/// One operation of a write (or operate) command, applied in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Read one bin (its value as of this point in the op sequence).
    Read(String),
    /// Read every bin.
    ReadAll,
    /// Set a bin; `Value::Nil` deletes it.
    Write(Bin),
    /// Add an integer or float to a bin.
    Incr(Bin),
    Append(Bin),
    Prepend(Bin),
    /// Bump the generation and reset the TTL; the record must exist.
    Touch,
    /// Delete the record; later ops in the same command start from an empty record.
    DeleteAll,
    /// A list or map operation on a bin (Aerospike msgpack `[op_code, args…]`); `modify`
    /// is the op type (CDT_MODIFY), which a read operation may also use.
    Cdt {
        bin: String,
        payload: Vec<u8>,
        modify: bool,
    },
    /// A filter expression (Aerospike's packed form): the command applies only if it holds
    /// for the existing record (27 FILTERED_OUT otherwise). Always the first op.
    Filter(Vec<u8>),
    /// An operation of another family computed on a bin (see [`OpFamily`]); `modify` is the
    /// op type's write form. (Lists and maps keep [`Op::Cdt`], which logs already hold.)
    Compute {
        family: OpFamily,
        bin: String,
        payload: Vec<u8>,
        modify: bool,
    },
}

/// Families of operations that compute on a bin, each with its own payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpFamily {
    /// Expression operations: `[expression, flags]`, read (answered under the op's name) or
    /// write (the value stored in the bin).
    Exp,
    /// Bitwise operations on a blob bin: `[op_code, args…]` (see [`crate::bits`]).
    Bit,
    /// HyperLogLog operations on an HLL bin: `[op_code, args…]` (see [`crate::hll`]).
    Hll,
}

impl OpFamily {
    /// Whether an operation of this family reads the whole record (not just its bin).
    pub fn reads_record(self) -> bool {
        matches!(self, OpFamily::Exp)
    }
}

impl Op {
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Op::Read(_)
                | Op::ReadAll
                | Op::Cdt { modify: false, .. }
                | Op::Compute { modify: false, .. }
                | Op::Filter(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriteCommand {
    pub digest: Digest,
    pub set: String,
    /// The user key, stored when the client sends it.
    pub key: Option<UserKey>,
    pub exists: ExistsPolicy,
    pub generation: GenerationPolicy,
    pub expiry: Expiry,
    /// The leader's clock (seconds since 2010) when it proposed: expiry checks use this.
    pub now: u32,
    /// The leader's clock in milliseconds since 2010: the record's new last-update time.
    pub last_update: u64,
    pub ops: Vec<Op>,
    /// Answer one entry per op (NULL entries for write ops), as RESPOND_ALL_OPS asks.
    pub respond_all_ops: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteCommand {
    pub digest: Digest,
    pub generation: GenerationPolicy,
    pub now: u32,
}

/// A replicated state-machine command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Write(WriteCommand),
    Delete(DeleteCommand),
    /// Delete every record of a set in the group (the seed's `delete-set`).
    DeleteSet {
        set: String,
    },
    /// A change to the cluster catalog (metadata group only).
    Catalog(crate::catalog::CatalogCommand),
    /// A read found the record close to expiry (`read_touch_ttl_percent`): reset its void
    /// time to `now + ttl` without a new generation, unless a write already pushed it later.
    ReadTouch(ReadTouchCommand),
    /// Delete the records (of one set, or all) last updated before `before` (ms since 2010):
    /// Aerospike's truncate, whose cut-off is strict (a write in that millisecond survives).
    Truncate {
        set: Option<String>,
        before: u64,
    },
    /// Remove these records if they are past their void time at `now` (the leader's clock):
    /// the expiry sweep (Aerospike's nsup), replicated so every replica frees the same records.
    Expire {
        digests: Vec<Digest>,
        now: u32,
    },
    /// Add a secondary index to the group (from the catalog; idempotent, renames an index
    /// with the same definition).
    CreateIndex {
        name: String,
        def: crate::index::SindexDef,
    },
    /// Forget a secondary index (nothing if it does not exist).
    DropIndex {
        name: String,
    },
    /// One step of an index build: index up to `limit` records after its cursor.
    BuildIndex {
        name: String,
        limit: u32,
    },
    /// The namespace is being dropped: every later write, delete, touch or truncate in this
    /// group is refused with 20, so nothing commits here after the drop is acknowledged even
    /// on replicas that apply the catalog's drop late.
    Close,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadTouchCommand {
    pub digest: Digest,
    /// The TTL the record was last written with (its void time minus its last-update time).
    pub ttl: u32,
    /// The leader's clock, seconds and milliseconds since 2010.
    pub now: u32,
    pub last_update: u64,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Write(w) => write!(f, "write {} ops", w.ops.len()),
            Command::Delete(_) => write!(f, "delete"),
            Command::DeleteSet { set } => write!(f, "delete set {set}"),
            Command::Catalog(c) => write!(f, "catalog {c:?}"),
            Command::ReadTouch(t) => write!(f, "read touch ttl {}", t.ttl),
            Command::Truncate { set, before } => write!(f, "truncate {set:?} before {before}"),
            Command::Expire { digests, .. } => write!(f, "expire {} records", digests.len()),
            Command::CreateIndex { name, .. } => write!(f, "create index {name}"),
            Command::DropIndex { name } => write!(f, "drop index {name}"),
            Command::BuildIndex { name, limit } => write!(f, "build index {name} ({limit})"),
            Command::Close => write!(f, "close (namespace dropped)"),
        }
    }
}

/// What applying a command (or serving a read) answers: the AS_MSG response fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub code: ResultCode,
    pub generation: u16,
    pub void_time: u32,
    /// Returned bins in op order: (name, value).
    pub bins: Vec<(String, Value)>,
}

impl Outcome {
    pub fn error(code: ResultCode) -> Outcome {
        Outcome {
            code,
            generation: 0,
            void_time: 0,
            bins: Vec::new(),
        }
    }

    pub fn ok(generation: u16, void_time: u32) -> Outcome {
        Outcome {
            code: ResultCode::Ok,
            generation,
            void_time,
            bins: Vec::new(),
        }
    }
}
