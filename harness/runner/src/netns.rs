//! Network namespaces owned by guards.
//!
//! A namespace is created anonymous, kept alive only by the file descriptor its [`Netns`]
//! holds: when the guard drops, or the process dies however it dies, the kernel tears it down
//! with every link, address, socket and qdisc inside. Nothing is left behind by a crash.
//!
//! A namespace belongs to a *thread*, and a `setns` moves the calling thread for good. So work
//! inside a namespace runs on a short-lived thread ([`Netns::run`]) that joins the namespace,
//! creates what it needs (a netlink socket, an MPTCP socket, an open procfs file) and hands the
//! file descriptor back; the descriptor keeps its namespace wherever it is used. Pool and
//! runtime threads never call `setns`.
//!
//! For debugging, a namespace can be *named*: bind-mounted at `/run/netns/<name>` so that
//! `ip netns exec <name> ...` enters it. Names are `mptcpct-<pid>-<n>-<host>`; the guard
//! unmounts on drop, and [`sweep`] removes mounts whose pid is dead (a killed run, or a
//! topology kept on purpose by an earlier run).

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sched::{CloneFlags, setns, unshare};

/// Prefix of every namespace name this harness creates.
pub const PREFIX: &str = "mptcpct";
/// Where `ip netns` looks for named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Failures of namespace operations, naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A system call failed.
    #[error("{op} for namespace {name}: {source}")]
    Sys { op: &'static str, name: String, source: io::Error },
    /// The thread running inside the namespace panicked.
    #[error("work inside namespace {name} panicked: {message}")]
    Panicked { name: String, message: String },
}

/// An owned network namespace.
#[derive(Debug)]
pub struct Netns {
    name: String,
    fd: OwnedFd,
    mount: Option<PathBuf>,
}

/// A fresh unique name for a namespace of this run: `mptcpct-<pid>-<n>-<label>`.
pub fn unique_name(label: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}-{}-{n}-{label}", std::process::id())
}

impl Netns {
    /// Creates an anonymous namespace named (for reports) `label` made unique.
    pub fn new(label: &str) -> Result<Netns, NetnsError> {
        let name = unique_name(label);
        let n2 = name.clone();
        let fd = std::thread::spawn(move || -> Result<OwnedFd, NetnsError> {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| NetnsError::Sys { op: "unshare(CLONE_NEWNET)", name: n2.clone(), source: e.into() })?;
            fs::File::open("/proc/thread-self/ns/net")
                .map(OwnedFd::from)
                .map_err(|e| NetnsError::Sys { op: "open /proc/thread-self/ns/net", name: n2, source: e })
        })
        .join()
        .map_err(|p| NetnsError::Panicked { name: name.clone(), message: panic_text(&p) })??;
        let mut ns = Netns { name, fd, mount: None };
        if crate::env::named_namespaces() {
            ns.mount()?;
        }
        Ok(ns)
    }

    /// The namespace's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file descriptor (for `setns`, `IFLA_NET_NS_FD`).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `f` on a new thread inside the namespace and returns its result. A panic in `f`
    /// becomes an error; the thread ends either way, so no other thread is ever moved.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|s| {
            let h = s.spawn(|| -> Result<T, NetnsError> {
                setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Sys {
                    op: "setns(CLONE_NEWNET)",
                    name: self.name.clone(),
                    source: e.into(),
                })?;
                Ok(f())
            });
            h.join().map_err(|p| NetnsError::Panicked { name: self.name.clone(), message: panic_text(&p) })?
        })
    }

    /// Bind-mounts the namespace at `/run/netns/<name>` (idempotent) and returns the path.
    pub fn mount(&mut self) -> Result<PathBuf, NetnsError> {
        if let Some(p) = &self.mount {
            return Ok(p.clone());
        }
        let sys = |op, e| NetnsError::Sys { op, name: self.name.clone(), source: e };
        fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| sys("create /run/netns", e))?;
        let target = Path::new(NETNS_RUN_DIR).join(&self.name);
        fs::File::create(&target).map_err(|e| sys("create mount point", e))?;
        let src = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&self.fd));
        if let Err(e) = nix::mount::mount(Some(src.as_str()), &target, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>) {
            let _ = fs::remove_file(&target);
            return Err(sys("bind-mount into /run/netns", e.into()));
        }
        self.mount = Some(target.clone());
        Ok(target)
    }

    /// Keeps the namespace after the guard is gone: mounts it and forgets the mount, so
    /// `ip netns exec <name>` works until the next run's [`sweep`] (or `ip netns del`).
    pub fn keep(mut self) -> Result<String, NetnsError> {
        self.mount()?;
        self.mount = None;
        Ok(self.name.clone())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(p) = self.mount.take() {
            // Never panic in drop: report and go on.
            if let Err(e) = unmount_and_remove(&p) {
                eprintln!("mptcp-conformance: could not remove {}: {e}", p.display());
            }
        }
    }
}

fn unmount_and_remove(p: &Path) -> io::Result<()> {
    match nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether a process runs: it exists and is not a zombie (a killed run may linger as one).
fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "pid (comm) S ...".
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Removes `/run/netns/mptcpct-<pid>-...` entries whose pid is no longer running. Returns the
/// names removed. Entries of live processes (another run in progress) are left alone.
pub fn sweep() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(dir) = fs::read_dir(NETNS_RUN_DIR) else { return removed };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('-')) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if pid == std::process::id() as i32 || pid_alive(pid) {
            continue;
        }
        match unmount_and_remove(&entry.path()) {
            Ok(()) => removed.push(name),
            Err(e) => eprintln!("mptcp-conformance: sweep could not remove {name}: {e}"),
        }
    }
    removed
}

pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-text panic)".to_owned())
}
