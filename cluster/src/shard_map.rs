//! Placement: key → shard (pinned hash, fixed count) → owning node (rendezvous hashing over the
//! ordinals of the live members).
//!
//! Rendezvous (highest random weight) hashing gives every (shard, ordinal) pair a pinned score and
//! makes the live member with the highest score the shard's owner. That one rule covers every case
//! the cluster meets:
//! - growing n → n+k: a shard moves only if a new ordinal outscores its owner, so ~k/(n+k) of the
//!   shards move, all of them to the new nodes;
//! - shrinking: only the removed ordinals' shards move (to their next-highest scorers);
//! - an ordinal temporarily absent (a pod restarting): its shards go to their second-highest scorer,
//!   the deterministic **stand-in**, and exactly those come back when it returns.

use serde::{Deserialize, Serialize};

use crate::hash::fnv1a64;

/// A shard number in `0..shard_count`. The shard count is fixed for the life of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId(pub u32);

/// The ownership version of one shard. Every change of owner bumps it; writes carrying an older
/// epoch are fenced. 0 is the single-node default, which fences nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Epoch(pub u64);

/// A node's identity: its StatefulSet ordinal (stable across restarts) and a generation that
/// grows on every start, so a restarted pod is distinguishable from its previous life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId {
    pub ordinal: u32,
    pub generation: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("shard count must be between 1 and {max}, got {got}")]
    BadShardCount { got: u32, max: u32 },
}

/// The placement function: which shard a key is in, and which live ordinal should own a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardMap {
    shard_count: u32,
}

impl ShardMap {
    pub const MAX_SHARDS: u32 = 65_536;

    pub fn new(shard_count: u32) -> Result<Self, Error> {
        if shard_count == 0 || shard_count > Self::MAX_SHARDS {
            return Err(Error::BadShardCount {
                got: shard_count,
                max: Self::MAX_SHARDS,
            });
        }
        Ok(Self { shard_count })
    }

    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// The shard of an entity key. Only the key's bytes matter.
    pub fn shard_of(&self, key: &[u8]) -> ShardId {
        // The modulo result is < shard_count ≤ u32::MAX.
        ShardId(u32::try_from(fnv1a64(key) % u64::from(self.shard_count)).unwrap_or(0))
    }

    /// The live ordinal that should own `shard`: the highest score among `live` (ties, which a
    /// 64-bit score makes vanishingly rare, go to the lower ordinal). `None` when nobody is live.
    pub fn desired_owner(shard: ShardId, live: impl IntoIterator<Item = u32>) -> Option<u32> {
        live.into_iter()
            .map(|ordinal| (score(shard, ordinal), std::cmp::Reverse(ordinal)))
            .max()
            .map(|(_, std::cmp::Reverse(ordinal))| ordinal)
    }
}

