//! Aerospike's read touch (`read_touch_ttl_percent`, server 7.1+): a read of a record close
//! to expiry resets its TTL, so records that are read stay alive. The decision is pure; the
//! touch itself is a replicated command ([`crate::command::ReadTouchCommand`]).

use super::ResultCode;

/// The client's "never touch" value (-1 as the i32 it sends).
pub const NEVER_TOUCH: u32 = u32::MAX;
/// The client's "use the namespace's `default-read-touch-ttl-pct`" value.
pub const USE_NAMESPACE_DEFAULT: u32 = 0;

/// Whether a read should touch a record, and with which TTL: the TTL the record was last
/// written with (`void_time` minus its last-update second), once less than `pct` percent of
/// that TTL remains. `asked` is the percentage the read carries, `default_pct` the
/// namespace's. A percentage above 100 is refused with 4 PARAMETER, as Aerospike does (only
/// for records that can expire: others are never touched, whatever the read asks).
pub fn read_touch_ttl(
    void_time: u32,
    last_update_ms: u64,
    asked: u32,
    default_pct: u32,
    now: u32,
) -> Result<Option<u32>, ResultCode> {
    if void_time == 0 || asked == NEVER_TOUCH {
        return Ok(None);
    }
    let pct = match asked {
        USE_NAMESPACE_DEFAULT => default_pct,
        p if p > 100 => return Err(ResultCode::Parameter),
        p => p,
    };
    if pct == 0 {
        return Ok(None);
    }
    let written = u32::try_from(last_update_ms / 1000).unwrap_or(u32::MAX);
    let write_ttl = void_time.saturating_sub(written);
    let threshold = u32::try_from(u64::from(write_ttl) * u64::from(pct) / 100).unwrap_or(0);
    if now < void_time - threshold {
        Ok(None)
    } else {
        Ok(Some(write_ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_once_less_than_pct_of_the_written_ttl_remains() {
        // Written at second 1000 with TTL 100: void time 1100.
        let t = |asked, default, now| read_touch_ttl(1100, 1_000_000, asked, default, now);
        // 80%: touch once 80 s or less remain (from second 1020).
        assert_eq!(t(80, 0, 1019), Ok(None));
        assert_eq!(t(80, 0, 1020), Ok(Some(100)));
        assert_eq!(t(100, 0, 1000), Ok(Some(100)));
        assert_eq!(t(1, 0, 1098), Ok(None));
        assert_eq!(t(1, 0, 1099), Ok(Some(100)));
        // 0 = the namespace's percentage; 0 there = never.
        assert_eq!(t(USE_NAMESPACE_DEFAULT, 50, 1050), Ok(Some(100)));
        assert_eq!(t(USE_NAMESPACE_DEFAULT, 0, 1099), Ok(None));
        assert_eq!(t(NEVER_TOUCH, 100, 1099), Ok(None));
        assert_eq!(t(101, 0, 1050), Err(ResultCode::Parameter));
    }

    #[test]
    fn records_that_never_expire_are_never_touched() {
        assert_eq!(read_touch_ttl(0, 5, 101, 0, 10), Ok(None));
        assert_eq!(read_touch_ttl(0, 5, 50, 0, 10), Ok(None));
    }
}
