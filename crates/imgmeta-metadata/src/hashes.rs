//! Content hashes: SHA-256 of the bytes (exact identity) and a 64-bit perceptual hash of the
//! pixels (the same picture re-encoded or resized).

use image::DynamicImage;
use image_hasher::{HashAlg, HasherConfig};
use sha2::{Digest, Sha256};

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A DCT perceptual hash (pHash): grayscale, shrink to 16×16, keep the 8×8 lowest
/// frequencies and set each bit by comparison with their median. Low frequencies survive
/// JPEG requantisation and resizing, which is what makes re-encoded copies hash alike;
/// the median (rather than the mean, which the DC term dominates) splits the bits evenly.
/// 16 lowercase hex characters.
pub(crate) fn phash_hex(image: &DynamicImage) -> String {
    let hasher = HasherConfig::new()
        .hash_size(8, 8)
        .hash_alg(HashAlg::Median)
        .preproc_dct()
        .to_hasher();
    hex::encode(hasher.hash_image(image).as_bytes())
}

/// Hamming distance between two hashes from [`phash_hex`]; `None` if either is malformed.
pub fn phash_distance(a: &str, b: &str) -> Option<u32> {
    let a = u64::from_str_radix(a, 16).ok()?;
    let b = u64::from_str_radix(b, 16).ok()?;
    Some((a ^ b).count_ones())
}
