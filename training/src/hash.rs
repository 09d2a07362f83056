//! The two small, portable mixing functions of the crate: FNV-1a 64 ([`Fnv1a`]) for fingerprints, parameter ids and
//! initialisation keys, and SplitMix64 ([`splitmix64`], [`mix64`]) for seeded initial weights. Both are stable across
//! platforms and Rust versions (std's hasher and `rand`'s generators are not promised to be), so a seed always
//! gives the same files. Not for anything adversarial.

/// FNV-1a 64, fed in pieces: stable across platforms and Rust versions (std's hasher is not), and enough to tell
/// sample lists, parameter paths and initialisation keys apart. Not for anything adversarial.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
}

impl Fnv1a {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    /// The hash of one byte string.
    pub fn hash(bytes: &[u8]) -> u64 {
        let mut h = Self::default();
        h.feed(bytes);
        h.0
    }
}

/// SplitMix64 step (Steele, Lea & Flood 2014): advances `state` by the golden gamma and returns [`mix64`] of it.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    mix64(*state)
}

/// SplitMix64's output function: a bijective, well-mixed 64-bit finaliser.
pub fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64's increment, 2^64 / φ.
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // SplitMix64 from state 0, and FNV-1a 64 of "" and "a" (the published test vectors).
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut state), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(Fnv1a::hash(b""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(Fnv1a::hash(b"a"), 0xAF63_DC4C_8601_EC8C);
    }
}
