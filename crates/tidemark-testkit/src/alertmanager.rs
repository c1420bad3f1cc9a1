//! A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback,
//! routing every alert to one webhook, with timers short enough for tests.

use std::ffi::OsString;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::{find_binary, free_port, Http, KitError, PeerProcess};

/// How to run an Alertmanager.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// Where the single receiver posts notifications (a
    /// [`WebhookReceiver`](crate::WebhookReceiver) URL, path included).
    pub webhook_url: String,
    /// Route `group_by`. Default: `["..."]`, every label set its own group,
    /// so each alert is notified on its own.
    pub group_by: Vec<String>,
    /// Route `group_wait`: delay before a new group's first notification.
    /// Default: 1 s.
    pub group_wait: Duration,
    /// Route `group_interval`: delay before notifying a changed group
    /// (a resolution, a new alert). Default: 1 s.
    pub group_interval: Duration,
    /// Route `repeat_interval`: re-notification of an unchanged group.
    /// Default: 1 h, so a test sees no repeats.
    pub repeat_interval: Duration,
    /// Global `resolve_timeout`: when an alert without `endsAt` resolves.
    /// Default: 5 m (Alertmanager's).
    pub resolve_timeout: Duration,
    /// Replaces the generated `alertmanager.yml` entirely when set.
    pub config_yaml: Option<String>,
    /// Extra arguments after the ones the kit sets (`--config.file`,
    /// `--storage.path`, `--web.listen-address`, `--cluster.listen-address=`).
    pub args: Vec<String>,
    /// How long to wait for `/-/ready`. Default: 30 s.
    pub ready_timeout: Duration,
    /// The client for `/-/ready` and [`Alertmanager::api_v2_alerts`], and
    /// whether the server speaks HTTPS: set it when `args` include a
    /// `--web.config.file` with TLS or basic auth. Default: `None`, plain
    /// HTTP without credentials.
    pub client: Option<(Http, bool)>,
}

impl AlertmanagerConfig {
    /// The defaults, notifying `webhook_url`.
    pub fn new(webhook_url: impl Into<String>) -> AlertmanagerConfig {
        AlertmanagerConfig {
            webhook_url: webhook_url.into(),
            group_by: vec!["...".into()],
            group_wait: Duration::from_secs(1),
            group_interval: Duration::from_secs(1),
            repeat_interval: Duration::from_secs(3600),
            resolve_timeout: Duration::from_secs(300),
            config_yaml: None,
            args: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            client: None,
        }
    }

    /// The `alertmanager.yml` these settings make: one route, one webhook
    /// receiver with `send_resolved: true`.
    pub fn to_yaml(&self) -> String {
        if let Some(y) = &self.config_yaml {
            return y.clone();
        }
        let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
        // JSON strings are valid YAML scalars: the URL and label names need
        // no YAML escaping rules of their own.
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let group_by: Vec<String> = self.group_by.iter().map(|g| q(g)).collect();
        format!(
            "global:\n  resolve_timeout: {}\nroute:\n  receiver: webhook\n  group_by: [{}]\n  group_wait: {}\n  group_interval: {}\n  repeat_interval: {}\nreceivers:\n  - name: webhook\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
            ms(self.resolve_timeout),
            group_by.join(", "),
            ms(self.group_wait),
            ms(self.group_interval),
            ms(self.repeat_interval),
            q(&self.webhook_url),
        )
    }
}

/// A running Alertmanager (Debian's 0.25 in our CI), clustering disabled,
/// its state in a temporary directory. Derefs to its [`PeerProcess`]
/// (`url()`, `log_tail()`…); killed and reaped on drop.
///
/// ```no_run
/// use std::time::Duration;
/// use tidemark_testkit::{Alertmanager, AlertmanagerConfig, WebhookReceiver};
///
/// let hook = WebhookReceiver::start()?;
/// let am = Alertmanager::start(AlertmanagerConfig::new(format!("{}/hook", hook.url())))?;
/// // … post alerts to am.alerts_url() …
/// let held = am.api_v2_alerts()?; // JSON array of what it holds
/// # let _ = held;
/// # Ok::<(), tidemark_testkit::KitError>(())
/// ```
#[derive(Debug)]
pub struct Alertmanager {
    process: PeerProcess,
    client: Http,
    https: bool,
}

impl Deref for Alertmanager {
    type Target = PeerProcess;
    fn deref(&self) -> &PeerProcess {
        &self.process
    }
}

impl DerefMut for Alertmanager {
    fn deref_mut(&mut self) -> &mut PeerProcess {
        &mut self.process
    }
}

impl Alertmanager {
    /// Writes the config, starts `prometheus-alertmanager` on a free port
    /// and waits until `/-/ready` answers 200.
    pub fn start(config: AlertmanagerConfig) -> Result<Alertmanager, KitError> {
        let bin = find_binary("prometheus-alertmanager")?;
        let work = tempfile::Builder::new().prefix("tidemark-testkit-alertmanager-").tempdir().map_err(|source| {
            KitError::Io { what: "create a temporary directory for", path: "alertmanager".into(), source }
        })?;
        let file = work.path().join("alertmanager.yml");
        std::fs::write(&file, config.to_yaml()).map_err(|source| KitError::Io {
            what: "write",
            path: file.clone(),
            source,
        })?;
        let port = free_port();
        let mut args: Vec<OsString> = vec![
            format!("--config.file={}", file.display()).into(),
            format!("--storage.path={}", work.path().join("data").display()).into(),
            format!("--web.listen-address=127.0.0.1:{port}").into(),
            // Empty: no gossip listener, so no second port and no peers.
            "--cluster.listen-address=".into(),
        ];
        args.extend(config.args.iter().map(OsString::from));
        let mut process = PeerProcess::spawn("alertmanager", &bin, &args, port, work)?;
        let (client, https) = config.client.unwrap_or_else(|| (Http::new(Duration::from_secs(10)), false));
        let scheme = if https { "https" } else { "http" };
        process.wait_ready_with(&client, &format!("{scheme}://127.0.0.1:{port}/-/ready"), config.ready_timeout)?;
        Ok(Alertmanager { process, client, https })
    }

    /// `https://127.0.0.1:<port>` when served over TLS, else the plain
    /// [`PeerProcess::url`].
    pub fn base_url(&self) -> String {
        if self.https {
            format!("https://127.0.0.1:{}", self.port())
        } else {
            self.url()
        }
    }

    /// `<base_url>/api/v2/alerts`, where alerts are posted.
    pub fn alerts_url(&self) -> String {
        format!("{}/api/v2/alerts", self.base_url())
    }

    /// `GET /api/v2/alerts`: the JSON array of the alerts it holds (with
    /// `status.state`, `startsAt`, `endsAt`, `labels`, `annotations`).
    pub fn api_v2_alerts(&self) -> Result<String, KitError> {
        let url = self.alerts_url();
        let r = self.client.get(&url)?;
        if !r.is_success() {
            return Err(KitError::Http { method: "GET", url, message: format!("status {}: {}", r.status, r.text()) });
        }
        Ok(r.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_routes_everything_to_the_webhook() {
        let y = AlertmanagerConfig::new("http://127.0.0.1:1/hook").to_yaml();
        assert!(y.contains("url: \"http://127.0.0.1:1/hook\""), "{y}");
        assert!(y.contains("group_by: [\"...\"]") && y.contains("group_wait: 1000ms"), "{y}");
        assert!(y.contains("repeat_interval: 3600000ms") && y.contains("send_resolved: true"), "{y}");
    }
}
