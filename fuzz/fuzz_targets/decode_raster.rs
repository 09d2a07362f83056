//! The PNG/JPEG decoders on arbitrary bytes: an image or an error, never a panic, a hang or an allocation past the
//! pixel limit. Seeded from tests/data/images.
#![no_main]

use cxr_core::decode::{DecodeLimits, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::new(4_000_000);
    if let Ok(decoded) = decode(data, &limits) {
        assert!(decoded.image.width() as u64 * decoded.image.height() as u64 <= 4_000_000);
    }
});
