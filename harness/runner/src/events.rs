//! Records the `mptcp_pm_events` multicast stream of one host.
//!
//! The socket is created inside the host's namespace and joins the group before any traffic
//! starts (a socket in another namespace sees nothing). A recorder thread blocks in poll(2)
//! on the socket and on an eventfd used only to stop it, decodes each message and appends it
//! with its arrival time. The receive buffer is forced to 4 MiB; if the kernel still drops
//! messages (ENOBUFS), the log is marked as overflowed and the case fails loudly instead of
//! judging an incomplete stream.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mptcp_wire::event::Event;
use mptcp_wire::nl::{self, NlMessage};
use mptcp_wire::pm::{MPTCP_PM_EV_GRP_NAME, MPTCP_PM_NAME};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::genl::{GenlError, NlSocket};
use crate::netns::Netns;
use crate::wait::Deadline;

/// One recorded event with its arrival time since the recorder started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Arrival time.
    pub at: Duration,
    /// The decoded event.
    pub event: Event,
}

/// What a recorder collected.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    /// Events in arrival order.
    pub events: Vec<Recorded>,
    /// The kernel dropped events (ENOBUFS): the log is incomplete.
    pub overflow: bool,
    /// A receive or decode error that stopped the recorder.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    log: Mutex<EventLog>,
    changed: Condvar,
}

/// A running recorder; stop it with [`EventRecorder::stop`] (or drop it).
#[derive(Debug)]
pub struct EventRecorder {
    host: String,
    shared: Arc<Shared>,
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

/// Why recording could not start.
#[derive(Debug, thiserror::Error)]
#[error("{host}: cannot record mptcp_pm events: {what}")]
pub struct RecorderError {
    host: String,
    what: String,
}

impl EventRecorder {
    /// Joins the event group inside `ns` and starts recording.
    pub fn start(ns: &Netns, host: &str) -> Result<EventRecorder, RecorderError> {
        let err = |what: String| RecorderError { host: host.to_owned(), what };
        let sock = NlSocket::open(ns).map_err(|e| err(e.to_string()))?;
        let fam = sock.family(MPTCP_PM_NAME, Duration::from_secs(5)).map_err(|e| err(e.to_string()))?;
        let group = fam
            .mcast_group(MPTCP_PM_EV_GRP_NAME)
            .ok_or_else(|| err(format!("family {MPTCP_PM_NAME} has no {MPTCP_PM_EV_GRP_NAME} group")))?;
        sock.set_rcvbuf(4 << 20).map_err(|e| err(e.to_string()))?;
        sock.join_group(group).map_err(|e| err(e.to_string()))?;
        // SAFETY: plain eventfd(2); checked below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(err(format!("eventfd: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: fresh descriptor we own.
        let stop = unsafe { OwnedFd::from_raw_fd(raw) };
        let stop_r = stop.try_clone().map_err(|e| err(format!("dup eventfd: {e}")))?;
        let shared = Arc::new(Shared::default());
        let sh = Arc::clone(&shared);
        let t0 = Instant::now();
        let thread = std::thread::Builder::new()
            .name(format!("events-{host}"))
            .spawn(move || record(sock, stop_r, sh, t0))
            .map_err(|e| err(format!("spawn the recorder thread: {e}")))?;
        Ok(EventRecorder { host: host.to_owned(), shared, stop, thread: Some(thread) })
    }

    /// The host recorded.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A copy of the log so far.
    pub fn snapshot(&self) -> EventLog {
        self.shared.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `pred` holds on the log or the deadline passes; returns whether it held.
    /// Woken by every new event (no polling).
    pub fn wait_for(&self, deadline: Deadline, mut pred: impl FnMut(&EventLog) -> bool) -> bool {
        let mut log = self.shared.log.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if pred(&log) {
                return true;
            }
            if deadline.passed() || log.error.is_some() {
                return false;
            }
            log = self.shared.changed.wait_timeout(log, deadline.remaining()).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Stops recording and returns the log.
    pub fn stop(mut self) -> EventLog {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), (&raw const one).cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EventRecorder {
    fn drop(&mut self) {
        self.halt();
    }
}

fn record(sock: NlSocket, stop: OwnedFd, shared: Arc<Shared>, t0: Instant) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN), PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return fail(&shared, format!("poll: {e}")),
        }
        let stop_now = fds[1].revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
        // Drain everything queued (also when stopping: events before the stop count).
        loop {
            match sock.recv(&mut buf, Deadline::after(Duration::ZERO)) {
                Ok(Some(n)) => {
                    let at = t0.elapsed();
                    let mut log = shared.log.lock().unwrap_or_else(|p| p.into_inner());
                    for m in nl::messages(&buf[..n]) {
                        match m {
                            Ok(NlMessage::Data(d)) => {
                                let mut whole = d.header.to_bytes().to_vec();
                                whole.extend_from_slice(&d.payload);
                                match Event::decode_message(&whole) {
                                    Ok(event) => log.events.push(Recorded { at, event }),
                                    Err(e) => log.error = Some(format!("undecodable event: {e}")),
                                }
                            }
                            Ok(_) => {}
                            Err(e) => log.error = Some(format!("bad netlink framing: {e}")),
                        }
                    }
                    drop(log);
                    shared.changed.notify_all();
                }
                Ok(None) => break,
                Err(GenlError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOBUFS) => {
                    shared.log.lock().unwrap_or_else(|p| p.into_inner()).overflow = true;
                    shared.changed.notify_all();
                }
                Err(e) => return fail(&shared, e.to_string()),
            }
        }
        if stop_now {
            return;
        }
    }
}

fn fail(shared: &Shared, what: String) {
    shared.log.lock().unwrap_or_else(|p| p.into_inner()).error = Some(what);
    shared.changed.notify_all();
}
