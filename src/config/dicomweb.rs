//! [`DicomWebPush`]: where the results of DICOMweb intake go (`--dicomweb-push` and its options), flattened into
//! the one `Config`.

/// The STOW-RS target of the result objects and how the outbound queue treats it.
#[derive(Debug, Clone, clap::Args)]
pub struct DicomWebPush {
    /// STOW-RS base URL the result objects (SR, Secondary Capture) are pushed to, e.g. Orthanc's
    /// `http://pacs:8042/dicom-web/` (`studies` is appended). Without it, `POST /dicomweb/studies` answers 503
    /// `dicomweb-not-configured`: results with nowhere to go are never made. Plain HTTP (no TLS in this build).
    #[arg(long = "dicomweb-push", env = "CXR_DICOMWEB_PUSH", value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token sent with every push (`Authorization: Bearer …`).
    #[arg(
        long = "dicomweb-push-token",
        env = "CXR_DICOMWEB_PUSH_TOKEN",
        hide_env_values = true,
        conflicts_with = "user"
    )]
    pub token: Option<String>,
    /// User name for HTTP basic authentication of the pushes.
    #[arg(long = "dicomweb-push-user", env = "CXR_DICOMWEB_PUSH_USER", id = "user")]
    pub user: Option<String>,
    /// Password for HTTP basic authentication of the pushes.
    #[arg(
        long = "dicomweb-push-password",
        env = "CXR_DICOMWEB_PUSH_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    pub password: Option<String>,
    /// Result objects the outbound queue holds while the PACS is slow or down; a result that does not fit is
    /// dropped (counted in `cxr_dicomweb_results_total{outcome="dropped"}`) and its image refused with failure
    /// reason A700, so the sender can send it again.
    #[arg(long = "dicomweb-queue", env = "CXR_DICOMWEB_QUEUE", default_value_t = 1024)]
    pub queue: usize,
    /// First wait before a failed push is retried; each retry waits twice as long, up to `--dicomweb-retry-max-secs`.
    #[arg(long = "dicomweb-retry-initial-ms", env = "CXR_DICOMWEB_RETRY_INITIAL_MS", default_value_t = 500)]
    pub retry_initial_ms: u64,
    /// Longest wait between two retries of a push.
    #[arg(long = "dicomweb-retry-max-secs", env = "CXR_DICOMWEB_RETRY_MAX_SECS", default_value_t = 30)]
    pub retry_max_secs: u64,
    /// Time limit of one push request.
    #[arg(long = "dicomweb-push-timeout-secs", env = "CXR_DICOMWEB_PUSH_TIMEOUT_SECS", default_value_t = 30)]
    pub timeout_secs: u64,
}

impl DicomWebPush {
    /// The base URL with exactly one trailing `/` (empty without `--dicomweb-push`).
    pub fn base(&self) -> String {
        self.url.as_deref().map(|url| format!("{}/", url.trim_end_matches('/'))).unwrap_or_default()
    }

    /// Why the target cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let Some(url) = &self.url else { return Ok(()) };
        if url.starts_with("https://") {
            return Err(format!(
                "--dicomweb-push {url}: this build has no TLS; push to an http:// URL (e.g. through a TLS proxy)"
            ));
        }
        if !url.starts_with("http://") || url.len() <= "http://".len() {
            return Err(format!("--dicomweb-push {url}: not an http:// URL"));
        }
        Ok(())
    }
}
