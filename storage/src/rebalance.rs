//! Placement after a roster change: which nodes each group's replicas should be on, moving
//! as few replicas as possible while every roster node ends up with its fair share.
//!
//! [`rebalance`] is a pure function of (current placement, new roster, replication factor):
//! every replica on a node that stays is kept, except those above the node's share (floor or
//! ceiling of replicas per node, the ceilings to the nodes that keep most); a group short of
//! replicas (their node left the roster or shed them, or the factor grew) is filled from the
//! nodes furthest below their share (this is what gives a new node its data); what the fill
//! could not place evenly moves one replica at a time from the most to the least loaded. Finally each group's replica order, whose first entry is the preferred
//! leader, is chosen so leaders spread evenly, without moving anything.

use crate::catalog::NodeId;
use std::collections::BTreeMap;

/// The new replicas of every group (preferred leader first). `roster` must not be empty.
pub fn rebalance(
    current: &[Vec<NodeId>],
    roster: &[NodeId],
    replication_factor: usize,
) -> Vec<Vec<NodeId>> {
    let mut roster = roster.to_vec();
    roster.sort_unstable();
    roster.dedup();
    if roster.is_empty() {
        return vec![Vec::new(); current.len()];
    }
    let rf = replication_factor.clamp(1, roster.len());
    // Keep the replicas on staying nodes.
    let mut groups: Vec<Vec<NodeId>> = current
        .iter()
        .map(|r| {
            let mut kept: Vec<NodeId> = Vec::with_capacity(rf);
            for n in r {
                if roster.binary_search(n).is_ok() && !kept.contains(n) && kept.len() < rf {
                    kept.push(*n);
                }
            }
            kept
        })
        .collect();
    let mut load: BTreeMap<NodeId, usize> = roster.iter().map(|n| (*n, 0)).collect();
    for g in &groups {
        for n in g {
            *load.entry(*n).or_default() += 1;
        }
    }
    // Each node's share: floor or ceil of the replicas per node, the ceilings going to the
    // nodes that keep the most (so fewer replicas move).
    let total = groups.len() * rf;
    let mut by_kept: Vec<NodeId> = roster.clone();
    by_kept.sort_by_key(|n| (std::cmp::Reverse(load[n]), *n));
    let quota: BTreeMap<NodeId, usize> = by_kept
        .iter()
        .enumerate()
        .map(|(k, n)| {
            (
                *n,
                total / roster.len() + usize::from(k < total % roster.len()),
            )
        })
        .collect();
    // Shed replicas of nodes above their share, one at a time from the group missing the
    // fewest replicas so far (then followers first, later groups first): holes spread over
    // the groups, so the nodes below their share can fill them without a group needing
    // more newcomers than there are, which would force extra moves later.
    for n in &roster {
        let over = load[n].saturating_sub(quota[n]);
        for _ in 0..over {
            let Some(i) = (0..groups.len())
                .rev()
                .filter(|&i| groups[i].contains(n))
                .min_by_key(|&i| (rf - groups[i].len(), groups[i].first() == Some(n)))
            else {
                break;
            };
            groups[i].retain(|x| x != n);
            *load.entry(*n).or_default() -= 1;
        }
    }
    // Fill groups short of replicas from the nodes furthest below their share (a group
    // holds fewer than rf ≤ roster nodes, so there is always a candidate).
    for g in groups.iter_mut() {
        while g.len() < rf {
            let Some(pick) = roster
                .iter()
                .copied()
                .filter(|c| !g.contains(c))
                .max_by_key(|c| (quota[c] as i64 - load[c] as i64, std::cmp::Reverse(*c)))
            else {
                break;
            };
            g.push(pick);
            *load.entry(pick).or_default() += 1;
        }
    }
    // Even out what the fill could not place within the shares: move replicas from the most
    // to the least loaded nodes until no two differ by more than one. Bounded: each move
    // lowers the sum of squared loads.
    for _ in 0..=total {
        let Some((i, hi, lo)) = next_move(&groups, current, &load) else {
            break;
        };
        for n in groups[i].iter_mut() {
            if *n == hi {
                *n = lo;
            }
        }
        *load.entry(hi).or_default() -= 1;
        *load.entry(lo).or_default() += 1;
    }
    spread_leaders(&mut groups, current, &roster);
    groups
}

/// One replica move that evens the load: (group, from, to), from a node carrying at least
/// two more replicas than the receiving one. Prefers a replica the fill just placed (moving
/// it again costs no extra copy), then one where the giver is not the preferred leader
/// (moving a follower is cheaper).
fn next_move(
    groups: &[Vec<NodeId>],
    current: &[Vec<NodeId>],
    load: &BTreeMap<NodeId, usize>,
) -> Option<(usize, NodeId, NodeId)> {
    let mut by_load: Vec<(NodeId, usize)> = load.iter().map(|(n, l)| (*n, *l)).collect();
    by_load.sort_by_key(|(n, l)| (*l, *n));
    for &(hi, hl) in by_load.iter().rev() {
        for &(lo, ll) in &by_load {
            if hl < ll + 2 {
                break;
            }
            let found = groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.contains(&hi) && !g.contains(&lo))
                .min_by_key(|(i, g)| {
                    let original = current.get(*i).is_some_and(|c| c.contains(&hi));
                    (original, g.first() == Some(&hi), *i)
                })
                .map(|(i, _)| i);
            if let Some(i) = found {
                return Some((i, hi, lo));
            }
        }
    }
    None
}

/// Order each group's replicas so the preferred leaders (first entries) spread evenly: keep
/// each group's current preferred leader where it stays, then hand groups from the node
/// leading the most to a replica leading at least two fewer, until no such hand-over is left.
fn spread_leaders(groups: &mut [Vec<NodeId>], current: &[Vec<NodeId>], roster: &[NodeId]) {
    let mut leads: BTreeMap<NodeId, usize> = roster.iter().map(|n| (*n, 0)).collect();
    for (i, g) in groups.iter_mut().enumerate() {
        let old = current.get(i).and_then(|r| r.first());
        if let Some(p) = old.and_then(|o| g.iter().position(|n| n == o)) {
            let n = g.remove(p);
            g.insert(0, n);
        }
        if let Some(first) = g.first() {
            *leads.entry(*first).or_default() += 1;
        }
    }
    for _ in 0..=groups.len() * roster.len() {
        let mut by_leads: Vec<(NodeId, usize)> = leads.iter().map(|(n, l)| (*n, *l)).collect();
        by_leads.sort_by_key(|(n, l)| (std::cmp::Reverse(*l), *n));
        let hand_over = by_leads.iter().find_map(|&(hi, hl)| {
            groups.iter().enumerate().find_map(|(i, g)| {
                if g.first() != Some(&hi) {
                    return None;
                }
                g.iter()
                    .skip(1)
                    .filter(|n| leads.get(n).copied().unwrap_or(0) + 2 <= hl)
                    .min_by_key(|n| (leads.get(n).copied().unwrap_or(0), **n))
                    .map(|to| (i, hi, *to))
            })
        });
        let Some((i, from, to)) = hand_over else {
            break;
        };
        let g = &mut groups[i];
        if let Some(p) = g.iter().position(|n| *n == to) {
            let n = g.remove(p);
            g.insert(0, n);
        }
        *leads.entry(from).or_default() -= 1;
        *leads.entry(to).or_default() += 1;
    }
}

#[cfg(test)]
mod tests;
