//! Pinned hash functions. Their output is part of the on-disk and cross-node contract: changing
//! either moves every entity, so the test vectors below must never change.

/// FNV-1a, 64 bit. Chosen because it is tiny, has no platform- or seed-dependence and is
/// specified exactly (<http://www.isthe.com/chongo/tech/comp/fnv/>).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // FNV's low bits mix poorly for short keys; a final avalanche (splitmix64) spreads them before
    // the modulo onto shards.
    let mut z = hash.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Jump consistent hash (Lamping & Veach, 2014): maps `key` onto `0..buckets` so that growing from
/// n to n+k buckets moves only ~k/(n+k) of the keys. `buckets` of 0 is treated as 1.
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let divisor = ((key >> 33) + 1) as f64;
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / divisor)) as i64;
    }
    // b is in 0..buckets, which fits u32 by construction.
    u32::try_from(b).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_vectors_are_pinned() {
        // Computed by an independent implementation; never change them.
        assert_eq!(fnv1a64(b""), 0xc381_7c01_6ba4_ff30);
        assert_eq!(fnv1a64(b"alice@example.com"), 0x6e3f_9f79_5974_c45c);
        assert_eq!(fnv1a64(b"SKU-1"), 0xa30d_7ec0_3df8_ffd3);
        let owners: Vec<u32> = (0u32..8)
            .map(|s| jump_consistent_hash(fnv1a64(&s.to_be_bytes()), 5))
            .collect();
        assert_eq!(owners, vec![3, 3, 2, 0, 1, 3, 2, 0]);
    }

    #[test]
    fn jump_hash_moves_few_keys_when_growing() {
        let keys: Vec<u64> = (0..10_000u64).map(|i| fnv1a64(&i.to_be_bytes())).collect();
        let moved = keys
            .iter()
            .filter(|k| jump_consistent_hash(**k, 4) != jump_consistent_hash(**k, 5))
            .count();
        // Ideal is 1/5 of the keys; allow sampling noise.
        assert!((1_500..=2_500).contains(&moved), "moved {moved}");
        // Keys that moved went to the new bucket only.
        assert!(keys.iter().all(|k| {
            let before = jump_consistent_hash(*k, 4);
            let after = jump_consistent_hash(*k, 5);
            before == after || after == 4
        }));
    }

    #[test]
    fn jump_hash_stays_in_range() {
        for n in 1..50 {
            for k in 0..200u64 {
                assert!(jump_consistent_hash(fnv1a64(&k.to_le_bytes()), n) < n);
            }
        }
        assert_eq!(jump_consistent_hash(42, 0), 0);
    }
}
