//! Damaged copies of every fixture are refused or described, never a panic or a hang.

use crate::fixtures::{bytes, dir};
use imgmeta_metadata::{DecodeLimits, decode, describe};
use std::time::{Duration, Instant};

/// A tiny deterministic generator (xorshift), so failures reproduce without a seed file.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutations(original: &[u8], rng: &mut Xorshift) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..48 {
        let mut copy = original.to_vec();
        match rng.below(3) {
            // Flip a few bytes anywhere (headers, EXIF, ICC, pixel data).
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(copy.len());
                    copy[at] ^= 1 << rng.below(8);
                }
            }
            // Overwrite a byte with an extreme value, as length fields often are.
            1 => {
                let at = rng.below(copy.len());
                copy[at] = [0x00, 0xff, 0x7f, 0x80][rng.below(4)];
            }
            // Cut the file short.
            _ => copy.truncate(rng.below(copy.len())),
        }
        out.push(copy);
    }
    out
}

#[test]
fn damaged_copies_of_every_fixture_never_panic() {
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let limits = DecodeLimits::default();
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".json"))
        .collect();
    names.sort();
    let (mut decoded, mut refused) = (0, 0);
    for name in names {
        let original = bytes(&name);
        for (i, damaged) in mutations(&original, &mut rng).into_iter().enumerate() {
            let started = Instant::now();
            match decode(&damaged, &limits) {
                Ok(image) => {
                    let described = describe(&damaged, &image);
                    assert_eq!(described.bytes, damaged.len() as u64);
                    decoded += 1;
                }
                Err(_) => refused += 1,
            }
            let elapsed = started.elapsed();
            assert!(
                elapsed < Duration::from_secs(2),
                "{name} mutation {i}: {elapsed:?}"
            );
        }
    }
    // Both paths are exercised: some damage is harmless, some is fatal.
    assert!(
        decoded > 50 && refused > 50,
        "decoded {decoded}, refused {refused}"
    );
}
