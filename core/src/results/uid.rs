//! Deterministic UIDs for result objects: the same source instance, model, model version and kind of result always
//! give the same UID, so sending an image twice gives the same objects and the PACS keeps one copy.
//!
//! A UID is a name-based UUID (version 5, SHA-1) written as `2.25.<the UUID as a decimal integer>` (PS3.5 §B.2),
//! at most 44 characters.

use uuid::Uuid;

/// The namespace of every UUID made here (itself the version-5 UUID of this project's name in the URL namespace).
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://example.invalid/cxr-gray/dicom-results")
}

/// The UID of result `kind` (e.g. `sr`, `sc`, `sr-series`) of `model` `version` for the source SOP instance.
pub fn result_uid(source_sop_instance: &str, model: &str, version: &str, kind: &str) -> String {
    // Fields are joined by a byte no UID, model name or version contains, so no two tuples share a name.
    let name = [source_sop_instance, model, version, kind].join("\u{1f}");
    format!("2.25.{}", Uuid::new_v5(&namespace(), name.as_bytes()).as_u128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_stable_distinct_and_valid() {
        let a = result_uid("1.2.3", "cxr-inception-v3-gray", "0.1.0", "sr");
        assert_eq!(a, result_uid("1.2.3", "cxr-inception-v3-gray", "0.1.0", "sr"));
        for other in [
            result_uid("1.2.4", "cxr-inception-v3-gray", "0.1.0", "sr"),
            result_uid("1.2.3", "cxr-inception-v3-color", "0.1.0", "sr"),
            result_uid("1.2.3", "cxr-inception-v3-gray", "0.1.1", "sr"),
            result_uid("1.2.3", "cxr-inception-v3-gray", "0.1.0", "sc"),
        ] {
            assert_ne!(a, other);
        }
        assert!(a.starts_with("2.25.") && a.len() <= 64, "{a}");
        assert!(a[5..].bytes().all(|b| b.is_ascii_digit()) && !a[5..].starts_with('0'), "{a}");
    }
}
