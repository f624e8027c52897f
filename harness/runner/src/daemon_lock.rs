//! A machine-wide lock between event recorders and cases that need *no* path-manager daemon.
//!
//! The kernel decides whether a userspace path-manager daemon is running with
//! `genl_has_listeners()`, which reads the netlink protocol's listener bitmap: it is shared by
//! every namespace of the machine. Any `mptcp_pm_events` subscriber anywhere, e.g. an event
//! recorder of a case running in another process, turns a "no daemon" case into a "daemon"
//! case. So every harness process coordinates through two lock files (flock(2)):
//!
//! - a case (or probe) that records events holds `pm-events.lock` shared while its recorders
//!   are open ([`recording`]);
//! - a case without listeners holds it exclusively for its whole run ([`exclusive`]).
//!
//! Writers must not starve behind a stream of readers: a writer first takes `pm-events.intent`
//! exclusively and keeps it; a reader passes through `pm-events.intent` shared before taking
//! its shared lock, and releases the intent at once. One lock per case (never one per
//! recorder): a reader holding a shared lock never waits for another.
//!
//! Processes built without this lock (older binaries) do not take part; without root (no
//! `/run`), the guards are empty and nothing is coordinated.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// The directory of the lock files.
fn dir() -> PathBuf {
    std::env::var_os("MPTCP_CT_LOCK_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/mptcp-conformance"))
}

fn open(name: &str) -> Option<File> {
    let d = dir();
    let _ = std::fs::create_dir_all(&d);
    OpenOptions::new().create(true).truncate(false).write(true).open(d.join(name)).ok()
}

fn flock(f: &File, op: libc::c_int) -> bool {
    loop {
        // SAFETY: flock(2) on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return true;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

/// Held while this case's (or probe's) event recorders are open. Dropping it releases it.
#[derive(Debug)]
pub struct Recording {
    _held: Option<File>,
}

/// Held while a case without any `mptcp_pm_events` listener runs.
#[derive(Debug)]
pub struct Exclusive {
    _held: Option<(File, File)>,
}

/// Takes the shared lock (after any waiting writer).
pub fn recording() -> Recording {
    let (Some(intent), Some(main)) = (open("pm-events.intent"), open("pm-events.lock")) else { return Recording { _held: None } };
    if !flock(&intent, libc::LOCK_SH) {
        return Recording { _held: None };
    }
    let ok = flock(&main, libc::LOCK_SH);
    drop(intent);
    Recording { _held: ok.then_some(main) }
}

/// Takes the exclusive lock: no recorder of any cooperating process is open until it drops.
pub fn exclusive() -> Exclusive {
    let (Some(intent), Some(main)) = (open("pm-events.intent"), open("pm-events.lock")) else { return Exclusive { _held: None } };
    if !flock(&intent, libc::LOCK_EX) {
        return Exclusive { _held: None };
    }
    if !flock(&main, libc::LOCK_EX) {
        return Exclusive { _held: None };
    }
    Exclusive { _held: Some((intent, main)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_waits_for_readers_and_blocks_new_ones() {
        let d = std::env::temp_dir().join(format!("mptcp-lock-test-{}", std::process::id()));
        // SAFETY (env): only this test reads MPTCP_CT_LOCK_DIR in this process's tests.
        unsafe { std::env::set_var("MPTCP_CT_LOCK_DIR", &d) };
        let r1 = recording();
        assert!(r1._held.is_some());
        let (tx, rx) = std::sync::mpsc::channel();
        let w = std::thread::spawn(move || {
            let g = exclusive();
            tx.send(()).unwrap();
            drop(g);
        });
        // The writer cannot get in while a reader holds the lock.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err());
        drop(r1);
        rx.recv_timeout(std::time::Duration::from_secs(5)).expect("the writer got the lock");
        w.join().unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }
}
