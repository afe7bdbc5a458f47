//! Node liveness, watched once per node pair: the supervisor pings every peer each
//! [`crate::sleep::SUPERVISE_EVERY`] (the ping carries that round's sleep asks), and a peer
//! that answered nothing for [`DEAD_AFTER`] is taken for dead.
//!
//! Liveness decides only who campaigns for a sleeping group and when sleeping groups wake:
//! never a vote, a commit or a read. A wrong opinion costs an election or a wake-up, nothing
//! else.

use crate::types::NodeId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A peer silent this long is taken for dead. Several pings, so one slow round is not
/// enough; well under the election timeout, so a sleeping group's successor campaigns about
/// as soon as an awake group's follower would.
pub const DEAD_AFTER: Duration = Duration::from_millis(450);

#[derive(Clone, Copy, Debug)]
struct Peer {
    /// Milliseconds since the node's epoch of the last answer (or request) from the peer.
    heard_ms: u64,
    /// The peer's incarnation (changes at every start; 0 until it first answered).
    incarnation: u64,
    /// Whether the peer was taken for dead at the last [`Liveness::sweep`].
    dead: bool,
}

/// What this node knows of its peers' liveness. A peer it never pinged counts as alive (a
/// node just added to a group is not dead for not being known yet); one pinged but silent
/// for [`DEAD_AFTER`] since the first ping, or since its last answer, counts as dead.
#[derive(Default)]
pub struct Liveness {
    peers: Mutex<HashMap<NodeId, Peer>>,
    /// The origin of the millisecond clock [`Liveness::touch`] reads (the node's start).
    epoch: Option<tokio::time::Instant>,
}

/// What changed for one peer at a [`Liveness::heard`] or [`Liveness::sweep`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Taken for dead.
    Died,
    /// Alive again after being taken for dead, or restarted (a new incarnation).
    Returned,
}

impl Liveness {
    /// Liveness whose [`Liveness::touch`] counts milliseconds from `epoch`.
    pub fn new(epoch: tokio::time::Instant) -> Liveness {
        Liveness {
            peers: Mutex::default(),
            epoch: Some(epoch),
        }
    }

    /// Any answer from `peer` (a Raft RPC's reply) proves it alive now, so a peer busy
    /// enough to answer pings late is not taken for dead while its other answers arrive. A
    /// peer taken for dead stays marked so until its next ping answer, which reports its
    /// return.
    pub fn touch(&self, peer: NodeId) {
        let now_ms = self.now_ms();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = peers.get_mut(&peer) {
            p.heard_ms = p.heard_ms.max(now_ms);
        }
    }

    /// Milliseconds since the epoch given to [`Liveness::new`] (0 without one): the clock
    /// the node's liveness and sleep decisions read.
    pub fn now_ms(&self) -> u64 {
        self.epoch.map_or(0, |e| e.elapsed().as_millis() as u64)
    }

    /// `peer` is being pinged at `now_ms`: from now on its silence counts.
    pub fn pinged(&self, peer: NodeId, now_ms: u64) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.entry(peer).or_insert(Peer {
            heard_ms: now_ms,
            incarnation: 0,
            dead: false,
        });
    }

    /// `peer` answered (or asked) at `now_ms`, in incarnation `incarnation`.
    pub fn heard(&self, peer: NodeId, incarnation: u64, now_ms: u64) -> Option<Change> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let p = peers.entry(peer).or_insert(Peer {
            heard_ms: now_ms,
            incarnation,
            dead: false,
        });
        let restarted = p.incarnation != 0 && p.incarnation != incarnation;
        let returned = p.dead || restarted;
        p.heard_ms = p.heard_ms.max(now_ms);
        p.incarnation = incarnation;
        p.dead = false;
        returned.then_some(Change::Returned)
    }

    /// Whether `peer` counts as alive at `now_ms`.
    pub fn is_alive(&self, peer: NodeId, now_ms: u64) -> bool {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        match peers.get(&peer) {
            Some(p) => now_ms.saturating_sub(p.heard_ms) < DEAD_AFTER.as_millis() as u64,
            None => true,
        }
    }

    /// Mark the peers silent for [`DEAD_AFTER`] as dead; returns those that just died.
    pub fn sweep(&self, now_ms: u64) -> Vec<NodeId> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let mut died = Vec::new();
        for (id, p) in peers.iter_mut() {
            let dead = now_ms.saturating_sub(p.heard_ms) >= DEAD_AFTER.as_millis() as u64;
            if dead && !p.dead {
                died.push(*id);
            }
            p.dead = dead;
        }
        died.sort_unstable();
        died
    }

    /// Milliseconds since `peer` was last heard from, if ever.
    pub fn silent_for(&self, peer: NodeId, now_ms: u64) -> Option<u64> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.get(&peer).map(|p| now_ms.saturating_sub(p.heard_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: u64 = DEAD_AFTER.as_millis() as u64;

    #[test]
    fn a_silent_peer_dies_and_returns() {
        let l = Liveness::default();
        assert_eq!(l.heard(2, 7, 0), None);
        assert!(l.is_alive(2, D - 1));
        assert!(l.sweep(D - 1).is_empty());
        assert!(!l.is_alive(2, D));
        assert_eq!(l.sweep(D), vec![2]);
        // Reported once.
        assert!(l.sweep(D + 100).is_empty());
        assert_eq!(l.heard(2, 7, D + 200), Some(Change::Returned));
        assert!(l.is_alive(2, D + 200));
    }

    #[test]
    fn a_restart_is_a_return_even_without_silence() {
        let l = Liveness::default();
        l.heard(3, 1, 0);
        assert_eq!(l.heard(3, 1, 50), None);
        assert_eq!(l.heard(3, 2, 100), Some(Change::Returned));
    }

    #[test]
    fn a_peer_is_dead_only_once_pinged_in_vain() {
        let l = Liveness::default();
        // Never pinged: alive, however late.
        assert!(l.is_alive(9, 10 * D));
        l.pinged(9, 10 * D);
        assert!(l.is_alive(9, 11 * D - 1));
        assert!(!l.is_alive(9, 11 * D));
        // Its first answer is not a return unless it had been taken for dead.
        assert_eq!(l.heard(9, 5, 11 * D - 1), None);
        l.pinged(8, 0);
        assert_eq!(l.sweep(D), vec![8]);
        assert_eq!(l.heard(8, 5, D + 1), Some(Change::Returned));
    }
}
