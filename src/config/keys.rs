//! API keys as the configuration holds them: [`ApiKey`] (one `--api-key`, redacted in `Debug`) and [`ApiKeys`]
//! (every accepted key, as SHA-256 digests, with a constant-time check). The HTTP layer's `api::auth` middleware
//! asks [`ApiKeys::accepts`]; which routes are protected is its business.
//!
//! A presented key is hashed and compared with every digest in constant time (no early exit on the first differing
//! byte or the first matching key), so response times do not reveal how much of a key was right. Keys never appear
//! in logs.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Shortest accepted key: 16 characters (e.g. `openssl rand -hex 16` gives 32).
pub const MIN_KEY_LEN: usize = 16;

/// One API key from the command line or environment; printed as `ApiKey(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = InvalidKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim();
        if key.chars().count() < MIN_KEY_LEN || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidKey);
        }
        Ok(ApiKey(key.to_string()))
    }
}

/// The accepted keys, as digests.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Arc<Vec<[u8; 32]>>,
    /// Refuse everything (the key file could not be read): failing closed, never open.
    deny_all: bool,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} key(s){})", self.digests.len(), if self.deny_all { ", deny all" } else { "" })
    }
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("--api-key-file {path}: {problem}")]
pub struct KeyFileError {
    pub path: String,
    #[source]
    pub problem: KeyFileProblem,
}

/// What is wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileProblem {
    #[error(transparent)]
    Unreadable(#[from] std::io::Error),
    #[error("line {line}: {key}")]
    BadKey {
        line: usize,
        #[source]
        key: InvalidKey,
    },
    #[error("holds no key")]
    Empty,
}

/// A key too short or with whitespace inside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an API key needs at least {MIN_KEY_LEN} characters and no whitespace")]
pub struct InvalidKey;

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// The keys given directly plus those of `file`.
    pub fn load(keys: &[ApiKey], file: Option<&Path>) -> Result<ApiKeys, KeyFileError> {
        let mut digests: Vec<[u8; 32]> = keys.iter().map(|k| digest(&k.0)).collect();
        if let Some(path) = file {
            let error = |problem: KeyFileProblem| KeyFileError { path: path.display().to_string(), problem };
            let text = std::fs::read_to_string(path).map_err(|e| error(e.into()))?;
            let mut found = 0;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let key: ApiKey = line.parse().map_err(|key| error(KeyFileProblem::BadKey { line: n + 1, key }))?;
                digests.push(digest(&key.0));
                found += 1;
            }
            if found == 0 {
                return Err(error(KeyFileProblem::Empty));
            }
        }
        Ok(ApiKeys { digests: Arc::new(digests), deny_all: false })
    }

    /// Keys that accept nothing (used when they could not be loaded).
    pub fn deny_all() -> ApiKeys {
        ApiKeys { digests: Arc::default(), deny_all: true }
    }

    /// Whether requests must present a key.
    pub fn required(&self) -> bool {
        self.deny_all || !self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys; constant time in the key's content.
    pub fn accepts(&self, presented: &str) -> bool {
        let candidate = digest(presented);
        let mut matched = 0u8;
        for known in self.digests.iter() {
            let difference = known.iter().zip(&candidate).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            matched |= u8::from(difference == 0);
        }
        matched == 1 && !self.deny_all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly_and_stay_out_of_debug_output() {
        let key: ApiKey = "0123456789abcdef-key".parse().unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        let keys = ApiKeys::load(&[key], None).unwrap();
        assert!(keys.required());
        assert!(keys.accepts("0123456789abcdef-key"));
        for wrong in ["0123456789abcdef-kez", "0123456789abcdef-ke", "", "0123456789abcdef-key "] {
            assert!(!keys.accepts(wrong), "{wrong:?}");
        }
        assert!(!format!("{keys:?}").contains("0123"));
        assert!("short".parse::<ApiKey>().is_err());
        assert!("has a space inside it!".parse::<ApiKey>().is_err());
    }

    #[test]
    fn a_key_file_adds_keys_and_an_unreadable_one_is_an_error() {
        let path = std::env::temp_dir().join(format!("cxr-keys-{}", std::process::id()));
        std::fs::write(&path, "# team keys\nkey-one-0123456789\n\nkey-two-0123456789\n").unwrap();
        let keys = ApiKeys::load(&[], Some(&path)).unwrap();
        assert!(keys.accepts("key-one-0123456789") && keys.accepts("key-two-0123456789"));
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(ApiKeys::load(&[], Some(&path)).unwrap_err().to_string().contains("holds no key"));
        std::fs::write(&path, "tiny\n").unwrap();
        assert!(ApiKeys::load(&[], Some(&path)).unwrap_err().to_string().contains("line 1"));
        let _ = std::fs::remove_file(&path);
        assert!(ApiKeys::load(&[], Some(&path)).is_err());
        let deny = ApiKeys::deny_all();
        assert!(deny.required() && !deny.accepts("anything-at-all-123"));
        assert!(!ApiKeys::default().required());
    }
}