/// The pinned rendezvous score of `ordinal` for `shard`: part of the cross-node contract (every
/// node must compute the same owner), so it never uses std hashing.
pub fn score(shard: ShardId, ordinal: u32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&shard.0.to_be_bytes());
    bytes[4..].copy_from_slice(&ordinal.to_be_bytes());
    fnv1a64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(shards: u32, live: &[u32]) -> Vec<u32> {
        (0..shards)
            .map(|s| ShardMap::desired_owner(ShardId(s), live.iter().copied()).unwrap_or(u32::MAX))
            .collect()
    }

    #[test]
    fn shard_of_is_pinned() {
        let map = ShardMap::new(1024).unwrap();
        // Golden values: if these change, every stored entity changes shard.
        assert_eq!(map.shard_of(b"alice@example.com"), ShardId(92));
        assert_eq!(map.shard_of(b"SKU-1"), ShardId(979));
        assert_eq!(map.shard_of(b""), ShardId(816));
    }

    #[test]
    fn owners_are_pinned() {
        // Golden values (from an independent implementation): every node must compute the same
        // owners, build after build.
        assert_eq!(score(ShardId(0), 0), 0x5ba3_14b8_cfda_3b6b);
        assert_eq!(owners(8, &[0, 1, 2, 3, 4]), vec![3, 2, 2, 3, 2, 0, 0, 4]);
    }

    #[test]
    fn nobody_live_owns_nothing() {
        assert_eq!(ShardMap::desired_owner(ShardId(3), []), None);
        assert_eq!(ShardMap::desired_owner(ShardId(3), [7]), Some(7));
    }

    #[test]
    fn shards_spread_evenly_over_nodes() {
        for n in [2u32, 3, 5, 8] {
            let live: Vec<u32> = (0..n).collect();
            let mut counts = vec![0u32; n as usize];
            for o in owners(1024, &live) {
                counts[o as usize] += 1;
            }
            let ideal = 1024 / n;
            assert!(
                counts.iter().all(|c| c.abs_diff(ideal) <= ideal / 4),
                "{n} nodes: {counts:?}"
            );
        }
    }

    /// Moved shards when going from `a` to `b` live ordinals, against the ideal k/(n+k).
    fn moved(a: &[u32], b: &[u32]) -> (usize, f64) {
        let (before, after) = (owners(1024, a), owners(1024, b));
        let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count();
        let (n, m) = (a.len() as f64, b.len() as f64);
        let ideal = 1024.0 * (m - n).abs() / n.max(m);
        (moved, ideal)
    }

    #[test]
    fn growing_moves_about_k_over_n_plus_k_all_to_the_new_nodes() {
        for (n, k) in [(1u32, 1u32), (2, 1), (3, 1), (3, 2), (4, 4), (5, 3)] {
            let a: Vec<u32> = (0..n).collect();
            let b: Vec<u32> = (0..n + k).collect();
            let (moved, ideal) = moved(&a, &b);
            assert!(
                (moved as f64 - ideal).abs() <= ideal * 0.1 + 8.0,
                "{n}->{}: moved {moved}, ideal {ideal}",
                n + k
            );
            let (before, after) = (owners(1024, &a), owners(1024, &b));
            assert!(before.iter().zip(&after).all(|(x, y)| x == y || *y >= n));
        }
    }

    #[test]
    fn shrinking_moves_only_the_removed_nodes_shards() {
        for (n, k) in [(2u32, 1u32), (3, 1), (5, 3), (5, 2)] {
            let a: Vec<u32> = (0..n).collect();
            let b: Vec<u32> = (0..n - k).collect();
            let (before, after) = (owners(1024, &a), owners(1024, &b));
            assert!(before
                .iter()
                .zip(&after)
                .all(|(x, y)| x == y || *x >= n - k));
            let (moved, ideal) = moved(&a, &b);
            assert!((moved as f64 - ideal).abs() <= ideal * 0.1 + 8.0);
        }
    }

    #[test]
    fn an_absent_ordinal_has_a_stand_in_and_gets_exactly_its_shards_back() {
        let all = [0u32, 1, 2, 3];
        let without_1 = [0u32, 2, 3];
        let (full, absent) = (owners(1024, &all), owners(1024, &without_1));
        for (s, (x, y)) in full.iter().zip(&absent).enumerate() {
            if *x == 1 {
                // The stand-in is the second-highest scorer: deterministic on every node.
                let mut ranked: Vec<u32> = all.to_vec();
                ranked.sort_by_key(|o| std::cmp::Reverse(score(ShardId(s as u32), *o)));
                assert_eq!(*y, ranked[1]);
            } else {
                assert_eq!(x, y, "shard {s} moved although its owner stayed");
            }
        }
        // Back again: the same map as before the absence.
        assert_eq!(owners(1024, &all), full);
    }

    #[test]
    fn rejects_bad_shard_counts() {
        assert_eq!(
            ShardMap::new(0),
            Err(Error::BadShardCount {
                got: 0,
                max: ShardMap::MAX_SHARDS
            })
        );
        assert!(ShardMap::new(ShardMap::MAX_SHARDS + 1).is_err());
    }
}
