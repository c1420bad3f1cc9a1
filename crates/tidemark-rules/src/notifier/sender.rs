//! One Alertmanager's queue, its sending thread and its counters.
//!
//! The thread waits for alerts, takes up to `max_batch` of the oldest and
//! posts them in one request. A failed request (network error, timeout,
//! non-2xx status) is not retried: the alerting code re-sends every active
//! alert each resend delay and every resolved one for 15 minutes, so the
//! next send carries the same information, newer; a retry would only hold
//! the newer alerts back behind a failing Alertmanager and could deliver
//! an alert's older state after its newer one. This is Prometheus' policy
//! (`notifier/sendloop.go`), and its accounting: the alerts of a failed
//! request count as errors and as dropped for that Alertmanager.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::alert::encode_batch;
use super::endpoint::Endpoint;
use super::queue::AlertQueue;
use super::{Alert, AlertmanagerStats};

/// Longest part of an error answer's body kept for the log and stats.
const MAX_ERROR_BODY: u64 = 512;
/// Most bytes of a successful answer read (to reuse the connection).
const MAX_DRAIN_BODY: u64 = 64 * 1024;
/// `last_latency_nanos` before the first successful request.
const NO_LATENCY: u64 = u64::MAX;

/// What the thread and `send()` share under the lock.
#[derive(Debug)]
struct State {
    queue: AlertQueue,
    /// Set by `stop()`: send what is queued until then, then exit.
    drain_until: Option<Instant>,
}

/// One Alertmanager: its queue, counters and what its thread needs.
#[derive(Debug)]
pub(crate) struct Sender {
    endpoint: Endpoint,
    max_batch: usize,
    state: Mutex<State>,
    work: Condvar,
    sent: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    requests: AtomicU64,
    failed_requests: AtomicU64,
    last_latency_nanos: AtomicU64,
    latency_sum_nanos: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Sender {
    pub(crate) fn new(endpoint: Endpoint, capacity: usize, max_batch: usize) -> Sender {
        Sender {
            endpoint,
            max_batch: max_batch.max(1),
            state: Mutex::new(State { queue: AlertQueue::new(capacity), drain_until: None }),
            work: Condvar::new(),
            sent: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failed_requests: AtomicU64::new(0),
            last_latency_nanos: AtomicU64::new(NO_LATENCY),
            latency_sum_nanos: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.endpoint.name
    }

    /// Queues `alerts` and wakes the thread; never waits for the network.
    pub(crate) fn enqueue(&self, alerts: &[Arc<Alert>]) {
        let dropped = {
            let mut st = self.state.lock();
            let d = st.queue.push(alerts);
            self.work.notify_one();
            d
        };
        if dropped > 0 {
            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            tracing::warn!(alertmanager = %self.endpoint.name, count = dropped, "alert notification queue full, dropping the oldest alerts");
        }
    }

    /// Asks the thread to send what is queued until `deadline`, then exit.
    pub(crate) fn begin_drain(&self, deadline: Instant) {
        let mut st = self.state.lock();
        if st.drain_until.is_none() {
            st.drain_until = Some(deadline);
        }
        self.work.notify_one();
    }

    /// Called when the drain deadline passed with this sender's thread
    /// still inside a request that began before `stop()`: drops and counts
    /// what is still queued, so the thread exits once that request ends.
    pub(crate) fn abandon(&self) {
        let n = self.state.lock().queue.clear();
        self.count_undrained(n);
    }

    /// Counts `n` alerts left unsent by the shutdown drain as dropped.
    fn count_undrained(&self, n: usize) {
        if n > 0 {
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            tracing::warn!(alertmanager = %self.endpoint.name, count = n, "alert notifications still queued at the end of the shutdown drain, dropping them");
        }
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.state.lock().queue.len()
    }

    pub(crate) fn stats(&self) -> AlertmanagerStats {
        let nanos = self.last_latency_nanos.load(Ordering::Relaxed);
        AlertmanagerStats {
            alertmanager: self.endpoint.name.clone(),
            queue_length: self.queue_len(),
            sent_total: self.sent.load(Ordering::Relaxed),
            errors_total: self.errors.load(Ordering::Relaxed),
            dropped_total: self.dropped.load(Ordering::Relaxed),
            requests_total: self.requests.load(Ordering::Relaxed),
            failed_requests_total: self.failed_requests.load(Ordering::Relaxed),
            last_latency: (nanos != NO_LATENCY).then(|| Duration::from_nanos(nanos)),
            latency_sum: Duration::from_nanos(self.latency_sum_nanos.load(Ordering::Relaxed)),
            last_error: self.last_error.lock().clone(),
        }
    }

    /// The thread's body: until drained or past the drain deadline, post
    /// batches. `agent` carries the per-request timeout.
    pub(crate) fn run(&self, agent: &ureq::Agent, timeout: Duration) {
        loop {
            let (batch, deadline) = {
                let mut st = self.state.lock();
                loop {
                    let deadline = st.drain_until;
                    if !st.queue.is_empty() {
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            self.count_undrained(st.queue.clear());
                            return;
                        }
                        break (st.queue.pop_batch(self.max_batch), deadline);
                    }
                    if deadline.is_some() {
                        return;
                    }
                    self.work.wait(&mut st);
                }
            };
            // While draining, no request may outlive the drain deadline.
            let limit = match deadline {
                Some(d) => timeout.min(d.saturating_duration_since(Instant::now())),
                None => timeout,
            };
            if limit.is_zero() {
                // The deadline passed between taking the batch and sending it.
                let queued = self.state.lock().queue.clear();
                self.count_undrained(batch.len() + queued);
                return;
            }
            self.post(agent, &batch, limit);
        }
    }

    fn post(&self, agent: &ureq::Agent, batch: &[Arc<Alert>], limit: Duration) {
        let n = batch.len() as u64;
        let body = encode_batch(batch);
        let begin = Instant::now();
        self.requests.fetch_add(1, Ordering::Relaxed);
        match self.request(agent, body.as_bytes(), limit) {
            Ok(()) => {
                let nanos = u64::try_from(begin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
                self.last_latency_nanos.store(nanos, Ordering::Relaxed);
                self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
                self.sent.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed_requests.fetch_add(1, Ordering::Relaxed);
                self.errors.fetch_add(n, Ordering::Relaxed);
                self.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(alertmanager = %self.endpoint.name, count = n, error = %e, "error sending alerts");
                *self.last_error.lock() = Some(e);
            }
        }
    }

    fn request(&self, agent: &ureq::Agent, body: &[u8], limit: Duration) -> Result<(), String> {
        let mut req = agent
            .post(&self.endpoint.post_url)
            .config()
            .timeout_global(Some(limit))
            .build()
            .header("Content-Type", "application/json");
        if let Some(a) = &self.endpoint.authorization {
            req = req.header("Authorization", a.as_str());
        }
        let mut resp = req.send(body).map_err(|e| match e {
            ureq::Error::Timeout(_) => format!("timed out after {limit:?}"),
            e => e.to_string(),
        })?;
        let status = resp.status();
        let mut reader = resp.body_mut().as_reader();
        if status.is_success() {
            // Reading the answer lets the connection be reused; whatever
            // happens here, Alertmanager has accepted the alerts.
            let _ = (&mut reader).take(MAX_DRAIN_BODY).read_to_end(&mut Vec::new());
            return Ok(());
        }
        let mut text = Vec::new();
        let _ = reader.take(MAX_ERROR_BODY).read_to_end(&mut text);
        Err(format!("bad response status {status}: {}", String::from_utf8_lossy(&text).trim()))
    }
}
