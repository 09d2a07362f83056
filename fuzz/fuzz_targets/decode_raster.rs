//! The PNG/JPEG decoders on arbitrary bytes: an image or an error, never a panic, a hang or an allocation past the
//! pixel limit. Seeded from tests/data/images.
#![no_main]

use cxr_core::decode::{DecodeLimits, decode};
use libfuzzer_sys::fuzz_target;

// Third-party decoders may panic on hostile input; `cxr_core::decode` catches that (`guard_panics`) and answers
// `Corrupt`, which is the behaviour under test. libFuzzer's panic hook would abort on the caught panic too, so the
// default hook is replaced by a silent one: a panic that escapes `decode` still aborts in libfuzzer-sys's wrapper.
fuzz_target!(init: { std::panic::set_hook(Box::new(|_| {})) }, |data: &[u8]| {
    let limits = DecodeLimits::new(4_000_000);
    if let Ok(decoded) = decode(data, &limits) {
        assert!(decoded.image.width() as u64 * decoded.image.height() as u64 <= 4_000_000);
    }
});
