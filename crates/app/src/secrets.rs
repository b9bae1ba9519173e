//! The random secrets handed out once (console session cookies, calendar feed URLs) and the
//! digests of them that are stored in their place.

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// 256 random bits from the operating system.
pub(crate) fn random() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// What is stored of a secret: its SHA-256 (a 256-bit random secret needs no salt or stretching).
pub(crate) fn hash(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}
