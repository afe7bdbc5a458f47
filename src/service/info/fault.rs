//! Fault injection for tests, refused unless the node runs with `--allow-fault-injection`.

use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoError, InfoResult};
use storage::record::ResultCode;

/// `clock-rate` answers the rate of this node's Raft clock (1 = real time);
/// `clock-rate:rate=R` sets it, so a test can make one node's clock run slow or fast and
/// check lease reads with their clock assumption kept and broken.
pub fn clock_rate(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let params = cmd.params();
    params.only(&["rate"])?;
    if let Some(rate) = params.number::<f64>("rate")? {
        if !node.config.fault_injection {
            return Err(InfoError::new(
                ResultCode::Forbidden,
                "fault injection is off (start the node with --allow-fault-injection)",
            ));
        }
        raft::clock::set_rate(rate).map_err(InfoError::parameter)?;
        tracing::warn!(rate, "Raft clock rate changed by fault injection");
    }
    Ok(raft::clock::rate().to_string())
}
