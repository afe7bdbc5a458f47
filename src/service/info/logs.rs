//! Log sinks, as monitoring tools ask for them (`logs`, `log/<id>`): one sink, stderr, with
//! the effective level of each of the node's log contexts in Aerospike's level names.

use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoError, InfoResult};
use tracing::Level;

/// The only sink: every line goes to stderr (redirect it, or run under a supervisor).
const SINK: &str = "0:stderr";

/// Levels from the most verbose, with Aerospike's name for each.
const LEVELS: [(Level, &str); 5] = [
    (Level::TRACE, "DETAIL"),
    (Level::DEBUG, "DEBUG"),
    (Level::INFO, "INFO"),
    (Level::WARN, "WARNING"),
    (Level::ERROR, "CRITICAL"),
];

/// `logs`: `<id>:<path>` per sink.
pub fn logs(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok(SINK.into())
}

/// `log/<id>`: `<context>:<LEVEL>;...` for sink `id`.
pub fn log(_: &Node, cmd: &InfoCommand) -> InfoResult {
    if cmd.sep != Some('/') || cmd.rest != "0" {
        return Err(InfoError::parameter(format!(
            "no log sink '{}' (sinks: {SINK})",
            cmd.rest
        )));
    }
    Ok(render(&contexts()))
}

/// Each context's most verbose enabled level, as the running subscriber's filter decides.
fn contexts() -> Vec<(&'static str, Option<Level>)> {
    // `enabled!` needs its target as a literal: one line per context.
    let first = |enabled: [bool; 5]| LEVELS.iter().zip(enabled).find(|(_, on)| *on);
    macro_rules! level {
        ($target:literal) => {
            first([
                tracing::enabled!(target: $target, Level::TRACE),
                tracing::enabled!(target: $target, Level::DEBUG),
                tracing::enabled!(target: $target, Level::INFO),
                tracing::enabled!(target: $target, Level::WARN),
                tracing::enabled!(target: $target, Level::ERROR),
            ])
            .map(|((l, _), _)| *l)
        };
    }
    vec![
        ("strato", level!("strato")),
        ("raft", level!("raft")),
        ("storage", level!("storage")),
        ("openraft", level!("openraft")),
        ("sled", level!("sled")),
        ("jepsen", level!("jepsen")),
    ]
}

/// `context:LEVEL;...`; a context with nothing enabled shows CRITICAL (Aerospike's floor).
fn render(contexts: &[(&str, Option<Level>)]) -> String {
    contexts
        .iter()
        .map(|(name, level)| {
            let label = level
                .and_then(|l| LEVELS.iter().find(|(x, _)| *x == l))
                .map_or("CRITICAL", |(_, n)| n);
            format!("{name}:{label}")
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aerospike_level_names() {
        let got = render(&[
            ("strato", Some(Level::INFO)),
            ("raft", Some(Level::TRACE)),
            ("openraft", Some(Level::WARN)),
            ("sled", None),
        ]);
        assert_eq!(
            got,
            "strato:INFO;raft:DETAIL;openraft:WARNING;sled:CRITICAL"
        );
    }
}
