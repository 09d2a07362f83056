//! Delivery of result objects to the PACS (`--dicomweb-push`): a bounded outbound queue and one task that sends
//! each object by STOW-RS (PS3.18 §10.5: `POST {base}studies`, `multipart/related; type="application/dicom"`),
//! retrying with exponential backoff while the PACS is down or busy.
//!
//! Guarantees: an object that entered the queue is sent until the PACS accepts it (2xx) or refuses it for good
//! (a 4xx other than 408 and 429: logged and counted as failed), however long the PACS is away; the queue holds
//! at most `--dicomweb-queue` objects, and [`Delivery::enqueue`] refuses a result whose objects do not all fit
//! (nothing is silently dropped: the refusal is counted as dropped, logged, and the intake answers the sender
//! that it is out of resources, so the sender can send the image again). The queue lives in memory: a restart
//! loses what it held (the log says how many were queued at shutdown).
//!
//! Architecture invariant: this layer knows nothing of the server's routes or of DICOM tags; it moves opaque
//! Part 10 files, and only their SOP Instance UIDs are logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cxr_core::results::stow::multipart_related;
use tokio::sync::mpsc;

use crate::config::DicomWebPush;
use crate::telemetry::metrics::{DeliveryOutcome, Metrics};

/// One object on its way to the PACS.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Its SOP Instance UID (for the log).
    pub sop_instance: String,
    /// The whole Part 10 file.
    pub bytes: bytes::Bytes,
}

/// The queue had no room for a result's objects; they were dropped (and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the outbound DICOMweb queue is full ({capacity} objects): the result was dropped")]
pub struct QueueFull {
    pub capacity: usize,
}

/// The handle of the outbound queue; cheap to clone.
#[derive(Clone)]
pub struct Delivery {
    sender: mpsc::Sender<Outbound>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Delivery {
    /// Starts the delivery task on the current Tokio runtime.
    pub fn start(push: &DicomWebPush, metrics: Arc<Metrics>) -> Delivery {
        let capacity = push.queue.max(1);
        let (sender, receiver) = mpsc::channel(capacity);
        let pusher = Pusher::new(push);
        tokio::spawn(pusher.run(receiver, Arc::clone(&metrics)));
        Delivery { sender, capacity, metrics }
    }

    /// Queues every object of one result, or none: a result whose objects do not all fit is dropped whole.
    pub fn enqueue(&self, objects: Vec<Outbound>) -> Result<(), QueueFull> {
        let n = objects.len();
        match self.sender.try_reserve_many(n) {
            Ok(permits) => {
                for (permit, object) in permits.zip(objects) {
                    permit.send(object);
                }
                self.metrics.delivery(DeliveryOutcome::Queued, n as u64);
                self.metrics.set_delivery_queue(self.queued());
                Ok(())
            }
            Err(_) => {
                let uids: Vec<&str> = objects.iter().map(|o| o.sop_instance.as_str()).collect();
                tracing::warn!(dropped = n, capacity = self.capacity, uids = ?uids, "DICOMweb queue full: result dropped");
                self.metrics.delivery(DeliveryOutcome::Dropped, n as u64);
                Err(QueueFull { capacity: self.capacity })
            }
        }
    }

    /// Objects waiting in the queue (not counting the one being sent).
    pub fn queued(&self) -> usize {
        self.capacity - self.sender.capacity()
    }

    /// Waits until the queue is empty or `grace` has passed; says how many objects are still queued.
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        while self.queued() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.queued()
    }
}

/// Why one send did not succeed.
enum SendError {
    /// Worth retrying: the PACS is unreachable, timed out, busy (408, 429) or failing (5xx).
    Transient(String),
    /// Refused for good (another 4xx): retrying would give the same answer.
    Permanent(String),
}

/// The sending side: one HTTP client and the target.
struct Pusher {
    client: reqwest::Client,
    url: String,
    push: DicomWebPush,
}

