//! Locality-sensitive hashing of message vectors (random hyperplanes), so
//! the store can find the few past incidents whose messages are alike
//! without comparing against every one of them.
//!
//! The hyperplanes come from a fixed seed: keys are stable across processes
//! and versions of this crate (changing [`BANDS`], [`BITS`] or the seed is a
//! migration of the stored keys). Each key is salted with the tenant, so an
//! index lookup of one tenant's keys finds only that tenant's incidents.

/// Bands of hyperplanes; two vectors are candidates when any band agrees.
pub const BANDS: usize = 16;
/// Hyperplanes per band: a band's key has this many sign bits (more bits,
/// fewer unlike messages sharing a key).
pub const BITS: usize = 12;

const SEED: u64 = 0x5eed_a3f0_c0de_0001;

/// SplitMix64: a small, well-mixed, stable generator.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sign of hyperplane `plane` (0..BANDS·BITS) against `vector`: the
/// plane's components are ±1, drawn from the seed, one per dimension.
fn side(plane: usize, vector: &[f32]) -> bool {
    let mut state = SEED ^ (plane as u64).wrapping_mul(0xA24B_AED4_963E_E407);
    let mut sum = 0.0f64;
    let mut bits = 0u64;
    for (i, &x) in vector.iter().enumerate() {
        if i % 64 == 0 {
            bits = splitmix(&mut state);
        }
        let positive = (bits >> (i % 64)) & 1 == 1;
        sum += if positive {
            f64::from(x)
        } else {
            -f64::from(x)
        };
    }
    sum >= 0.0
}

/// The vector's keys for `tenant`, one per band: a hash of the tenant, the
/// band and its sign bits. An empty or all-zero vector (no message) has no
/// keys.
#[must_use]
pub fn keys(tenant: uuid::Uuid, vector: &[f32]) -> Vec<i32> {
    let salt = u64::from_le_bytes(tenant.as_bytes()[..8].try_into().unwrap_or([0; 8]))
        ^ u64::from_le_bytes(tenant.as_bytes()[8..].try_into().unwrap_or([0; 8]));
    band_keys(vector)
        .into_iter()
        .map(|k| {
            let mut state = salt ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            // The low 32 bits of a well-mixed value, as the stored int.
            (splitmix(&mut state) & 0xFFFF_FFFF) as u32 as i32
        })
        .collect()
}

/// The unsalted keys: `band << 16 | sign bits`.
fn band_keys(vector: &[f32]) -> Vec<i32> {
    if vector.iter().all(|&x| x == 0.0) {
        return Vec::new();
    }
    (0..BANDS)
        .map(|band| {
            let mut key = 0i32;
            for bit in 0..BITS {
                if side(band * BITS + bit, vector) {
                    key |= 1 << bit;
                }
            }
            ((band as i32) << 16) | key
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_vectors_share_every_key_and_keys_are_stable() {
        let t = uuid::Uuid::from_u128(7);
        let v: Vec<f32> = (0..256).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        assert_eq!(keys(t, &v), keys(t, &v.clone()));
        assert_eq!(keys(t, &v).len(), BANDS);
        assert!(keys(t, &[0.0; 256]).is_empty());
    }

    #[test]
    fn another_tenant_shares_no_key() {
        let v: Vec<f32> = (0..256).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let (a, b) = (
            keys(uuid::Uuid::from_u128(1), &v),
            keys(uuid::Uuid::from_u128(2), &v),
        );
        assert!(a.iter().all(|k| !b.contains(k)));
    }

    #[test]
    fn opposite_vectors_share_no_key() {
        let v: Vec<f32> = (0..256).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let w: Vec<f32> = v.iter().map(|x| -x).collect();
        let t = uuid::Uuid::from_u128(7);
        let (a, b) = (keys(t, &v), keys(t, &w));
        assert!(a.iter().all(|k| !b.contains(k)));
    }
}
