//! Sending alerts to Alertmanager (API v2), as Prometheus' notifier does.
//!
//! [`Notifier::send`] adds the external labels to each alert and queues it
//! for every configured Alertmanager; it never waits for the network. Each
//! Alertmanager has its own bounded queue and its own thread, so one that
//! is down or slow only fills (and overflows) its own queue. A thread posts
//! the oldest queued alerts, at most `max_batch` per request, to
//! `<url>/api/v2/alerts`. What is sent when (resend delay, `endsAt`) is the
//! alerting code's business, not this module's.

mod alert;
mod endpoint;
mod queue;
mod sender;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

pub use alert::Alert;
use endpoint::Endpoint;
use sender::Sender;

/// Default [`NotifierOptions::queue_capacity`]: Prometheus'
/// `--alertmanager.notification-queue-capacity`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Default [`NotifierOptions::max_batch`]: Prometheus'
/// `--alertmanager.notification-batch-size` (2.42 had a fixed 64).
pub const DEFAULT_MAX_BATCH: usize = 256;
/// Default [`NotifierOptions::timeout`]: Prometheus' per-Alertmanager
/// `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`NotifierOptions::drain_timeout`].
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How to authenticate to every Alertmanager whose URL carries no
/// credentials of its own (`http://user:pass@host` is basic auth and wins).
#[derive(Clone, PartialEq, Eq)]
pub enum AlertmanagerAuth {
    /// HTTP basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for AlertmanagerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AlertmanagerAuth::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<redacted>").finish()
            }
            AlertmanagerAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// TLS settings for `https://` Alertmanagers (rustls through ureq). The
/// defaults verify the server against the web PKI roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifierTls {
    /// PEM CA certificates to trust instead of the web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (needs `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Default: false.
    pub insecure_skip_verify: bool,
}

/// How the [`Notifier`] reaches its Alertmanagers.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// Alertmanager URLs, `http[s]://[user:pass@]host:port[/prefix]`;
    /// alerts are posted to `<prefix>/api/v2/alerts`. Every alert goes to
    /// every one; duplicates are contacted once. Default: none (every alert
    /// is counted as dropped, as Prometheus does without Alertmanagers).
    pub alertmanagers: Vec<String>,
    /// Alerts each Alertmanager's queue holds; when full, the oldest are
    /// dropped and counted. Default: [`DEFAULT_QUEUE_CAPACITY`] (10,000).
    pub queue_capacity: usize,
    /// Most alerts per request. Default: [`DEFAULT_MAX_BATCH`] (256).
    pub max_batch: usize,
    /// Limit on one request, from connecting to the end of the answer.
    /// Default: [`DEFAULT_TIMEOUT`] (10 s).
    pub timeout: Duration,
    /// Labels added to every alert that lacks them (a label of the alert
    /// with the same name, if not empty, wins). Default: none.
    pub external_labels: BTreeMap<String, String>,
    /// Credentials for Alertmanagers whose URL has none. Default: none.
    pub auth: Option<AlertmanagerAuth>,
    /// TLS for `https://` URLs. Default: web PKI roots, verification on.
    pub tls: NotifierTls,
    /// How long [`Notifier::stop`] keeps sending what is queued before it
    /// drops the rest (see there for a request already in flight). Default: [`DEFAULT_DRAIN_TIMEOUT`] (10 s).
    pub drain_timeout: Duration,
}

