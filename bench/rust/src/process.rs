//! A server process under test (the real `cxr-serve` binary or the Python reference server): started on
//! `127.0.0.1:0`, its address read from the `listening on ADDR` line it prints on stdout, `/readyz` polled until
//! 200, its RSS sampled from `/proc`, and stopped with SIGTERM (SIGKILL after a grace period, or when dropped).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cxr_serve::telemetry::procfs;

use super::BenchError;

/// A running server child process; killed when dropped.
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `program args…` with stdout and stderr going to `log` and waits (at most `timeout`) for its
    /// `listening on ADDR` line.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        timeout: Duration,
    ) -> Result<ServerProcess, BenchError> {
        let setup = |what: String| BenchError::Setup(format!("{name}: {what}"));
        let log_file = File::create(log).map_err(|e| setup(format!("cannot create log {}: {e}", log.display())))?;
        let stderr = log_file.try_clone().map_err(|e| setup(e.to_string()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| setup(format!("cannot start {}: {e}", program.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");

        // Reads the address, then keeps draining stdout into the log so that a chatty server (uvicorn's access log
        // goes to stdout) never blocks on a full pipe.
        let (found, address) = mpsc::channel::<String>();
        let mut copy = log_file;
        std::thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || {
                let mut found = Some(found);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.trim().strip_prefix("listening on ")
                        && let Some(found) = found.take()
                    {
                        let _ = found.send(rest.trim().to_string());
                    }
                    let _ = writeln!(copy, "{line}");
                }
            })
            .map_err(|e| setup(e.to_string()))?;

        let mut process = ServerProcess {
            name: name.to_string(),
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log.to_path_buf(),
        };
        let started = Instant::now();
        loop {
            match address.recv_timeout(Duration::from_millis(200)) {
                Ok(text) => {
                    process.addr =
                        text.parse().map_err(|_| setup(format!("unparseable address in `listening on {text}`")))?;
                    if !process.addr.ip().is_loopback() {
                        return Err(setup(format!("listens on {} which is not loopback", process.addr)));
                    }
                    return Ok(process);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Some(status) = process.exited() {
                return Err(process.failure(format!("exited ({status}) before listening")));
            }
            if started.elapsed() > timeout {
                return Err(process.failure(format!("printed no `listening on ADDR` within {timeout:?}")));
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status when the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// A setup error naming the process, with the end of its log.
    pub fn failure(&self, what: String) -> BenchError {
        let tail = std::fs::read_to_string(&self.log)
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            })
            .unwrap_or_default();
        BenchError::Setup(format!("{}: {what}; log {}:\n{tail}", self.name, self.log.display()))
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid().and_then(rss_kib)
    }

    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL. Returns the exit status when known.
    pub fn stop(mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        terminate(child.id());
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("cxr-bench: {} did not stop within {grace:?} of SIGTERM; killing it", self.name);
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM to one process id (a child this program started).
fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) with a valid signal number has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    procfs::resident_bytes(Some(pid)).map(|bytes| bytes as u64 / 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_rss_is_readable() {
        assert!(super::rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