impl Pusher {
    fn new(push: &DicomWebPush) -> Pusher {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(push.timeout_secs.max(1)))
            .build()
            .expect("an HTTP client without TLS always builds");
        Pusher { client, url: format!("{}studies", push.base()), push: push.clone() }
    }

    /// Sends every queued object in order, each until it is accepted or refused for good.
    async fn run(self, mut receiver: mpsc::Receiver<Outbound>, metrics: Arc<Metrics>) {
        let first_retry = Duration::from_millis(self.push.retry_initial_ms.max(1));
        let max_retry = Duration::from_secs(self.push.retry_max_secs.max(1));
        while let Some(object) = receiver.recv().await {
            let mut wait = first_retry;
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let started = Instant::now();
                match self.send(&object).await {
                    Ok(()) => {
                        metrics.delivery(DeliveryOutcome::Pushed, 1);
                        metrics.observe_push(started.elapsed());
                        tracing::info!(sop_instance = %object.sop_instance, attempts, "result pushed to the PACS");
                        break;
                    }
                    Err(SendError::Permanent(why)) => {
                        metrics.delivery(DeliveryOutcome::Failed, 1);
                        tracing::error!(sop_instance = %object.sop_instance, attempts, %why, "the PACS refused a result");
                        break;
                    }
                    Err(SendError::Transient(why)) => {
                        metrics.delivery_retry();
                        tracing::warn!(
                            sop_instance = %object.sop_instance, attempts, %why, retry_in_ms = wait.as_millis() as u64,
                            "cannot push a result to the PACS yet"
                        );
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(max_retry);
                    }
                }
            }
            metrics.set_delivery_queue(receiver.len());
        }
    }

    /// One STOW-RS request carrying one object.
    async fn send(&self, object: &Outbound) -> Result<(), SendError> {
        let (content_type, body) = multipart_related(&[&object.bytes]);
        let mut request = self
            .client
            .post(&self.url)
            .header("Content-Type", content_type)
            .header("Accept", "application/dicom+json")
            .body(body);
        request = match (&self.push.token, &self.push.user) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(user)) => request.basic_auth(user, self.push.password.as_deref()),
            (None, None) => request,
        };
        let response = request.send().await.map_err(|e| SendError::Transient(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = response.text().await.unwrap_or_default().chars().take(300).collect();
        let why = format!("HTTP {status}: {text}");
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(SendError::Transient(why))
        } else {
            Err(SendError::Permanent(why))
        }
    }
}

/// An error and its sources, joined by `: ` (reqwest's own message alone rarely says why a connection failed).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(url: &str, queue: usize) -> DicomWebPush {
        DicomWebPush {
            url: Some(url.into()),
            token: None,
            user: None,
            password: None,
            queue,
            retry_initial_ms: 60_000,
            retry_max_secs: 60,
            timeout_secs: 1,
        }
    }

    fn object(uid: &str) -> Outbound {
        Outbound { sop_instance: uid.into(), bytes: bytes::Bytes::from_static(b"DICM") }
    }

    fn count(metrics: &Metrics, outcome: &str) -> u64 {
        let text = metrics.render(None).unwrap();
        let prefix = format!("cxr_dicomweb_results_total{{outcome=\"{outcome}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap()
    }

    /// A PACS that never answers (a closed port): the first object waits in its retry, the queue holds the next
    /// ones up to its bound, and a result that does not fit whole is dropped whole and counted.
    #[tokio::test]
    async fn a_result_that_does_not_fit_is_dropped_whole_and_counted() {
        let metrics = Arc::new(Metrics::new());
        let delivery = Delivery::start(&push("http://127.0.0.1:9/dicom-web/", 3), Arc::clone(&metrics));
        delivery.enqueue(vec![object("1.1")]).unwrap();
        // The pusher takes the first object off the queue and then waits a minute before its retry.
        for _ in 0..1000 {
            if delivery.queued() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(delivery.queued(), 0, "the pusher took the first object within 10 s");
        delivery.enqueue(vec![object("2.1"), object("2.2")]).unwrap();
        assert_eq!(delivery.queued(), 2);
        let refused = delivery.enqueue(vec![object("3.1"), object("3.2")]).unwrap_err();
        assert_eq!(refused, QueueFull { capacity: 3 });
        assert_eq!(delivery.queued(), 2, "nothing of the refused result was queued");
        assert_eq!((count(&metrics, "queued"), count(&metrics, "dropped"), count(&metrics, "pushed")), (3, 2, 0));
    }

    #[test]
    fn the_base_url_gets_one_slash_and_https_is_refused_clearly() {
        assert_eq!(push("http://pacs:8042/dicom-web", 1).base(), "http://pacs:8042/dicom-web/");
        assert_eq!(push("http://pacs:8042/dicom-web//", 1).base(), "http://pacs:8042/dicom-web/");
        assert!(push("https://pacs/dicom-web/", 1).check().unwrap_err().contains("no TLS"));
        assert!(push("pacs:8042", 1).check().unwrap_err().contains("not an http:// URL"));
        assert!(push("http://pacs/", 1).check().is_ok());
    }
}
