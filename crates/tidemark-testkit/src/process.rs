//! A child process that is always killed and reaped, and what we can read
//! about it from `/proc`.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Http, KitError};

/// A free TCP port on 127.0.0.1, chosen by the OS.
///
/// The listener is closed before the port is returned, so another process
/// could take it in between; a peer that then fails to bind exits, and its
/// start reports [`KitError::Exited`] with the log saying why.
pub fn free_port() -> u16 {
    // Binding port 0 on loopback cannot fail on a working machine; if it
    // does, 0 makes the peer's own bind fail loudly.
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// The Debian package that provides `name`, for the install hint.
fn debian_package(name: &str) -> &str {
    match name {
        "prometheus" | "promtool" => "prometheus",
        "victoria-metrics" => "victoria-metrics",
        "prometheus-node-exporter" | "node_exporter" => "prometheus-node-exporter",
        other => other,
    }
}

/// Finds executable `name` on `PATH`.
///
/// A test that needs a peer must fail when it is missing, never pass
/// silently: the error names the Debian package to install.
pub fn find_binary(name: &str) -> Result<PathBuf, KitError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(KitError::MissingBinary { name: name.to_string(), package: debian_package(name).to_string() })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// A running peer: a child process listening on `127.0.0.1:port`, with its
/// output in a log file. Dropping it kills the process and waits for it, so
/// nothing outlives the test, also on panic.
#[derive(Debug)]
pub struct PeerProcess {
    name: String,
    child: Child,
    port: u16,
    log: PathBuf,
    exited: Option<ExitStatus>,
    /// Holds the config and log; removed after the process is gone (fields
    /// drop after `Drop::drop` has killed the child).
    _work: tempfile::TempDir,
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time and memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time since the process started, seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
    /// Current resident set size (`VmRSS`), bytes.
    pub rss_bytes: u64,
}

impl PeerProcess {
    /// Starts `program args…` as peer `name` that will listen on `port`,
    /// with stdout and stderr appended to `<work>/<name>.log`. `work` (a
    /// directory for config files and the log) is owned by the peer from
    /// now on. Does not wait for readiness: see [`PeerProcess::wait_ready`].
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[OsString],
        port: u16,
        work: tempfile::TempDir,
    ) -> Result<PeerProcess, KitError> {
        let log = work.path().join(format!("{name}.log"));
        let io = |source| KitError::Io { what: "create log", path: log.clone(), source };
        let out = std::fs::File::create(&log).map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| KitError::Spawn { name: name.to_string(), path: program.to_path_buf(), source })?;
        Ok(PeerProcess { name: name.to_string(), child, port, log, exited: None, _work: work })
    }

    /// The peer's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Ok while the process runs; [`KitError::Exited`] with the log once it
    /// has exited.
    pub fn check_alive(&mut self) -> Result<(), KitError> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        match self.exited {
            None => Ok(()),
            Some(status) => {
                Err(KitError::Exited { name: self.name.clone(), status: status.to_string(), log: self.log_tail(40) })
            }
        }
    }

    /// Polls `GET <url><path>` every 100 ms until it answers 200, for at
    /// most `timeout`; fails early if the process exits.
    pub fn wait_ready(&mut self, path: &str, timeout: Duration) -> Result<(), KitError> {
        let url = format!("{}{path}", self.url());
        self.wait_ready_with(&Http::new(Duration::from_secs(5)), &url, timeout)
    }

    /// [`PeerProcess::wait_ready`] with a given client and full URL (an
    /// HTTPS server, credentials).
    pub fn wait_ready_with(&mut self, http: &Http, url: &str, timeout: Duration) -> Result<(), KitError> {
        let url = url.to_string();
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if matches!(http.get(&url), Ok(r) if r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(KitError::NotReady { name: self.name.clone(), timeout, url, log: self.log_tail(40) });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// CPU time and memory from `/proc/<pid>/stat` and `/proc/<pid>/status`
    /// (Linux only).
    pub fn stats(&self) -> Result<ProcessStats, KitError> {
        let pid = self.pid();
        let proc_err = |file, reason: String| KitError::Proc { pid, file, reason };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| proc_err("stat", e.to_string()))?;
        // The command name (field 2) is in parentheses and may contain
        // spaces; the fields we want are counted from after its ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| proc_err("stat", "no ')'".into()))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')': field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
        let tick = |i: usize| -> Result<f64, KitError> {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .map(|t| t as f64)
                .ok_or_else(|| proc_err("stat", format!("bad field {}", i + 3)))
        };
        let cpu_seconds = (tick(11)? + tick(12)?) / clock_ticks_per_second();
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| proc_err("status", e.to_string()))?;
        let kib = |key: &str| -> Result<u64, KitError> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|k| k * 1024)
                .ok_or_else(|| proc_err("status", format!("no {key}")))
        };
        Ok(ProcessStats { cpu_seconds, peak_rss_bytes: kib("VmHWM:")?, rss_bytes: kib("VmRSS:")? })
    }

    /// Asks the process to stop with SIGTERM (through `kill(1)`, so the kit
    /// needs no libc binding) and waits up to `timeout` for it to exit; kills
    /// it if it does not. Returns the exit status, for tests of graceful
    /// shutdown.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, KitError> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let kill = find_binary("kill")?;
        let _ = Command::new(kill).arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exited = Some(status);
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = self.child.kill();
                    let status = self.child.wait().map_err(|source| KitError::Io {
                        what: "wait for",
                        path: PathBuf::from(&self.name),
                        source,
                    })?;
                    self.exited = Some(status);
                    return Err(KitError::Exited {
                        name: self.name.clone(),
                        status: format!("killed: did not exit within {timeout:?} of SIGTERM"),
                        log: self.log_tail(40),
                    });
                }
            }
        }
    }
}

