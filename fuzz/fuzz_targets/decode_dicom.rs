//! The DICOM decoder on arbitrary bytes behind a Part 10 preamble: it must return an image or an error, never
//! panic, hang or allocate past its limits. Seeded from tests/data/dicom.
#![no_main]

use cxr_core::decode::{DecodeLimits, decode};
use libfuzzer_sys::fuzz_target;

// Third-party decoders may panic on hostile input; `cxr_core::decode` catches that (`guard_panics`) and answers
// `Corrupt`, which is the behaviour under test. libFuzzer's panic hook would abort on the caught panic too, so the
// default hook is replaced by a silent one: a panic that escapes `decode` still aborts in libfuzzer-sys's wrapper.
fuzz_target!(init: { std::panic::set_hook(Box::new(|_| {})) }, |data: &[u8]| {
    // Keep the sniffer on the DICOM path: 128-byte preamble + "DICM" unless the input already has them.
    let bytes: std::borrow::Cow<[u8]> = if data.len() >= 132 && &data[128..132] == b"DICM" {
        data.into()
    } else {
        let mut v = vec![0u8; 128];
        v.extend_from_slice(b"DICM");
        v.extend_from_slice(data);
        v.into()
    };
    let limits = DecodeLimits::new(4_000_000);
    if let Ok(decoded) = decode(&bytes, &limits) {
        assert!(decoded.image.width() as u64 * decoded.image.height() as u64 <= 4_000_000);
    }
});