impl Default for NotifierOptions {
    fn default() -> NotifierOptions {
        NotifierOptions {
            alertmanagers: Vec::new(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            timeout: DEFAULT_TIMEOUT,
            external_labels: BTreeMap::new(),
            auth: None,
            tls: NotifierTls::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl NotifierOptions {
    /// The defaults, sending to `alertmanagers`.
    pub fn new<S: Into<String>>(alertmanagers: impl IntoIterator<Item = S>) -> NotifierOptions {
        NotifierOptions { alertmanagers: alertmanagers.into_iter().map(Into::into).collect(), ..Default::default() }
    }
}

/// Why a [`Notifier`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifierError {
    /// An Alertmanager URL is malformed (shown with credentials redacted).
    #[error("invalid Alertmanager URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid notifier option {name}: {reason}")]
    InvalidOption {
        /// The option's field name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS file could not be read or parsed.
    #[error("Alertmanager TLS {what} {path}: {reason}")]
    Tls {
        /// Which setting (`ca_file`, `cert_file`, `key_file`).
        what: String,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// A sender thread could not be started.
    #[error("cannot start the notification thread for {alertmanager}: {source}")]
    Spawn {
        /// The Alertmanager, redacted.
        alertmanager: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A snapshot of the notifier's counters, with what Prometheus' `/metrics`
/// names need:
///
/// | Prometheus metric | field |
/// |---|---|
/// | `prometheus_notifications_queue_length` | `queue_length` |
/// | `prometheus_notifications_queue_capacity` | `queue_capacity` |
/// | `prometheus_notifications_dropped_total` | `dropped_total` |
/// | `prometheus_notifications_alertmanagers_discovered` | `alertmanagers.len()` |
/// | `prometheus_notifications_sent_total{alertmanager}` | `alertmanagers[i].sent_total` |
/// | `prometheus_notifications_errors_total{alertmanager}` | `alertmanagers[i].errors_total` |
/// | `prometheus_notifications_latency_seconds{alertmanager}` (`_sum`, `_count`) | `latency_sum`, `requests_total - failed_requests_total` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierStats {
    /// Alerts waiting in the longest per-Alertmanager queue (never more
    /// than `queue_capacity`, like Prometheus' single queue).
    pub queue_length: usize,
    /// Capacity of each queue.
    pub queue_capacity: usize,
    /// Every alert notification lost: the per-Alertmanager drops plus
    /// alerts sent with no Alertmanager configured or after `stop()`.
    pub dropped_total: u64,
    /// One entry per Alertmanager, in configuration order.
    pub alertmanagers: Vec<AlertmanagerStats>,
}

/// Counters of one Alertmanager. Counts are alerts unless named requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerStats {
    /// The URL alerts are posted to, without credentials and with secret
    /// query values redacted: the `alertmanager` label value
    /// (`http://127.0.0.1:9093/prefix/api/v2/alerts`).
    pub alertmanager: String,
    /// Alerts waiting in its queue.
    pub queue_length: usize,
    /// Alerts it accepted (2xx).
    pub sent_total: u64,
    /// Alerts in requests that failed (network error, timeout, non-2xx),
    /// as Prometheus counts `errors_total` since 2.50.
    pub errors_total: u64,
    /// Alerts it never got: queue overflow, failed requests (not retried),
    /// still queued when the shutdown drain ended.
    pub dropped_total: u64,
    /// Requests made.
    pub requests_total: u64,
    /// Requests that failed.
    pub failed_requests_total: u64,
    /// Duration of the last successful request.
    pub last_latency: Option<Duration>,
    /// Sum of the durations of all successful requests.
    pub latency_sum: Duration,
    /// The last failure (status and start of the answer, or the transport
    /// error), never containing credentials.
    pub last_error: Option<String>,
}

/// Notifies Alertmanagers; `Send + Sync`, share it behind an `Arc`.
///
/// Dropping it calls [`Notifier::stop`].
///
/// ```no_run
/// use std::collections::BTreeMap;
/// use tidemark_rules::notifier::Alert;
/// use tidemark_rules::{Notifier, NotifierOptions};
///
/// let mut opts = NotifierOptions::new(["http://127.0.0.1:9093"]);
/// opts.external_labels.insert("cluster".into(), "eu1".into());
/// let notifier = Notifier::start(opts)?;
/// notifier.send(vec![Alert {
///     labels: BTreeMap::from([("alertname".into(), "HighErrorRate".into())]),
///     annotations: BTreeMap::new(),
///     starts_at_ms: 1_700_000_000_000,
///     ends_at_ms: Some(1_700_000_240_000),
///     generator_url: String::new(),
/// }]);
/// let stats = notifier.stats();
/// assert_eq!(stats.alertmanagers.len(), 1);
/// notifier.stop(); // sends what is queued, for at most `drain_timeout`
/// # Ok::<(), tidemark_rules::NotifierError>(())
/// ```
#[derive(Debug)]
pub struct Notifier {
    senders: Vec<Arc<Sender>>,
    external_labels: BTreeMap<String, String>,
    queue_capacity: usize,
    drain_timeout: Duration,
    stopped: AtomicBool,
    /// Alerts dropped before reaching any queue (no Alertmanager, or sent
    /// after `stop()`).
    dropped_unqueued: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Number of sender threads still running, and its change signal.
    running: Arc<(Mutex<usize>, Condvar)>,
}

impl Notifier {
    /// Validates the options and starts one sending thread per
    /// Alertmanager. A malformed URL is an error naming it (redacted).
    pub fn start(opts: NotifierOptions) -> Result<Notifier, NotifierError> {
        let positive = |name: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(NotifierError::InvalidOption { name, reason: "must be greater than zero".into() })
            }
        };
        positive("queue_capacity", opts.queue_capacity > 0)?;
        positive("max_batch", opts.max_batch > 0)?;
        positive("timeout", !opts.timeout.is_zero())?;
        let mut seen = HashSet::new();
        let mut endpoints = Vec::new();
        for url in &opts.alertmanagers {
            let e = Endpoint::parse(url, opts.auth.as_ref())?;
            if seen.insert(e.post_url.clone()) {
                endpoints.push(e);
            }
        }
        let agent = endpoint::agent(opts.timeout, &opts.tls)?;
        let running = Arc::new((Mutex::new(0usize), Condvar::new()));
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        let notifier_err = |name: String, source| NotifierError::Spawn { alertmanager: name, source };
        for e in endpoints {
            let sender = Arc::new(Sender::new(e, opts.queue_capacity, opts.max_batch));
            let (s, a, r, timeout) = (sender.clone(), agent.clone(), running.clone(), opts.timeout);
            *running.0.lock() += 1;
            let spawned = std::thread::Builder::new().name("tidemark-notifier".into()).spawn(move || {
                s.run(&a, timeout);
                let (count, changed) = &*r;
                *count.lock() -= 1;
                changed.notify_all();
            });
            match spawned {
                Ok(h) => threads.push(h),
                Err(source) => {
                    *running.0.lock() -= 1;
                    let name = sender.name().to_string();
                    // Stop the threads already started before failing.
                    let partial = Notifier::assemble(senders, &opts, threads, running);
                    partial.stop();
                    return Err(notifier_err(name, source));
                }
            }
            senders.push(sender);
        }
        Ok(Notifier::assemble(senders, &opts, threads, running))
    }

    fn assemble(
        senders: Vec<Arc<Sender>>,
        opts: &NotifierOptions,
        threads: Vec<JoinHandle<()>>,
        running: Arc<(Mutex<usize>, Condvar)>,
    ) -> Notifier {
        Notifier {
            senders,
            external_labels: opts.external_labels.clone(),
            queue_capacity: opts.queue_capacity,
            drain_timeout: opts.drain_timeout,
            stopped: AtomicBool::new(false),
            dropped_unqueued: AtomicU64::new(0),
            threads: Mutex::new(threads),
            running,
        }
    }

    /// Queues `alerts` for every Alertmanager, with the external labels
    /// added. Returns at once: the network is only touched by the sending
    /// threads. After [`Notifier::stop`] the alerts are counted as dropped.
    pub fn send(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        if self.stopped.load(Ordering::Acquire) || self.senders.is_empty() {
            self.dropped_unqueued.fetch_add(alerts.len() as u64, Ordering::Relaxed);
            return;
        }
        let alerts: Vec<Arc<Alert>> =
            alerts.into_iter().map(|a| Arc::new(alert::with_external_labels(a, &self.external_labels))).collect();
        for s in &self.senders {
            s.enqueue(&alerts);
        }
    }

    /// The counters now.
    pub fn stats(&self) -> NotifierStats {
        let alertmanagers: Vec<AlertmanagerStats> = self.senders.iter().map(|s| s.stats()).collect();
        NotifierStats {
            queue_length: alertmanagers.iter().map(|a| a.queue_length).max().unwrap_or(0),
            queue_capacity: self.queue_capacity,
            dropped_total: self.dropped_unqueued.load(Ordering::Relaxed)
                + alertmanagers.iter().map(|a| a.dropped_total).sum::<u64>(),
            alertmanagers,
        }
    }

    /// Stops accepting alerts, sends what is queued for at most
    /// `drain_timeout`, counts what is left as dropped, and returns: within
    /// `drain_timeout` plus a 250 ms grace. Requests started during the
    /// drain end by its deadline; a request already in flight when `stop()`
    /// is called keeps its own `timeout` on a detached thread, and its
    /// outcome is counted when it ends. Calling it again returns at once.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let deadline = Instant::now() + self.drain_timeout;
        for s in &self.senders {
            s.begin_drain(deadline);
        }
        // A request's own timeout may fire a little after the deadline;
        // this grace lets that thread record its outcome before we return.
        let give_up = deadline + Duration::from_millis(250);
        let (count, changed) = &*self.running;
        let mut n = count.lock();
        while *n > 0 {
            if changed.wait_until(&mut n, give_up).timed_out() {
                break;
            }
        }
        let left = *n;
        drop(n);
        let mut threads = self.threads.lock();
        for h in std::mem::take(&mut *threads) {
            if h.is_finished() {
                let _ = h.join();
            }
            // An unfinished thread is detached: it is inside a request
            // that began before stop(), and exits when that ends.
        }
        if left > 0 {
            for s in &self.senders {
                s.abandon();
            }
            tracing::warn!(threads = left, "alert notification requests still in flight after the shutdown drain");
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_out_of_range_are_named() {
        for (f, name) in [
            (|o: &mut NotifierOptions| o.queue_capacity = 0) as fn(&mut NotifierOptions),
            |o| o.max_batch = 0,
            |o| o.timeout = Duration::ZERO,
        ]
        .into_iter()
        .zip(["queue_capacity", "max_batch", "timeout"])
        {
            let mut o = NotifierOptions::new(["http://127.0.0.1:1"]);
            f(&mut o);
            let err = Notifier::start(o).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("greater than zero"), "{err}");
        }
    }

    #[test]
    fn a_bad_url_is_an_error_naming_it() {
        let err = Notifier::start(NotifierOptions::new(["http://127.0.0.1:1", "http://u:s3cret@:9093/"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://<redacted>@:9093/") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn without_alertmanagers_or_after_stop_alerts_are_counted_dropped() {
        let a = Alert {
            labels: BTreeMap::from([("alertname".into(), "A".into())]),
            annotations: BTreeMap::new(),
            starts_at_ms: 0,
            ends_at_ms: None,
            generator_url: String::new(),
        };
        let n = Notifier::start(NotifierOptions::default()).unwrap();
        n.send(vec![a.clone(), a.clone()]);
        assert_eq!(n.stats().dropped_total, 2);
        assert_eq!(n.stats().alertmanagers, vec![]);
        // Duplicates are one Alertmanager; a port nothing listens on.
        let n = Notifier::start(NotifierOptions::new(["http://127.0.0.1:1", "http://127.0.0.1:1/"])).unwrap();
        assert_eq!(n.stats().alertmanagers.len(), 1);
        n.stop();
        n.send(vec![a]);
        assert_eq!(n.stats().dropped_total, 1);
        assert_eq!(n.stats().alertmanagers[0].requests_total, 0);
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let mut o = NotifierOptions::new(["http://127.0.0.1:1"]);
        o.auth = Some(AlertmanagerAuth::Basic { username: "u".into(), password: "pw-secret".into() });
        assert!(!format!("{o:?}").contains("pw-secret"));
        o.auth = Some(AlertmanagerAuth::Bearer("tok-secret".into()));
        assert!(!format!("{o:?}").contains("tok-secret"));
    }
}
