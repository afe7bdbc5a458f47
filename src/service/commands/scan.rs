//! Scans and queries: every partition the request names is read on its group's leader after
//! a ReadIndex confirmation, whole partitions at a time, so each partition's slice is
//! linearizable at its read point (a query reads the group's index at that same point).
//! Nothing is promised across partitions: two partitions are read at different points, as
//! Aerospike (which promises nothing for scans) also reads them.
//!
//! The answer streams: each read round encodes at most about [`ROUND_RECORDS`] records (plus
//! the rest of the partition it is in) into one frame, sends it, and only then reads the
//! next, so the server holds a bounded amount whatever the data size. A partition whose
//! group this node does not lead is answered "unavailable" (11, PARTITION_DONE) and the
//! client retries it where its refreshed map says.

use super::{Envelope, Reply};
use crate::context::Context as Node;
use crate::protocol::frame::{begin_frame, finish_frame, TYPE_MSG};
use crate::protocol::message::parse_as_msg;
use crate::protocol::request::Request;
use crate::protocol::response::{
    encode_partition_unavailable, encode_record_msg, encode_stream_end, StreamRecord,
};
use crate::protocol::scan::{decode_scan, IndexFilter, PartitionPart, ScanRequest};
use crate::stats::Stats;
use futures::future::{join_all, BoxFuture};
use raft::ReadError;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::catalog::Namespace;
use storage::index::{holds, Collection, IndexKey, SindexDef, Wanted};
use storage::record::{Digest, ResultCode};
use storage::record_store::RecordStore;
use tokio::sync::mpsc;

/// Records one read round encodes at most (it always finishes the partition it is in).
const ROUND_RECORDS: usize = 2000;
/// Longest wait to confirm leadership for one round.
const ROUND_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between attempts while a group elects a leader.
const RETRY_PAUSE: Duration = Duration::from_millis(30);
/// Frames queued for the connection before the reader waits.
const QUEUE: usize = 2;

fn end(node: &Node, code: ResultCode) -> Reply {
    Stats::bump(&node.stats.errors);
    Reply::One(encode_stream_end(code))
}

/// Which index answers a query: the one it names, else the set's index on the bin (type and
/// collection matching), else the namespace-wide one (Aerospike's choice); 201 if none.
pub fn choose_index(
    indexes: &BTreeMap<String, SindexDef>,
    set: Option<&str>,
    filter: &IndexFilter,
) -> Result<String, ResultCode> {
    if let Some(name) = &filter.index_name {
        return indexes
            .get(name)
            .filter(|d| d.key_type.particle() == filter.particle)
            .map(|_| name.clone())
            .ok_or(ResultCode::IndexNotFound);
    }
    let matches = |d: &SindexDef, want_set: Option<&str>| {
        d.bin == filter.bin
            && d.key_type.particle() == filter.particle
            && d.collection == filter.collection
            && d.set.as_deref() == want_set
    };
    let find = |want_set| {
        indexes
            .iter()
            .find(|(_, d)| matches(d, want_set))
            .map(|(n, _)| n.clone())
    };
    set.and_then(|s| find(Some(s)))
        .or_else(|| find(None))
        .ok_or(ResultCode::IndexNotFound)
}

/// Everything a scan task needs, resolved before the stream starts.
struct Plan {
    req: ScanRequest,
    /// The request's filter expression, decoded once (taken out of `req`).
    expression: Option<storage::cdt::value::CdtValue>,
    namespace: Namespace,
    /// The index a query reads.
    index: Option<String>,
    deadline: Option<Instant>,
}

