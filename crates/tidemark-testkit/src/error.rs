//! The kit's one error type.

use std::path::PathBuf;

/// What can go wrong while driving a peer process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KitError {
    /// A binary the test needs is not installed.
    #[error("`{name}` is not on PATH: install Debian's `{package}` package (`apt-get install -y {package}`, or run ./scripts/test, which installs everything the tests need)")]
    MissingBinary {
        /// The executable looked for.
        name: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// The process could not be started.
    #[error("cannot start {name} ({path}): {source}")]
    Spawn {
        /// Which peer.
        name: String,
        /// The executable.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The process exited while it should be running.
    #[error("{name} exited ({status}); last lines of its log:\n{log}")]
    Exited {
        /// Which peer.
        name: String,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// The process did not become ready in time.
    #[error("{name} not ready after {timeout:?} (polling {url}); last lines of its log:\n{log}")]
    NotReady {
        /// Which peer.
        name: String,
        /// How long we waited.
        timeout: std::time::Duration,
        /// The readiness URL polled.
        url: String,
        /// The end of its log.
        log: String,
    },
    /// A local file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// An HTTP request failed below the status-code level (connection,
    /// timeout, malformed response).
    #[error("HTTP {method} {url}: {message}")]
    Http {
        /// GET or POST.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A `promtool` run did not finish in time, or failed when success was
    /// required.
    #[error("`promtool {args}` {problem}\nstdout: {stdout}\nstderr: {stderr}")]
    Promtool {
        /// The arguments, space-separated.
        args: String,
        /// "failed (exit status 1)", "timed out after 60s", …
        problem: String,
        /// What it printed on stdout.
        stdout: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Something a test waits for did not happen in time.
    #[error("timed out after {timeout:?} waiting for {what}; {detail}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        timeout: std::time::Duration,
        /// What was seen instead.
        detail: String,
    },
    /// `/proc/<pid>/…` could not be read or parsed.
    #[error("cannot read /proc/{pid}/{file}: {reason}")]
    Proc {
        /// The process id.
        pid: u32,
        /// `stat` or `status`.
        file: &'static str,
        /// Why.
        reason: String,
    },
}
