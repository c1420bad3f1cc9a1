//! The receiver's counters, for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use tidemark_storage::AppendError;

use super::ha::HaDropReason;
use super::negotiate::Protocol;

/// Why a sample (float or native histogram) was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Older than its series' newest sample (outside any out-of-order window).
    OutOfOrder,
    /// Older than the oldest time the store accepts.
    TooOld,
    /// Another value already exists at this timestamp.
    Duplicate,
    /// The series' labels are invalid (or its 2.0 references do not resolve).
    InvalidSeries,
    /// Further in the future than [`super::ReceiverOptions::max_future`] allows.
    FutureTimestamp,
    /// A native histogram that is not valid: inconsistent spans and
    /// buckets, negative or mismatched counts, an unknown schema (storage's
    /// validation, Prometheus' messages), or a message mixing the integer
    /// and float kinds. Never a float sample's reason.
    InvalidHistogram,
}

impl RejectReason {
    /// How many reasons there are.
    pub const COUNT: usize = 6;

    /// Every reason, in the order of [`ReceiverStats::samples_rejected`]
    /// and [`ReceiverStats::histograms_rejected`].
    pub const ALL: [RejectReason; RejectReason::COUNT] = [
        RejectReason::OutOfOrder,
        RejectReason::TooOld,
        RejectReason::Duplicate,
        RejectReason::InvalidSeries,
        RejectReason::FutureTimestamp,
        RejectReason::InvalidHistogram,
    ];

    /// The metric label value: `out_of_order`, `too_old`, `duplicate`,
    /// `invalid_series`, `future_timestamp`, `invalid_histogram`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::TooOld => "too_old",
            RejectReason::Duplicate => "duplicate",
            RejectReason::InvalidSeries => "invalid_series",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::InvalidHistogram => "invalid_histogram",
        }
    }

    /// The reason of a storage append error.
    pub fn of(e: &AppendError) -> RejectReason {
        match e {
            AppendError::OutOfOrder { .. } => RejectReason::OutOfOrder,
            AppendError::TooOld { .. } => RejectReason::TooOld,
            AppendError::DuplicateTimestamp { .. } => RejectReason::Duplicate,
            AppendError::InvalidHistogram(_) => RejectReason::InvalidHistogram,
            _ => RejectReason::InvalidSeries,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The statuses [`ReceiverStats::responses`] counts, in order.
pub const STATUSES: [u16; 7] = [202, 204, 400, 413, 415, 500, 503];

/// A snapshot of a receiver's counters since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverStats {
    /// Requests that negotiated remote write 1.0.
    pub requests_v1: u64,
    /// Requests that negotiated remote write 2.0.
    pub requests_v2: u64,
    /// Float samples stored.
    pub samples_appended: u64,
    /// Float samples not stored, by reason, in [`RejectReason::ALL`] order
    /// (never [`RejectReason::InvalidHistogram`]).
    pub samples_rejected: [u64; RejectReason::COUNT],
    /// Native histogram samples stored.
    pub histograms_appended: u64,
    /// Native histogram samples not stored, by reason, in
    /// [`RejectReason::ALL`] order.
    pub histograms_rejected: [u64; RejectReason::COUNT],
    /// Exemplars stored.
    pub exemplars_appended: u64,
    /// Exemplars received and not stored (out of order, invalid, or of a
    /// series none of whose samples was stored).
    pub exemplars_dropped: u64,
    /// Metadata entries received (1.0 entries, 2.0 series carrying metadata).
    pub metadata_entries: u64,
    /// Responses by status, in [`STATUSES`] order.
    pub responses: [u64; 7],
    /// Samples (float and native histogram) of requests the HA tracker
    /// dropped, by reason, in [`HaDropReason::ALL`] order.
    pub ha_dropped_samples: [u64; HaDropReason::COUNT],
}

impl ReceiverStats {
    /// Float samples rejected for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.samples_rejected[reason.index()]
    }

    /// Native histogram samples rejected for `reason`.
    pub fn histograms_rejected_for(&self, reason: RejectReason) -> u64 {
        self.histograms_rejected[reason.index()]
    }

    /// Requests answered with `status` (0 for statuses not counted).
    pub fn responses_with(&self, status: u16) -> u64 {
        STATUSES.iter().position(|&s| s == status).map_or(0, |i| self.responses[i])
    }

    /// Samples (float and native histogram) the HA tracker dropped for `reason`.
    pub fn ha_dropped(&self, reason: HaDropReason) -> u64 {
        self.ha_dropped_samples[reason.index()]
    }

    /// Requests of `protocol`.
    pub fn requests(&self, protocol: Protocol) -> u64 {
        match protocol {
            Protocol::V1 => self.requests_v1,
            Protocol::V2 => self.requests_v2,
        }
    }
}

/// The live counters behind [`ReceiverStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: [AtomicU64; 2],
    samples_appended: AtomicU64,
    samples_rejected: [AtomicU64; RejectReason::COUNT],
    histograms_appended: AtomicU64,
    histograms_rejected: [AtomicU64; RejectReason::COUNT],
    exemplars_appended: AtomicU64,
    exemplars_dropped: AtomicU64,
    metadata_entries: AtomicU64,
    responses: [AtomicU64; 7],
    ha_dropped_samples: [AtomicU64; HaDropReason::COUNT],
}

impl Counters {
    pub(crate) fn request(&self, p: Protocol) {
        let i = match p {
            Protocol::V1 => 0,
            Protocol::V2 => 1,
        };
        self.requests[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn response(&self, status: u16) {
        if let Some(i) = STATUSES.iter().position(|&s| s == status) {
            self.responses[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn ha_dropped(&self, reason: HaDropReason, samples: u64) {
        self.ha_dropped_samples[reason.index()].fetch_add(samples, Ordering::Relaxed);
    }

    pub(crate) fn add_outcome(&self, o: &super::ingest::Outcome) {
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.samples_appended, o.samples_written);
        for (c, &n) in self.samples_rejected.iter().zip(&o.rejected) {
            add(c, n);
        }
        add(&self.histograms_appended, o.histograms_written);
        for (c, &n) in self.histograms_rejected.iter().zip(&o.histograms_rejected) {
            add(c, n);
        }
        add(&self.exemplars_appended, o.exemplars_written);
        add(&self.exemplars_dropped, o.exemplars_dropped);
        add(&self.metadata_entries, o.metadata_entries);
    }

    pub(crate) fn snapshot(&self) -> ReceiverStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReceiverStats {
            requests_v1: load(&self.requests[0]),
            requests_v2: load(&self.requests[1]),
            samples_appended: load(&self.samples_appended),
            samples_rejected: self.samples_rejected.each_ref().map(load),
            histograms_appended: load(&self.histograms_appended),
            histograms_rejected: self.histograms_rejected.each_ref().map(load),
            exemplars_appended: load(&self.exemplars_appended),
            exemplars_dropped: load(&self.exemplars_dropped),
            metadata_entries: load(&self.metadata_entries),
            responses: self.responses.each_ref().map(load),
            ha_dropped_samples: self.ha_dropped_samples.each_ref().map(load),
        }
    }
}
