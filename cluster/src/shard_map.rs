//! The shard map: key → shard (pinned hash, fixed count) → owning node (jump hash over ordinals).

use serde::{Deserialize, Serialize};

use crate::hash::{fnv1a64, jump_consistent_hash};

/// A shard number in `0..shard_count`. The shard count is fixed for the life of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId(pub u32);

/// The version of a shard map. Every ownership change bumps it; writes carrying an older epoch
/// are fenced.
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
    #[error("a shard map needs at least one node")]
    NoNodes,
}

/// Where a key is served, as seen by this node's current map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// This node owns the shard at this epoch.
    Local { shard: ShardId, epoch: Epoch },
    /// Another node owns it; the request must be forwarded (or answered 503 while in motion).
    Remote {
        shard: ShardId,
        owner: u32,
        epoch: Epoch,
    },
}

/// An immutable, versioned shard map. Replace it as a whole when membership changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shard_count: u32,
    /// Member ordinals, contiguous `0..members` as in a StatefulSet.
    members: u32,
    local: u32,
    epoch: Epoch,
}

impl ShardMap {
    pub const MAX_SHARDS: u32 = 65_536;

    /// A map of `members` nodes (ordinals `0..members`) as seen by node `local`.
    pub fn new(shard_count: u32, members: u32, local: u32, epoch: Epoch) -> Result<Self, Error> {
        if shard_count == 0 || shard_count > Self::MAX_SHARDS {
            return Err(Error::BadShardCount {
                got: shard_count,
                max: Self::MAX_SHARDS,
            });
        }
        if members == 0 {
            return Err(Error::NoNodes);
        }
        Ok(Self {
            shard_count,
            members,
            local,
            epoch,
        })
    }

    /// The one-node map of the embedded default: this node owns every shard.
    pub fn single_node(shard_count: u32) -> Result<Self, Error> {
        Self::new(shard_count, 1, 0, Epoch(1))
    }

    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub fn members(&self) -> u32 {
        self.members
    }

    /// The shard of an entity key. Only the key's bytes matter.
    pub fn shard_of(&self, key: &[u8]) -> ShardId {
        // The modulo result is < shard_count ≤ u32::MAX.
        ShardId(u32::try_from(fnv1a64(key) % u64::from(self.shard_count)).unwrap_or(0))
    }

    /// The ordinal owning a shard. Hashing the shard number (not the key) keeps shard moves
    /// minimal and lets a whole shard move at once.
    pub fn owner_of(&self, shard: ShardId) -> u32 {
        jump_consistent_hash(fnv1a64(&shard.0.to_be_bytes()), self.members)
    }

    pub fn place(&self, key: &[u8]) -> Placement {
        let shard = self.shard_of(key);
        let owner = self.owner_of(shard);
        if owner == self.local {
            Placement::Local {
                shard,
                epoch: self.epoch,
            }
        } else {
            Placement::Remote {
                shard,
                owner,
                epoch: self.epoch,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_owns_everything() {
        let map = ShardMap::single_node(1024).unwrap();
        for i in 0..1000u32 {
            let key = format!("user{i}@example.com");
            assert!(matches!(map.place(key.as_bytes()), Placement::Local { .. }));
        }
    }

    #[test]
    fn shard_of_is_pinned() {
        let map = ShardMap::single_node(1024).unwrap();
        // Golden values: if these change, every stored entity changes shard.
        assert_eq!(map.shard_of(b"alice@example.com"), ShardId(92));
        assert_eq!(map.shard_of(b"SKU-1"), ShardId(979));
        assert_eq!(map.shard_of(b""), ShardId(816));
    }

    #[test]
    fn shards_spread_evenly_over_nodes() {
        let map = ShardMap::new(1024, 3, 0, Epoch(1)).unwrap();
        let mut counts = [0u32; 3];
        for s in 0..1024 {
            counts[map.owner_of(ShardId(s)) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (270..=410).contains(c)), "{counts:?}");
    }

    #[test]
    fn growing_moves_about_k_over_n_plus_k() {
        let three = ShardMap::new(1024, 3, 0, Epoch(1)).unwrap();
        let four = ShardMap::new(1024, 4, 0, Epoch(2)).unwrap();
        let moved = (0..1024)
            .filter(|s| three.owner_of(ShardId(*s)) != four.owner_of(ShardId(*s)))
            .count();
        assert!((180..=340).contains(&moved), "moved {moved} of 1024");
    }

    #[test]
    fn rejects_bad_maps() {
        assert_eq!(
            ShardMap::new(0, 1, 0, Epoch(1)),
            Err(Error::BadShardCount {
                got: 0,
                max: ShardMap::MAX_SHARDS
            })
        );
        assert_eq!(ShardMap::new(8, 0, 0, Epoch(1)), Err(Error::NoNodes));
    }
}
