//! A shard: batches the samples of its series and sends one batch at a
//! time, retrying until the endpoint takes it or says it never will.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use super::client::Outcome;
use super::encode::{encode, QueuedSample};
use super::{Protocol, Shared};

/// The shard thread: runs until the reader drops the sender, then sends
/// what it holds (within the stop deadline) and returns.
pub(super) fn run(sh: &Shared, rx: &Receiver<QueuedSample>) {
    let max = sh.opts.max_samples_per_send;
    let mut batch: Vec<QueuedSample> = Vec::with_capacity(max.min(1 << 16));
    let mut oldest = Instant::now();
    loop {
        let msg = if batch.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(sh.opts.batch_send_deadline.saturating_sub(oldest.elapsed()))
        };
        match msg {
            Ok(s) => {
                if batch.is_empty() {
                    oldest = Instant::now();
                }
                batch.push(s);
                if batch.len() >= max {
                    send_batch(sh, &mut batch);
                }
            }
            Err(RecvTimeoutError::Timeout) => send_batch(sh, &mut batch),
            Err(RecvTimeoutError::Disconnected) => {
                if !batch.is_empty() {
                    send_batch(sh, &mut batch);
                }
                return;
            }
        }
    }
}

/// Sends `batch` (retrying) and acknowledges it; empties it in any case.
fn send_batch(sh: &Shared, batch: &mut Vec<QueuedSample>) {
    let n = batch.len() as u64;
    let n_hist = batch.iter().filter(|s| s.is_histogram()).count() as u64;
    // Exemplars ride along: a 2xx acknowledges them whatever the receiver
    // says it stored (Prometheus' sender does not retry exemplars either).
    let n_ex = batch.iter().filter(|s| s.is_exemplar()).count() as u64;
    let n_float = n - n_hist - n_ex;
    let body = match encode(sh.opts.protocol, batch) {
        Ok(b) => b,
        Err(e) => {
            // Only a body over snappy's 4 GiB limit fails; unreachable with
            // sane batch sizes, but never silent.
            finish_counted(sh, batch, Some(("encode".into(), format!("encoding the request failed: {e}"), n)));
            return;
        }
    };
    let mut backoff = sh.opts.min_backoff;
    loop {
        if sh.stop_deadline().is_some_and(|d| Instant::now() >= d) {
            tracing::warn!(name = %sh.opts.name, samples = n, "forwarder stopping: batch not acknowledged in time; it is sent again after the next start");
            batch.clear();
            return;
        }
        {
            let mut c = sh.counters.lock();
            c.requests += 1;
            c.bytes_sent += body.len() as u64;
        }
        match sh.client.send(&body) {
            Outcome::Sent { samples_written, histograms_written } => {
                // Remote write 2.0 receivers report what they wrote, float
                // samples and histograms apart (a header left out, when the
                // other is there, is 0 written). None written means the
                // endpoint did not understand the request (a 1.0-only
                // receiver ignoring Content-Type); fewer means a partial
                // write. Both are final: the spec forbids retrying a 2xx.
                // 1.0 receivers send no header: all were written.
                let (floats, hists) = match (sh.opts.protocol, samples_written, histograms_written) {
                    (Protocol::V2, None, None) | (Protocol::V1, _, _) => (n_float, n_hist),
                    (Protocol::V2, s, h) => (s.unwrap_or(0).min(n_float), h.unwrap_or(0).min(n_hist)),
                };
                let written = floats + hists;
                {
                    let mut c = sh.counters.lock();
                    c.samples_sent += written;
                    c.histograms_sent += hists;
                    c.exemplars_sent += n_ex;
                }
                let written = written + n_ex;
                let dropped = (written < n).then(|| {
                    let reason = if written == 0 { "v2_nothing_written" } else { "v2_partially_written" };
                    let detail = format!(
                        "the endpoint answered 2xx but wrote {floats} of {n_float} float samples and {hists} of {n_hist} histograms"
                    );
                    (reason.to_string(), detail)
                });
                finish_counted(sh, batch, dropped.map(|(r, d)| (r, d, n - written)));
                return;
            }
            Outcome::Retry { reason, detail, retry_after } => {
                let wait = retry_after.unwrap_or(backoff);
                tracing::warn!(name = %sh.opts.name, samples = n, %reason, %detail, ?wait, "remote write failed; retrying");
                {
                    let mut c = sh.counters.lock();
                    *c.samples_failed.entry(reason).or_default() += n;
                    c.retries += 1;
                    c.last_error = Some(detail);
                }
                sh.backoff_sleep(wait);
                backoff = (backoff * 2).min(sh.opts.max_backoff);
            }
            Outcome::Drop { reason, detail } => {
                finish_counted(sh, batch, Some((reason, detail, n)));
                return;
            }
        }
    }
}

/// Acknowledges the batch's samples per read chunk; with `dropped`
/// (reason, detail, count), counts and logs that many as dropped first.
fn finish_counted(sh: &Shared, batch: &mut Vec<QueuedSample>, dropped: Option<(String, String, u64)>) {
    if let Some((reason, detail, n)) = dropped {
        tracing::error!(name = %sh.opts.name, url = %super::redact_url(&sh.opts.url), samples = n, %reason, %detail, "remote write rejected samples that retrying cannot fix; dropped");
        let mut c = sh.counters.lock();
        *c.samples_dropped.entry(reason).or_default() += n;
        c.last_error = Some(detail);
    }
    let mut t = sh.tracker.lock();
    let mut i = 0;
    while i < batch.len() {
        let id = batch[i].chunk;
        let run = batch[i..].iter().take_while(|s| s.chunk == id).count();
        t.ack(id, run as u64);
        i += run;
    }
    drop(t);
    batch.clear();
}
