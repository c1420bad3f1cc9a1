//! Rules in the facade: the settings of rule evaluation and notification,
//! loading rule files (globs) and rule groups built in code into the
//! [`RuleManager`], and reloads (SIGHUP, `POST /-/reload`,
//! [`Tidemark::reload_rules`](crate::Tidemark::reload_rules)) that keep the
//! old rules running when the new ones are bad.
//!
//! Everything of the `tidemark-rules` crate is re-exported here, so a
//! service builds groups in code with `tidemark::rules::{GroupSpec, RuleSpec}`.

pub use tidemark_rules::*;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// Settings of rule evaluation and alert notification. Defaults are
/// Prometheus'.
#[derive(Debug, Clone, PartialEq)]
pub struct RulesOptions {
    /// Rule file globs (`--rules.file`), read at open and at every reload.
    pub files: Vec<String>,
    /// Interval of groups that set none (`--rules.evaluation-interval`,
    /// Prometheus' `global.evaluation_interval`; default 1m). Also the
    /// engine's default subquery step.
    pub evaluation_interval: Duration,
    /// Query offset of groups that set none (`--rules.query-offset`; default 0).
    pub query_offset: Duration,
    /// Longest outage after which `for` state is restored
    /// (`--rules.alert.for-outage-tolerance`; default 1h).
    pub outage_tolerance: Duration,
    /// Least time an alert with a restored `for` waits before firing
    /// (`--rules.alert.for-grace-period`; default 10m).
    pub for_grace_period: Duration,
    /// Least time between two sends of the same alert
    /// (`--rules.alert.resend-delay`; default 1m).
    pub resend_delay: Duration,
    /// Labels added to every alert sent (`--external-label k=v`), also
    /// `$externalLabels` in templates and the labels `/federate` adds.
    pub external_labels: BTreeMap<String, String>,
    /// The URL users reach this server at (`--web.external-url`):
    /// `$externalURL` and the alerts' `generatorURL`. Default
    /// `http://<hostname>:<port>` of the listen address.
    pub external_url: String,
    /// Alertmanager URLs (`--alertmanager.url`, repeatable).
    pub alertmanagers: Vec<String>,
    /// Alerts queued for Alertmanager at most; more drop the oldest
    /// (`--alertmanager.notification-queue-capacity`; default 10000).
    pub notification_queue_capacity: usize,
    /// Timeout of one request to an Alertmanager (`--alertmanager.timeout`; default 10s).
    pub alertmanager_timeout: Duration,
}

impl Default for RulesOptions {
    fn default() -> RulesOptions {
        RulesOptions {
            files: Vec::new(),
            evaluation_interval: Duration::from_secs(60),
            query_offset: Duration::ZERO,
            outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
            resend_delay: Duration::from_secs(60),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            alertmanagers: Vec::new(),
            notification_queue_capacity: 10_000,
            alertmanager_timeout: Duration::from_secs(10),
        }
    }
}

/// Why rules could not be (re)loaded. The rules running before stay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// A rule file cannot be read or is invalid (every error, with file,
    /// line, group and rule).
    #[error("{0}")]
    Files(String),
    /// A group could not be built.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// The outcome of the last reload, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    successful: AtomicBool,
    last_success_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
}

impl ReloadStatus {
    /// Whether the last (re)load succeeded.
    pub fn successful(&self) -> bool {
        self.successful.load(Ordering::Acquire)
    }

    /// When a (re)load last succeeded (ms since the epoch; 0 = never).
    pub fn last_success_ms(&self) -> i64 {
        self.last_success_ms.load(Ordering::Acquire)
    }

    /// The last reload's error, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub(crate) fn record(&self, result: &Result<(), RulesError>) {
        match result {
            Ok(()) => {
                self.successful.store(true, Ordering::Release);
                self.last_success_ms.store(crate::api::now_ms(), Ordering::Release);
                *self.last_error.lock() = None;
            }
            Err(e) => {
                self.successful.store(false, Ordering::Release);
                *self.last_error.lock() = Some(e.to_string());
            }
        }
    }
}

/// The rule sources of one instance: file globs and groups built in code.
#[derive(Debug)]
pub(crate) struct RuleSources {
    pub(crate) manager: Arc<RuleManager>,
    pub(crate) status: Arc<ReloadStatus>,
    files: Mutex<Vec<String>>,
    code_groups: Mutex<Vec<GroupSpec>>,
    /// Serialises reloads (SIGHUP and HTTP may race).
    reloading: Mutex<()>,
}

impl RuleSources {
    pub(crate) fn new(manager: Arc<RuleManager>, files: Vec<String>) -> RuleSources {
        RuleSources {
            manager,
            status: Arc::default(),
            files: Mutex::new(files),
            code_groups: Mutex::default(),
            reloading: Mutex::default(),
        }
    }

    /// Re-reads the files and applies them with the code groups.
    pub(crate) fn reload(&self) -> Result<usize, RulesError> {
        let _one_at_a_time = self.reloading.lock();
        let result = load_groups(&self.files.lock()).and_then(|mut groups| {
            groups.extend(self.code_groups.lock().iter().cloned());
            let n = groups.iter().map(|g| g.rules.len()).sum();
            self.manager.update(groups)?;
            Ok(n)
        });
        self.status.record(&result.as_ref().map(|_| ()).map_err(|e| RulesError::Files(e.to_string())));
        match &result {
            Ok(n) => tracing::info!(rules = n, groups = self.manager.groups().len(), "rules loaded"),
            Err(e) => tracing::error!(error = %e, "loading rules failed; the previous rules keep running"),
        }
        result
    }

    pub(crate) fn set_files(&self, files: Vec<String>) -> Result<usize, RulesError> {
        let old = std::mem::replace(&mut *self.files.lock(), files);
        let result = self.reload();
        if result.is_err() {
            *self.files.lock() = old;
        }
        result
    }

    pub(crate) fn set_code_groups(&self, groups: Vec<GroupSpec>) -> Result<usize, RulesError> {
        let old = std::mem::replace(&mut *self.code_groups.lock(), groups);
        let result = self.reload();
        if result.is_err() {
            *self.code_groups.lock() = old;
        }
        result
    }
}

/// Reads every file the globs match, in order; all errors of all files.
pub fn load_groups(patterns: &[String]) -> Result<Vec<GroupSpec>, RulesError> {
    let files = tidemark_rules::file::expand_globs(patterns).map_err(|e| RulesError::Files(e.to_string()))?;
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match tidemark_rules::file::load_rule_file(&f, &check_template) {
            Ok(g) => groups.extend(g),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(RulesError::Files(errors.join("\n")))
    }
}

/// The template check rule files are validated with (as `promtool check
/// rules`: parsed, not executed).
pub fn check_template(alert: &str, text: &str) -> Result<(), String> {
    tidemark_rules::check_alert_template(alert, text).map_err(|e| e.to_string())
}
