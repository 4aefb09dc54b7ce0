//! Child processes of the control plane: spawning with a parent-death signal, log files, log
//! tails for error messages, and free loopback ports.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Spawns children from one dedicated thread that lives exactly as long as the control plane.
///
/// Why a thread: Linux delivers PR_SET_PDEATHSIG when the *thread* that forked the child exits,
/// not the process. The test harness runs every test on its own short-lived thread, so a child
/// forked directly from a test thread would be SIGKILLed as soon as that test returned, even if
/// the control plane is shared (e.g. kept in a `static`). This thread ends only when the control
/// plane is stopped (after its children are dead) or when the whole process dies, which is the
/// moment the children must die too.
#[derive(Debug)]
pub struct Spawner {
    requests: Option<mpsc::Sender<SpawnRequest>>,
    thread: Option<JoinHandle<()>>,
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

impl Spawner {
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let thread = std::thread::Builder::new()
            .name("controlplane-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // The requester may have given up; nothing to do then but let the child be
                    // dropped, and its parent-death signal still fires when this thread ends.
                    let _ = reply.send(cmd.spawn());
                }
            })?;
        Ok(Spawner {
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn spawn(&self, cmd: Command) -> io::Result<Child> {
        let gone = || io::Error::other("control-plane spawner thread is gone");
        let (reply_tx, reply_rx) = mpsc::channel();
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send((cmd, reply_tx))
            .map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A command whose stdout and stderr go to `log` and which gets SIGKILL when its parent (the
/// spawner thread) dies, so that even a SIGKILLed test process leaves no etcd or apiserver
/// behind.
pub fn command(program: &Path, args: &[String], log: &Path) -> io::Result<Command> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    set_parent_death_signal(&mut cmd);
    Ok(cmd)
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only prctl and
    // getppid, both async-signal-safe; it allocates nothing (the error is a raw OS code).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; the signal would then never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

// Parent-death signals are Linux-only; elsewhere Drop is the only cleanup.
#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command) {}

/// A running child and where its output goes.
#[derive(Debug)]
pub struct Managed {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Managed {
    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL and reap. These are throw-away processes on a temp data dir, so a graceful
    /// shutdown buys nothing and costs 2-3 s per process.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        match self.child.kill() {
            Ok(()) => {}
            // Already reaped by an earlier try_wait: nothing left to signal.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(e),
        }
        self.child.wait()
    }
}

/// The last `max_lines` lines (at most 8 KiB) of a log file, for error messages.
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    const MAX_BYTES: u64 = 8 * 1024;
    let read = || -> io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(max_lines)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// `n` distinct free ports on 127.0.0.1. All listeners are held at once so the ports differ;
/// another process can still grab one between here and the server's bind, which the caller
/// handles by retrying the start.
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let mut p = free_ports(3).unwrap();
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn log_tail_keeps_last_lines() {
        let path = std::env::temp_dir().join(format!("egress-cp-tail-{}.log", std::process::id()));
        std::fs::write(
            &path,
            (1..=100).map(|i| format!("line {i}\n")).collect::<String>(),
        )
        .unwrap();
        assert_eq!(log_tail(&path, 2), "line 99\nline 100");
        std::fs::remove_file(&path).unwrap();
        assert!(log_tail(&path, 2).contains("could not read"));
    }

    #[test]
    fn spawned_child_runs_and_is_killed() {
        let spawner = Spawner::new().unwrap();
        let log = std::env::temp_dir().join(format!("egress-cp-sleep-{}.log", std::process::id()));
        let cmd = command(Path::new("sleep"), &["30".to_string()], &log).unwrap();
        let mut m = Managed {
            name: "sleep",
            child: spawner.spawn(cmd).unwrap(),
            log: log.clone(),
        };
        assert!(m.exited().is_none());
        let status = m.kill().unwrap();
        assert!(!status.success());
        // A second kill of a reaped child is not an error.
        m.kill().unwrap();
        drop(spawner);
        let _ = std::fs::remove_file(&log);
    }
}
