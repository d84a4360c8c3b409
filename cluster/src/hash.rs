//! The pinned hash function. Its output is part of the on-disk and cross-node contract: changing
//! it moves every entity, so the test vectors below must never change.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_vectors_are_pinned() {
        // Computed by an independent implementation; never change them.
        assert_eq!(fnv1a64(b""), 0xc381_7c01_6ba4_ff30);
        assert_eq!(fnv1a64(b"alice@example.com"), 0x6e3f_9f79_5974_c45c);
        assert_eq!(fnv1a64(b"SKU-1"), 0xa30d_7ec0_3df8_ffd3);
    }
}
