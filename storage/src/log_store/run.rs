//! A run: the entries of one `append` call stored as one sled value.
//!
//! Storing each entry under its own key made every append a sled `apply_batch` (sled's
//! process-wide write lock, which also waits for a flush in progress) plus one B-tree insert
//! per entry; under 64 writing clients that was a sixth of a node's CPU. One value per append
//! is one plain `insert`, atomic by itself, whatever the batch size.
//!
//! Layout: `count u32 LE`, then per entry `len u32 LE ‖ bytes`. The key holds the index of
//! the first entry; the others follow consecutively.

use crate::error::{Error, Result};
use crate::log_store::LogIndex;
use std::ops::RangeBounds;

const U32: usize = std::mem::size_of::<u32>();

/// Encodes the payloads of consecutive entries (their indexes are implied by the key).
pub(crate) fn encode<'a>(payloads: impl ExactSizeIterator<Item = &'a [u8]>) -> Result<Vec<u8>> {
    let count = u32::try_from(payloads.len())
        .map_err(|_| Error::InvalidArgument("append: more than 2^32 entries".into()))?;
    let mut out = Vec::new();
    out.extend_from_slice(&count.to_le_bytes());
    for p in payloads {
        let len = u32::try_from(p.len())
            .map_err(|_| Error::InvalidArgument("append: an entry of 4 GiB or more".into()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// Number of entries in a run, read from its header only.
pub(crate) fn count(run: &[u8]) -> Result<u64> {
    let header: [u8; U32] = run
        .get(..U32)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| {
            Error::Corruption(format!("log run of {} bytes has no header", run.len()))
        })?;
    match u32::from_le_bytes(header) {
        0 => Err(Error::Corruption("empty log run".into())),
        n => Ok(u64::from(n)),
    }
}

/// Index of the last entry of the run that starts at `first`.
pub(crate) fn last_index(first: LogIndex, run: &[u8]) -> Result<LogIndex> {
    first
        .checked_add(count(run)? - 1)
        .ok_or_else(|| Error::Corruption(format!("log run at {first} overflows the index")))
}

/// The run's entries with an index in `range`, in order, after checking the whole layout
/// (a truncated or padded value is corruption, never a shorter log).
pub(crate) fn decode(
    first: LogIndex,
    run: &[u8],
    range: impl RangeBounds<LogIndex>,
) -> Result<Vec<(LogIndex, Vec<u8>)>> {
    let n = count(run)?;
    let corrupt = |what: &str| Error::Corruption(format!("log run at {first}: {what}"));
    let mut out = Vec::new();
    let mut rest = &run[U32..];
    for i in 0..n {
        let len: [u8; U32] = rest
            .get(..U32)
            .and_then(|l| l.try_into().ok())
            .ok_or_else(|| corrupt("entry header cut short"))?;
        let len = u32::from_le_bytes(len) as usize;
        let body = rest
            .get(U32..U32 + len)
            .ok_or_else(|| corrupt("entry cut short"))?;
        let index = first
            .checked_add(i)
            .ok_or_else(|| corrupt("index overflow"))?;
        if range.contains(&index) {
            out.push((index, body.to_vec()));
        }
        rest = &rest[U32 + len..];
    }
    if !rest.is_empty() {
        return Err(corrupt("bytes after the last entry"));
    }
    Ok(out)
}

/// The part of a run with an index in `range`, as a run of its own (it starts at the first
/// selected index). Used where truncate and purge cut a run down.
pub(crate) fn slice(
    first: LogIndex,
    run: &[u8],
    range: impl RangeBounds<LogIndex>,
) -> Result<Vec<u8>> {
    let kept = decode(first, run, range)?;
    encode(kept.iter().map(|(_, data)| data.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(payloads: &[&[u8]]) -> Vec<u8> {
        encode(payloads.iter().copied()).unwrap()
    }

    #[test]
    fn round_trips_and_selects_a_range() {
        let r = run(&[b"a", b"", b"ccc"]);
        assert_eq!(count(&r).unwrap(), 3);
        assert_eq!(last_index(10, &r).unwrap(), 12);
        let all = decode(10, &r, ..).unwrap();
        assert_eq!(
            all,
            vec![(10, b"a".to_vec()), (11, vec![]), (12, b"ccc".to_vec())]
        );
        assert_eq!(decode(10, &r, 11..12).unwrap(), vec![(11, vec![])]);
        assert_eq!(decode(10, &r, 13..20).unwrap(), vec![]);
        assert_eq!(slice(10, &r, 11..).unwrap(), run(&[b"", b"ccc"]));
    }

    #[test]
    fn damaged_runs_are_corruption_not_short_logs() {
        let r = run(&[b"abc", b"de"]);
        for cut in 0..r.len() {
            assert!(
                matches!(decode(1, &r[..cut], ..), Err(Error::Corruption(_))),
                "cut at {cut}"
            );
        }
        let mut padded = r.clone();
        padded.push(0);
        assert!(matches!(decode(1, &padded, ..), Err(Error::Corruption(_))));
        assert!(matches!(
            count(&0u32.to_le_bytes()),
            Err(Error::Corruption(_))
        ));
        assert!(matches!(
            last_index(u64::MAX, &r),
            Err(Error::Corruption(_))
        ));
    }
}