pub fn handle<'a>(node: &'a Arc<Node>, _: Request, env: &'a Envelope<'a>) -> BoxFuture<'a, Reply> {
    Box::pin(async move {
        let Ok(msg) = parse_as_msg(env.body) else {
            return end(node, ResultCode::Parameter);
        };
        let mut req = match decode_scan(&msg) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "scan or query refused");
                return end(node, e.code);
            }
        };
        let expression = match req
            .expression
            .take()
            .map(|e| storage::cdt::value::decode(&e))
        {
            None => None,
            Some(Ok(tree)) => Some(tree),
            Some(Err(_)) => return end(node, ResultCode::Parameter),
        };
        let Some(namespace) = node.catalog().namespace(&req.namespace).cloned() else {
            return end(node, ResultCode::Namespace);
        };
        let index = match &req.filter {
            Some(f) => match choose_index(&namespace.sindexes, req.set.as_deref(), f) {
                Ok(name) => Some(name),
                Err(code) => return end(node, code),
            },
            None => None,
        };
        if index.is_some() {
            Stats::bump(&node.stats.queries);
        } else {
            Stats::bump(&node.stats.scans);
        }
        // A scan may run far longer than a single-record command: only the client's total
        // timeout bounds it (and its hanging up, which ends the task at its next send).
        let ttl = msg.header.transaction_ttl;
        let deadline = (ttl > 0).then(|| Instant::now() + Duration::from_millis(u64::from(ttl)));
        let plan = Plan {
            req,
            expression,
            namespace,
            index,
            deadline,
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(node.clone(), plan, tx));
        Reply::Stream(rx)
    })
}

/// Stream the answer; ends when every partition is answered, the record limit or the
/// deadline is reached, or the client is gone.
async fn run(node: Arc<Node>, plan: Plan, tx: mpsc::Sender<Vec<u8>>) {
    let groups = plan.namespace.settings.groups;
    let mut by_group: BTreeMap<u16, Vec<PartitionPart>> = BTreeMap::new();
    for p in &plan.req.parts {
        by_group
            .entry(plan.namespace.group_of(p.pid))
            .or_default()
            .push(p.clone());
    }
    debug_assert!(by_group.keys().all(|g| *g < groups));
    let mut left = match plan.req.max_records {
        0 => u64::MAX,
        n => n,
    };
    let rps = u64::from(plan.req.records_per_second);
    let round_records = if rps > 0 {
        (rps as usize / 10).clamp(1, ROUND_RECORDS)
    } else {
        ROUND_RECORDS
    };
    // Confirm leadership of every group at once first: a node cut off from its peers then
    // answers "unavailable" for all of them within one timeout, not one timeout per group.
    let led: HashSet<u16> = join_all(by_group.keys().map(|g| {
        let node = &node;
        let group = plan.namespace.group_id(*g);
        async move {
            let ok = matches!(confirm(node, group).await, Ok(()));
            (*g, ok)
        }
    }))
    .await
    .into_iter()
    .filter_map(|(g, ok)| ok.then_some(g))
    .collect();
    let started = Instant::now();
    let mut sent: u64 = 0;
    for (g, parts) in by_group {
        let group = plan.namespace.group_id(g);
        if !led.contains(&g) {
            let mut frame = Vec::new();
            let start = begin_frame(&mut frame);
            for p in &parts {
                encode_partition_unavailable(p.pid, &mut frame);
            }
            finish_frame(&mut frame, start, TYPE_MSG);
            if tx.send(frame).await.is_err() {
                return;
            }
            continue;
        }
        let mut next = 0;
        while next < parts.len() && left > 0 {
            if plan.deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = tx.send(encode_stream_end(ResultCode::Timeout)).await;
                return;
            }
            let now_ms = node.clock.now_ms_since_2010();
            let round = Round {
                plan: &plan,
                parts: &parts[next..],
                left,
                round_records,
                now: u32::try_from(now_ms / 1000).unwrap_or(u32::MAX),
                now_ms,
            };
            let mut frame = Vec::new();
            let start = begin_frame(&mut frame);
            match read_round(&node, group, &round, &mut frame).await {
                Ok(Ok((done, records))) => {
                    next += done;
                    left -= records;
                    sent += records;
                }
                Ok(Err(code)) => {
                    let _ = tx.send(encode_stream_end(code)).await;
                    return;
                }
                Err(e) => {
                    tracing::debug!(group, error = ?e, "scan round not served here");
                    for p in &parts[next..] {
                        encode_partition_unavailable(p.pid, &mut frame);
                    }
                    next = parts.len();
                }
            }
            if frame.len() > start + crate::protocol::frame::PROTO_HEADER_SIZE {
                finish_frame(&mut frame, start, TYPE_MSG);
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
            if rps > 0 {
                let due = started + Duration::from_secs_f64(sent as f64 / rps as f64);
                tokio::time::sleep_until(due.into()).await;
            }
        }
    }
    let _ = tx.send(encode_stream_end(ResultCode::Ok)).await;
}

