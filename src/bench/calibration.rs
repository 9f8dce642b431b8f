//! How fast this machine is right now, so that the history can tell a slower machine from slower code.
//!
//! These machines are shared and noisy: the same build of the simulation ran 25% slower in one session
//! than in another, and the history called it a regression. Every run therefore also times a fixed
//! piece of single-threaded work of the kind the benchmarks do most (allocating and freeing small
//! buffers, B-tree inserts and lookups, SipHash, copying), and the history scales an earlier run's
//! speeds by how fast the machine ran that work then and now before it compares them.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// How many times the work is timed; the median counts.
const SAMPLES: usize = 7;
/// Units of work per sample: about 30 ms each on the development machines.
const UNITS_PER_SAMPLE: u32 = 8;

/// Units of the fixed work per second, the median of several samples.
pub fn machine_speed() -> f64 {
    let mut rates: Vec<f64> = (0..SAMPLES).map(|_| sample()).collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn sample() -> f64 {
    let started = Instant::now();
    for unit in 0..UNITS_PER_SAMPLE {
        black_box(work(black_box(u64::from(unit))));
    }
    let took = started.elapsed().max(Duration::from_nanos(1));
    f64::from(UNITS_PER_SAMPLE) / took.as_secs_f64()
}

/// One unit: a map of small buffers churned by key, each buffer hashed as it goes in.
fn work(seed: u64) -> u64 {
    let mut map: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut digest = seed;
    for i in 0..20_000u64 {
        let key = (i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 8_192;
        let value = format!("record-{key:08}-{i:08}-{digest:016x}").into_bytes();
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        digest ^= hasher.finish();
        if let Some(old) = map.insert(key, value) {
            digest = digest.rotate_left(7) ^ old.len() as u64;
        }
        if i % 3 == 0 {
            if let Some(removed) = map.remove(&(key / 2)) {
                digest ^= u64::from(removed[removed.len() - 1]);
            }
        }
    }
    digest ^ map.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_is_the_same_every_time_and_its_speed_is_positive() {
        assert_eq!(work(3), work(3));
        assert_ne!(work(3), work(4));
        assert!(machine_speed() > 0.0);
    }
}