/// `sysconf(_SC_CLK_TCK)` through `getconf`, once; 100 (Linux' value on
/// every common architecture) if that fails.
fn clock_ticks_per_second() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|&t| t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_package() {
        let err = find_binary("victoria-metrics-surely-not-installed").unwrap_err().to_string();
        assert!(err.contains("apt-get install -y victoria-metrics-surely-not-installed"), "{err}");
        assert!(matches!(debian_package("promtool"), "prometheus"));
    }

    #[test]
    fn a_peer_is_killed_on_drop_and_its_stats_are_readable() {
        let sleep = find_binary("sleep").expect("coreutils sleep");
        let work = tempfile::tempdir().expect("tempdir");
        let mut p = PeerProcess::spawn("sleeper", &sleep, &["30".into()], free_port(), work).expect("spawn");
        p.check_alive().expect("alive");
        let s = p.stats().expect("stats");
        assert!(s.cpu_seconds >= 0.0 && s.peak_rss_bytes > 0 && s.rss_bytes > 0, "{s:?}");
        let pid = p.pid();
        drop(p);
        // Reaped: /proc/<pid> is gone (pids are not reused this quickly).
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} survived its drop");
    }

    #[test]
    fn terminate_sends_sigterm_and_reaps() {
        use std::os::unix::process::ExitStatusExt;
        let sleep = find_binary("sleep").expect("coreutils sleep");
        let work = tempfile::tempdir().expect("tempdir");
        let mut p = PeerProcess::spawn("sleeper", &sleep, &["30".into()], free_port(), work).expect("spawn");
        let status = p.terminate(Duration::from_secs(10)).expect("terminate");
        assert_eq!(status.signal(), Some(15), "{status}");
        assert!(p.check_alive().is_err(), "a terminated peer is not alive");
    }

    #[test]
    fn an_exited_peer_reports_its_log() {
        let sh = find_binary("sh").expect("sh");
        let work = tempfile::tempdir().expect("tempdir");
        let args: Vec<OsString> = vec!["-c".into(), "echo boom >&2; exit 3".into()];
        let mut p = PeerProcess::spawn("shell", &sh, &args, free_port(), work).expect("spawn");
        let err = p.wait_ready("/", Duration::from_secs(10)).unwrap_err().to_string();
        assert!(err.contains("shell exited") && err.contains("boom"), "{err}");
    }
}