/// Whether this node leads `group` (waiting out an election, as [`read_round`] does).
async fn confirm(node: &Node, group: raft::GroupId) -> Result<(), ReadError> {
    let deadline = Instant::now() + ROUND_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match node.multi.read(group, remaining, |_| ()).await {
            Err(ReadError::NotLeader(None)) if Instant::now() + RETRY_PAUSE < deadline => {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// Serve one round on `group`, waiting (up to [`ROUND_TIMEOUT`]) while the group has no
/// known leader, since an election is then under way and this node may win it; a group led
/// elsewhere answers at once, so the client asks the leader.
async fn read_round(
    node: &Node,
    group: raft::GroupId,
    round: &Round<'_>,
    frame: &mut Vec<u8>,
) -> Result<Result<(usize, u64), ResultCode>, ReadError> {
    let deadline = Instant::now() + ROUND_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match node
            .multi
            .read(group, remaining, |s| round.read(s, frame))
            .await
        {
            Err(ReadError::NotLeader(None) | ReadError::Unavailable(_))
                if Instant::now() + RETRY_PAUSE < deadline =>
            {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// One read round over the partitions left in a group.
struct Round<'a> {
    plan: &'a Plan,
    parts: &'a [PartitionPart],
    /// Records the request may still return.
    left: u64,
    round_records: usize,
    now: u32,
    now_ms: u64,
}

impl Round<'_> {
    /// Encode records of whole partitions into `buf` until the round is full; answers how
    /// many partitions were finished and how many records were encoded, or the query's
    /// error (its index missing here or still being built).
    fn read(&self, store: &RecordStore, buf: &mut Vec<u8>) -> Result<(usize, u64), ResultCode> {
        let index = match &self.plan.index {
            Some(name) => {
                let ix = store.index(name).ok_or(ResultCode::IndexNotFound)?;
                if !ix.state.ready {
                    return Err(ResultCode::IndexNotReadable);
                }
                Some(ix)
            }
            None => None,
        };
        let mut records = 0u64;
        let mut done = 0;
        for part in self.parts {
            let quota = self.left - records;
            let n = match (index, &self.plan.req.filter) {
                (Some(ix), Some(f)) => self.query_partition(store, ix, f, part, quota, buf)?,
                _ => self.scan_partition(store, part, quota, buf)?,
            };
            records += n;
            if records >= self.left {
                // The limit cut this partition short (or ended exactly with it): the client
                // resumes from the last digest it got.
                break;
            }
            done += 1;
            if records as usize >= self.round_records {
                break;
            }
        }
        Ok((done, records))
    }

    fn emit(
        &self,
        digest: &Digest,
        record: &storage::record::Record,
        bval: Option<u64>,
        buf: &mut Vec<u8>,
    ) {
        encode_record_msg(
            &StreamRecord {
                namespace: &self.plan.req.namespace,
                digest,
                record,
                bins: &self.plan.req.bins,
                bval,
            },
            buf,
        );
    }

    /// Whether a record of `set` may be answered (the request names no set, or this one).
    fn in_set(&self, set: &str) -> bool {
        self.plan.req.set.as_ref().is_none_or(|s| s == set)
    }

    /// Whether a record belongs to the answer: its set, and the filter expression. An
    /// expression that cannot be evaluated (an unsupported call, a result that is not a
    /// boolean) ends the scan with its code rather than silently dropping every record.
    fn wanted(
        &self,
        digest: &Digest,
        record: &storage::record::Record,
    ) -> Result<bool, ResultCode> {
        if !self.in_set(&record.set) {
            return Ok(false);
        }
        let Some(exp) = &self.plan.expression else {
            return Ok(true);
        };
        let subject = storage::exp::Subject {
            record: Some(record),
            digest,
            now: self.now,
            now_ms: self.now_ms,
        };
        storage::exp::passes_tree(exp, &subject)
    }

    fn scan_partition(
        &self,
        store: &RecordStore,
        part: &PartitionPart,
        quota: u64,
        buf: &mut Vec<u8>,
    ) -> Result<u64, ResultCode> {
        let mut n = 0;
        for (d, r) in store.partition(part.pid, part.after) {
            if n >= quota {
                break;
            }
            // Expiry and the set are read from the packed record: only records that may be
            // answered are unpacked.
            if r.is_expired(self.now) || !self.in_set(r.set()) {
                continue;
            }
            let r = r.unpack();
            if !self.wanted(d, &r)? {
                continue;
            }
            self.emit(d, &r, None, buf);
            n += 1;
        }
        Ok(n)
    }

    fn query_partition(
        &self,
        store: &RecordStore,
        ix: &storage::index::GroupIndex,
        f: &IndexFilter,
        part: &PartitionPart,
        quota: u64,
        buf: &mut Vec<u8>,
    ) -> Result<u64, ResultCode> {
        let after = part
            .after
            .map(|d| (part.bval.map_or(f.begin, IndexKey::from_bval), d));
        // A record matching through several list elements or map entries is answered once.
        let dedupe = ix.state.def.collection != Collection::Default;
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut n = 0;
        for (_, key, d) in ix.range(part.pid, f.begin, f.end, after) {
            if n >= quota {
                break;
            }
            if dedupe && !seen.insert(*d) {
                continue;
            }
            let Some(r) = store.get(d, self.now) else {
                continue;
            };
            if !self.wanted(d, &r)? {
                continue;
            }
            // Re-check the record itself (strings and blobs are indexed by hash).
            let wanted = match &f.exact {
                Some(b) => Wanted::Bytes(b),
                None => Wanted::IntRange(f.begin.as_int(), f.end.as_int()),
            };
            if !holds(&ix.state.def, &r, wanted) {
                continue;
            }
            self.emit(d, &r, Some(key.bval()), buf);
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::index::KeyType;
    use storage::record::particle;

    fn def(set: Option<&str>, bin: &str, t: KeyType) -> SindexDef {
        SindexDef {
            set: set.map(Into::into),
            bin: bin.into(),
            key_type: t,
            collection: Collection::Default,
        }
    }

    fn filter(bin: &str, p: u8, name: Option<&str>) -> IndexFilter {
        IndexFilter {
            index_name: name.map(Into::into),
            bin: bin.into(),
            particle: p,
            collection: Collection::Default,
            begin: IndexKey::int(0),
            end: IndexKey::int(0),
            exact: None,
        }
    }

    #[test]
    fn the_set_index_first_then_the_namespace_wide_one() {
        let mut ix = BTreeMap::new();
        ix.insert("wide".to_string(), def(None, "a", KeyType::Numeric));
        ix.insert(
            "demo_a".to_string(),
            def(Some("demo"), "a", KeyType::Numeric),
        );
        ix.insert("s".to_string(), def(Some("demo"), "s", KeyType::String));
        let f = filter("a", particle::INTEGER, None);
        assert_eq!(choose_index(&ix, Some("demo"), &f), Ok("demo_a".into()));
        assert_eq!(choose_index(&ix, Some("other"), &f), Ok("wide".into()));
        assert_eq!(choose_index(&ix, None, &f), Ok("wide".into()));
        let f = filter("s", particle::INTEGER, None);
        assert_eq!(
            choose_index(&ix, Some("demo"), &f),
            Err(ResultCode::IndexNotFound)
        );
        let f = filter("s", particle::STRING, None);
        assert_eq!(choose_index(&ix, None, &f), Err(ResultCode::IndexNotFound));
        let f = filter("", particle::STRING, Some("s"));
        assert_eq!(choose_index(&ix, None, &f), Ok("s".into()));
        let f = filter("", particle::STRING, Some("nope"));
        assert_eq!(choose_index(&ix, None, &f), Err(ResultCode::IndexNotFound));
    }
}
