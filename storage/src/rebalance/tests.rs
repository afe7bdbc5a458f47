use super::*;
use crate::catalog::place;
use proptest::prelude::*;

/// Replica moves between two placements: (replicas added, replicas removed) over all groups.
pub fn moves(from: &[Vec<NodeId>], to: &[Vec<NodeId>]) -> (usize, usize) {
    from.iter().zip(to).fold((0, 0), |(a, r), (f, t)| {
        (
            a + t.iter().filter(|n| !f.contains(n)).count(),
            r + f.iter().filter(|n| !t.contains(n)).count(),
        )
    })
}

fn loads(p: &[Vec<NodeId>]) -> BTreeMap<NodeId, usize> {
    let mut l = BTreeMap::new();
    for g in p {
        for n in g {
            *l.entry(*n).or_default() += 1;
        }
    }
    l
}

fn leaders(p: &[Vec<NodeId>]) -> BTreeMap<NodeId, usize> {
    let mut l = BTreeMap::new();
    for g in p {
        *l.entry(g[0]).or_default() += 1;
    }
    l
}

#[test]
fn same_roster_moves_nothing() {
    let p = place(&[1, 2, 3], 3, 16, 1);
    assert_eq!(rebalance(&p, &[1, 2, 3], 3), p);
    let p = place(&[1, 2, 3, 4, 5], 3, 16, 7);
    let q = rebalance(&p, &[5, 4, 3, 2, 1], 3);
    assert_eq!(moves(&p, &q), (0, 0));
}

#[test]
fn growing_moves_only_the_new_nodes_share() {
    // 3 → 5 nodes, rf 3, 16 groups: 48 replicas, 9 or 10 per node; the two new nodes take
    // about 19, and nothing else moves.
    let p = place(&[1, 2, 3], 3, 16, 1);
    let q = rebalance(&p, &[1, 2, 3, 4, 5], 3);
    let (added, removed) = moves(&p, &q);
    assert_eq!(added, removed);
    let l = loads(&q);
    assert!(l.values().all(|n| (9..=10).contains(n)), "{l:?}");
    assert_eq!(added, l[&4] + l[&5]);
    let leads = leaders(&q);
    assert!(leads.values().all(|n| (3..=4).contains(n)), "{leads:?}");
}

#[test]
fn shrinking_and_replacing() {
    let p = place(&[1, 2, 3, 4, 5], 3, 16, 1);
    let q = rebalance(&p, &[1, 2, 3], 3);
    assert!(q.iter().all(|g| {
        let mut s = g.clone();
        s.sort_unstable();
        s == vec![1, 2, 3]
    }));
    // replace 3 by 4 in a 3-node cluster: exactly node 3's replicas move, to 4
    let p = place(&[1, 2, 3], 3, 16, 1);
    let q = rebalance(&p, &[1, 2, 4], 3);
    assert_eq!(moves(&p, &q), (16, 16));
    assert!(q.iter().all(|g| g.contains(&4) && !g.contains(&3)));
    // a roster smaller than the factor caps it
    let q = rebalance(&p, &[2], 3);
    assert!(q.iter().all(|g| g == &vec![2]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn placements_are_valid_balanced_and_minimal(
        before in proptest::collection::btree_set(1u64..12, 1..8),
        after in proptest::collection::btree_set(1u64..12, 1..8),
        rf in 1usize..5,
        groups in 1u16..40,
        salt in 0u32..10,
    ) {
        let before: Vec<NodeId> = before.into_iter().collect();
        let after: Vec<NodeId> = after.into_iter().collect();
        let p = place(&before, rf, groups, salt);
        let q = rebalance(&p, &after, rf);
        let rf_eff = rf.min(after.len());
        // every group: rf distinct roster nodes
        for g in &q {
            prop_assert_eq!(g.len(), rf_eff);
            let mut s = g.clone();
            s.sort_unstable();
            s.dedup();
            prop_assert_eq!(s.len(), rf_eff);
            prop_assert!(g.iter().all(|n| after.contains(n)));
        }
        // balanced: replica counts differ by at most one
        let mut l = loads(&q);
        for n in &after {
            l.entry(*n).or_default();
        }
        let (mn, mx) = (l.values().min().unwrap(), l.values().max().unwrap());
        prop_assert!(mx - mn <= 1, "{:?}", l);
        // nearly minimal: a staying node loses at most one replica unless it was above its
        // new share
        let share = usize::from(groups) * rf_eff / after.len();
        let old = loads(&p);
        for n in after.iter().filter(|n| before.contains(n)) {
            let kept = p.iter().zip(&q).filter(|(a, b)| a.contains(n) && b.contains(n)).count();
            let had = old.get(n).copied().unwrap_or(0).min(rf_eff * usize::from(groups));
            // (A greedy fill can be one replica short of a perfect matching.)
            prop_assert!(kept + 1 >= had.min(share), "node {} kept {} of {}", n, kept, had);
        }
        // total moves within one per node of the least possible (every replica above a
        // node's share, plus the replicas of leaving nodes)
        let leaving: usize = p.iter().map(|g| g.iter().filter(|n| !after.contains(n)).count()).sum();
        let above: usize = after.iter().map(|n| old.get(n).copied().unwrap_or(0).saturating_sub(share + 1)).sum();
        let (_, removed) = moves(&p, &q);
        prop_assert!(removed <= leaving + above + after.len(), "{} > {} + {}", removed, leaving, above);
        // idempotent
        prop_assert_eq!(moves(&q, &rebalance(&q, &after, rf)), (0, 0));
    }
}
