//! Truncate: `truncate:namespace=NS;set=SET[;lut=NANOS]`, `truncate-namespace:namespace=NS[;lut=NANOS]`
//! and their `-undo` forms, as Aerospike answers them (the clients' `truncate(ns, set, nanos)`
//! sends these).
//!
//! The records (of the set, or of the namespace) last updated before the cut-off are deleted
//! through Raft in every group before the answer, so `ok` means they are gone on every
//! replica; the cut-off is then recorded in the catalog. A namespace that does not exist
//! answers `ok`, as Aerospike does.

use crate::catalog::change::{truncate as truncate_groups, truncate_undo};
use crate::clock::CITRUSLEAF_EPOCH;
use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoError, InfoResult, Params};
use futures::future::BoxFuture;
use std::sync::Arc;

/// What a truncate command asks for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    namespace: String,
    set: Option<String>,
    /// `lut=` in nanoseconds since the Unix epoch, if given.
    lut_nanos: Option<u64>,
}

/// Parse `truncate`/`truncate-namespace` (and their undo forms) parameters; `whole` is the
/// namespace form, where a set is refused.
fn target(cmd: &InfoCommand, whole: bool, undo: bool) -> Result<Target, InfoError> {
    let params = Params::parse(cmd.rest);
    let allowed: &[&str] = if undo {
        &["namespace", "set"]
    } else {
        &["namespace", "set", "lut"]
    };
    params.only(allowed)?;
    let namespace = params.required(&["namespace"])?.to_string();
    let set = params.get(&["set"])?.map(str::to_string);
    if whole && set.is_some() {
        return Err(InfoError::parameter("unexpected set name"));
    }
    if !whole && set.is_none() {
        return Err(InfoError::parameter("missing 'set'"));
    }
    let lut_nanos = match params.get(&["lut"])? {
        None => None,
        Some(v) => Some(parse_c_number(v).ok_or_else(|| {
            InfoError::parameter(format!("'lut' value {v:?} is not a valid number"))
        })?),
    };
    Ok(Target {
        namespace,
        set,
        lut_nanos,
    })
}

/// `strtoul(v, 0)`: decimal, `0x` hexadecimal or leading-`0` octal, as Aerospike parses `lut`.
fn parse_c_number(v: &str) -> Option<u64> {
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if v.len() > 1 && v.starts_with('0') {
        u64::from_str_radix(&v[1..], 8).ok()
    } else {
        v.parse().ok()
    }
}

/// The cut-off in milliseconds since 2010 for `lut_nanos` (None = now), refusing one at or
/// before 2010 or after `now_ms`, with Aerospike's messages.
fn cut_off(lut_nanos: Option<u64>, now_ms: u64) -> Result<u64, InfoError> {
    let Some(nanos) = lut_nanos else {
        return Ok(now_ms);
    };
    let ms = (nanos / 1_000_000).saturating_sub(CITRUSLEAF_EPOCH * 1000);
    if ms == 0 {
        return Err(InfoError::parameter("would truncate to 0"));
    }
    if ms > now_ms {
        return Err(InfoError::parameter("would truncate in the future"));
    }
    Ok(ms)
}

fn run(node: Arc<Node>, raw: String, whole: bool) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let t = target(&InfoCommand::parse(&raw), whole, false)?;
        let lut = cut_off(t.lut_nanos, node.clock.now_ms_since_2010())?;
        if node.catalog().namespace(&t.namespace).is_none() {
            return Ok("ok".into());
        }
        truncate_groups(&node, &t.namespace, t.set.as_deref(), lut).await?;
        Ok("ok".into())
    })
}

fn run_undo(node: Arc<Node>, raw: String, whole: bool) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let t = target(&InfoCommand::parse(&raw), whole, true)?;
        if node.catalog().namespace(&t.namespace).is_none() {
            return Ok("ok".into());
        }
        truncate_undo(&node, &t.namespace, t.set.as_deref()).await?;
        Ok("ok".into())
    })
}

pub fn truncate(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    run(node, raw, false)
}

pub fn truncate_namespace(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    run(node, raw, true)
}

pub fn undo(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    run_undo(node, raw, false)
}

pub fn namespace_undo(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    run_undo(node, raw, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, whole: bool) -> Result<Target, String> {
        target(&InfoCommand::parse(raw), whole, false).map_err(|e| e.render())
    }

    #[test]
    fn parameters_and_errors_as_aerospike() {
        assert_eq!(
            parse("truncate:namespace=test;set=demo;lut=0x10", false),
            Ok(Target {
                namespace: "test".into(),
                set: Some("demo".into()),
                lut_nanos: Some(16),
            })
        );
        assert_eq!(
            parse("truncate:namespace=;set=demo", false),
            Err("ERROR:20:missing 'namespace' value".into())
        );
        assert_eq!(
            parse("truncate:namespace=test;set=", false),
            Err("ERROR:4:missing 'set' value".into())
        );
        assert_eq!(
            parse("truncate-namespace:namespace=test;set=demo", true),
            Err("ERROR:4:unexpected set name".into())
        );
        assert!(parse("truncate-namespace:namespace=test", true).is_ok());
        assert!(parse("truncate:namespace=test;set=a;bogus=1", false).is_err());
        assert_eq!(parse_c_number("010"), Some(8));
        assert_eq!(parse_c_number("10"), Some(10));
        assert_eq!(parse_c_number("0"), Some(0));
    }

    #[test]
    fn cut_off_in_ms_since_2010() {
        let now = 500_000;
        assert_eq!(cut_off(None, now), Ok(now));
        let nanos = |ms_since_2010: u64| (CITRUSLEAF_EPOCH * 1000 + ms_since_2010) * 1_000_000;
        assert_eq!(cut_off(Some(nanos(1234)), now), Ok(1234));
        assert_eq!(
            cut_off(Some(1), now).unwrap_err().render(),
            "ERROR:4:would truncate to 0"
        );
        assert_eq!(
            cut_off(Some(nanos(now + 1)), now).unwrap_err().render(),
            "ERROR:4:would truncate in the future"
        );
    }
}
