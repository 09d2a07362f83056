//! Hostile uploads: every fixture truncated, byte-flipped and (DICOM) length-corrupted, deterministically, posted to
//! the real server. Each answer must be a prediction or a client error (4xx problem+json) — never a 5xx, a hang or
//! a dropped connection. This is the corpus style of the mutation run that found nothing against the server before
//! the fuzz targets (fuzz/) existed, kept as a regression test.

use crate::helpers::{client, default_server, manifest};

/// SplitMix64: a fixed, portable sequence of positions.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (*state ^ (*state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The mutations of one file: 8 truncations, 12 byte flips, and for DICOM 6 corrupted element lengths.
fn mutations(bytes: &[u8], seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let n = bytes.len();
    for (name, cut) in [
        ("0", 0),
        ("1", 1),
        ("132", 132.min(n)),
        ("10%", n / 10),
        ("50%", n / 2),
        ("90%", n * 9 / 10),
        ("-1", n - 1),
        ("-2", n - 2),
    ] {
        out.push((format!("truncated at {name}"), bytes[..cut].to_vec()));
    }
    let mut state = seed;
    for k in 0..12 {
        let mut flipped = bytes.to_vec();
        // Half the flips land in the first 2 KiB, where the headers are.
        let limit = if k % 2 == 0 { n.min(2048) } else { n };
        let at = (splitmix(&mut state) % limit as u64) as usize;
        flipped[at] ^= 0xFF;
        out.push((format!("byte {at} flipped"), flipped));
    }
    if n > 132 && &bytes[128..132] == b"DICM" {
        for k in 0..6 {
            let mut broken = bytes.to_vec();
            // Explicit-VR elements: tag (4) + VR (2) + length (2, or 2 reserved + 4). Overwrite a 4-byte window with
            // huge or zero lengths somewhere in the header.
            let at = 132 + (splitmix(&mut state) % (n.min(1500) as u64 - 132 - 4)) as usize;
            let value: u32 = if k % 2 == 0 { 0xFFFF_FFF0 } else { 0 };
            broken[at..at + 4].copy_from_slice(&value.to_le_bytes());
            out.push((format!("length window at {at} = {value:#x}"), broken));
        }
    }
    out
}

#[tokio::test]
async fn mutated_fixtures_get_an_answer_and_never_a_server_error() {
    let server = default_server();
    let mut total = 0;
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for (i, fixture) in manifest().into_iter().enumerate() {
        for (what, body) in mutations(&fixture.bytes(), 20180908 + i as u64) {
            let response = client()
                .post(server.url("/predict"))
                .header("content-type", fixture.media_type())
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{} {what}: no answer: {e}", fixture.file));
            let status = response.status().as_u16();
            assert!(status == 200 || (400..500).contains(&status), "{} {what}: status {status}", fixture.file);
            if status != 200 {
                assert_eq!(response.headers()["content-type"], "application/problem+json", "{} {what}", fixture.file);
            }
            *by_status.entry(status).or_default() += 1;
            total += 1;
        }
    }
    println!("{total} mutated uploads: {by_status:?}");
    assert!(total > 400, "the corpus is the size it claims");
}
