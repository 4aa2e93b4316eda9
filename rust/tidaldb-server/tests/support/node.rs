//! One `tidaldb serve` process: its config file, data directory and log, and the ways a
//! test ends it (SIGKILL, SIGTERM). Dropping a `NodeProc` kills the process and waits for it,
//! so no test leaves a server behind, even when it panics.

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tidaldb");

pub struct NodeProc {
    pub id: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    pub peer_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub insecure: bool,
    child: Option<Child>,
}

impl NodeProc {
    pub fn new(
        id: u16,
        config: PathBuf,
        log: PathBuf,
        peer_addr: SocketAddr,
        client_addr: SocketAddr,
        insecure: bool,
    ) -> NodeProc {
        NodeProc {
            id,
            config,
            log,
            peer_addr,
            client_addr,
            insecure,
            child: None,
        }
    }

    /// Starts the process from its config; the log file is appended to across restarts.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        let log: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the node's log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(&self.config);
        if self.insecure {
            cmd.arg("--insecure");
        }
        let child = cmd
            // TIDALDB_LOG=debug in the test's environment reaches the nodes.
            .env(
                "TIDALDB_LOG",
                std::env::var("TIDALDB_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tidaldb serve");
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("node {} is not running", self.id))
    }

    /// True while the process runs; a process that exited is reaped and reported.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                eprintln!("node {} exited: {status}", self.id);
                self.child = None;
                false
            }
            Some(Err(e)) => panic!("waiting on node {}: {e}", self.id),
            None => false,
        }
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM through `kill(1)`, then wait up to `timeout` for the exit. A process that
    /// does not stop in time is killed, and the test fails.
    pub fn sigterm(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait on the node") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!(
                    "node {} did not stop within {timeout:?} of SIGTERM",
                    self.id
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident memory from /proc/PID/status, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// Everything the process (and its earlier runs) wrote to stderr.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's complete lines: a line still being written (the process may write one
    /// in several pieces) is left out until its newline arrives.
    pub fn log_lines(&self) -> Vec<String> {
        let text = self.log_text();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_owned).collect()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}
