//! Running `promtool`, bounded in time.

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{find_binary, KitError};

/// What a `promtool` run printed, and how it exited.
#[derive(Debug, Clone)]
pub struct PromtoolOutput {
    /// The arguments, space-separated (for messages).
    pub args: String,
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl PromtoolOutput {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output if it succeeded, else [`KitError::Promtool`] with
    /// everything it printed.
    pub fn into_stdout(self) -> Result<String, KitError> {
        if self.success() {
            Ok(self.stdout)
        } else {
            Err(KitError::Promtool {
                args: self.args,
                problem: format!("failed ({})", self.status),
                stdout: self.stdout,
                stderr: self.stderr,
            })
        }
    }
}

/// Runs `promtool args…` with a 120 s limit and returns its output whatever
/// its exit status (a failed query is an answer to compare); `Err` only when
/// it cannot be run or does not finish.
pub fn promtool<I, S>(args: I) -> Result<PromtoolOutput, KitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    promtool_with_timeout(args, Duration::from_secs(120))
}

/// [`promtool`] with a chosen time limit; the process is killed when it
/// runs over.
pub fn promtool_with_timeout<I, S>(args: I, timeout: Duration) -> Result<PromtoolOutput, KitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    promtool_with_env(args, timeout, &[])
}

/// [`promtool_with_timeout`] with extra environment variables, e.g.
/// `SSL_CERT_FILE` to make it trust a test CA (promtool 2.42 has no
/// `--http.config.file`; Go reads that variable for its roots).
pub fn promtool_with_env<I, S>(args: I, timeout: Duration, env: &[(&str, &str)]) -> Result<PromtoolOutput, KitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let bin = find_binary("promtool")?;
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let shown = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let mut child = Command::new(&bin)
        .args(&args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| KitError::Spawn { name: "promtool".into(), path: bin.clone(), source })?;
    // Drain both pipes on threads so a chatty promtool cannot block on a
    // full pipe while we wait for it to exit.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {timeout:?}"));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("could not be waited for: {e}"));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Ok(status) => Ok(PromtoolOutput { args: shown, status, stdout, stderr }),
        Err(problem) => Err(KitError::Promtool { args: shown, problem, stdout, stderr }),
    }
}
