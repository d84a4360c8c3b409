//! A server process of the test's own (SecantusDB, Redis) on a spare loopback port, so a fault
//! test can kill, restart or freeze it without disturbing the shared server other tests use.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, secantus_python, wait_port};

/// How long a (re)started server may take to listen; a bound on a hang, not a speed target.
const STARTUP_BOUND: Duration = Duration::from_secs(30);
/// How long the port may stay open after SIGKILL.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

type Launch = Box<dyn Fn(u16) -> Command + Send + Sync>;

/// A server process of the test's own on a spare port, with its data in a temp dir that outlives
/// restarts ([`Private::down`] then [`Private::up`] finds the data again). Killed when dropped.
pub struct Private {
    pub port: u16,
    child: Option<Child>,
    start: Launch,
    _dir: tempfile::TempDir,
}

impl Private {
    /// A SecantusDB (MongoDB-compatible) run by [`secantus_python`], storing on disk.
    pub fn secantus() -> Private {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let data: PathBuf = dir.path().join("data");
        let python = secantus_python();
        Self::launch(
            dir,
            Box::new(move |port| {
                let mut c = Command::new(&python);
                c.args(["-m", "secantus", "--host", "127.0.0.1"])
                    .args(["--log-level", "WARNING"])
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--storage-path")
                    .arg(&data);
                c
            }),
        )
    }

    /// A `redis-server` (from `PATH`) that keeps nothing on disk.
    pub fn redis() -> Private {
        Self::redis_with(None)
    }

    /// A `redis-server` that asks every client for `password` (`AUTH`, as ElastiCache's token).
    pub fn redis_with_password(password: &str) -> Private {
        Self::redis_with(Some(password.to_owned()))
    }

    fn redis_with(password: Option<String>) -> Private {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let work = dir.path().to_owned();
        Self::launch(
            dir,
            Box::new(move |port| {
                let mut c = Command::new("redis-server");
                c.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .args(["--daemonize", "no"])
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--dir")
                    .arg(&work);
                if let Some(password) = &password {
                    c.args(["--requirepass", password]);
                }
                c
            }),
        )
    }

    fn launch(dir: tempfile::TempDir, start: Launch) -> Private {
        let mut p = Private {
            port: free_port(),
            child: None,
            start,
            _dir: dir,
        };
        p.up();
        p
    }

    /// Starts it (again) on the same port and data, and waits until it listens.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "private server already running");
        let mut cmd = (self.start)(self.port);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start a private server ({cmd:?}): {e}"));
        self.child = Some(child);
        assert!(
            wait_port(self.port, true, STARTUP_BOUND),
            "private server on {} did not come up within {STARTUP_BOUND:?} ({cmd:?})",
            self.port
        );
    }

    /// SIGKILL: the server is gone at once, as in a crash.
    pub fn down(&mut self) {
        self.kill();
        assert!(
            wait_port(self.port, false, SHUTDOWN_BOUND),
            "private server on {} still listens after SIGKILL",
            self.port
        );
    }

    /// SIGSTOP: the server keeps its connections but answers nothing (a hung server).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: it answers again.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .map(|c| c.id().to_string())
            .unwrap_or_else(|| panic!("private server on {} is not running", self.port));
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap_or_else(|e| panic!("kill {sig} {pid}: {e}"));
        assert!(status.success(), "kill {sig} {pid}: {status}");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its URI, for a SecantusDB: no database in the path.
    pub fn mongo_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Its URL, for a Redis.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.kill();
    }
}
