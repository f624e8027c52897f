//! Kernel health: splats (WARN, BUG, Oops, KASAN, lockdep, hung tasks, UBSAN) in the kernel
//! log while a case runs.
//!
//! [`Watch::start`] opens `/dev/kmsg` non-blocking and seeks to its end (only records logged
//! from then on are read), and a thread blocks in poll(2) on it and on an eventfd that stops
//! it; it feeds each record to a [`SplatCollector`]. [`Watch::finish`] stops the thread, which
//! first reads what is left, and returns the splats, each as its lines.
//!
//! Only kernel records count (facility 0: user space cannot write those through /dev/kmsg).
//! A splat starts at a line that begins with `WARNING:`, `BUG:`, `Oops`, `KASAN:`, `UBSAN:`,
//! `INFO: task ... blocked`, `kernel BUG at`, `general protection fault` or contains `possible
//! circular locking`; the kernel lines after it belong to it until its `---[ end trace` line,
//! the next splat, or [`MAX_LINES`]. The kernel log is global: a splat caused by a case running
//! beside this one shows up here too (it still says the kernel was not healthy meanwhile).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Lines kept per splat (the first included).
pub const MAX_LINES: usize = 80;
/// Splats kept per case; more are counted.
pub const MAX_SPLATS: usize = 16;

/// Watches the kernel log from the moment it is started.
#[derive(Debug)]
pub struct Watch {
    stop: OwnedFd,
    thread: Option<JoinHandle<SplatCollector>>,
}

impl Watch {
    /// Starts watching (`None` if /dev/kmsg cannot be read, or `MPTCP_CT_KMSG=0`).
    pub fn start() -> Option<Watch> {
        if !crate::env::kmsg() {
            return None;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/kmsg")
            .ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        // SAFETY: plain eventfd(2); checked below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor we own.
        let stop = unsafe { OwnedFd::from_raw_fd(raw) };
        let stop_r = stop.try_clone().ok()?;
        let thread = std::thread::Builder::new().name("kmsg".into()).spawn(move || watch(file, stop_r)).ok()?;
        Some(Watch { stop, thread: Some(thread) })
    }

    /// Stops and returns the splats seen since the start, each with its lines.
    pub fn finish(mut self) -> Vec<String> {
        self.halt().map(SplatCollector::finish).unwrap_or_default()
    }

    /// Stops and returns what was read: splats and how many kernel records were seen.
    pub fn finish_detailed(mut self) -> Option<SplatCollector> {
        self.halt()
    }

    fn halt(&mut self) -> Option<SplatCollector> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), (&raw const one).cast(), 8) };
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

fn watch(mut file: File, stop: OwnedFd) -> SplatCollector {
    let mut splats = SplatCollector::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let stopping = {
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN), PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => fds[1].revents().is_some_and(|r| !r.is_empty()),
                Err(nix::errno::Errno::EINTR) => false,
                Err(_) => true,
            }
        };
        // Read every pending record (also after the stop: what was logged until then counts).
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => splats.push_record(&String::from_utf8_lossy(&buf[..n])),
                // EPIPE: records were overwritten before we read them; go on from the next.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => splats.lost += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break, // EAGAIN: nothing more for now
            }
        }
        if stopping {
            return splats;
        }
    }
}

/// One `/dev/kmsg` record: `prio,seq,usec,flags[,...];text\n` then ` KEY=value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Syslog facility (0: the kernel).
    pub facility: u32,
    /// Level (0 emergency .. 7 debug).
    pub level: u32,
    /// The message text (escapes as the kernel wrote them, e.g. `\x0a`).
    pub text: &'a str,
}

/// Parses one record as read from /dev/kmsg (`None` if it is not one).
pub fn parse_record(rec: &str) -> Option<Record<'_>> {
    let (header, rest) = rec.split_once(';')?;
    let prio: u32 = header.split(',').next()?.trim().parse().ok()?;
    let text = rest.split('\n').next().unwrap_or("");
    Some(Record { facility: prio >> 3, level: prio & 7, text })
}

/// Whether a kernel log line starts a splat.
pub fn starts_splat(line: &str) -> bool {
    let l = line.trim_start();
    const PREFIXES: [&str; 7] = ["WARNING:", "BUG:", "Oops", "KASAN:", "UBSAN:", "kernel BUG at", "general protection fault"];
    PREFIXES.iter().any(|p| l.starts_with(p))
        || l.contains("possible circular locking")
        || (l.starts_with("INFO: task ") && l.contains(" blocked"))
}

/// Groups kernel log lines into splats (a pure state machine: feed lines, then `finish`).
#[derive(Debug, Clone, Default)]
pub struct SplatCollector {
    splats: Vec<Vec<String>>,
    open: bool,
    extra: usize,
    /// Kernel records seen.
    pub records: usize,
    /// User-space records seen (ignored).
    pub user_records: usize,
    /// Records the kernel overwrote before they were read.
    pub lost: usize,
}

impl SplatCollector {
    /// Feeds one raw /dev/kmsg record; records from user space are ignored.
    pub fn push_record(&mut self, rec: &str) {
        match parse_record(rec) {
            Some(r) if r.facility == 0 => {
                self.records += 1;
                self.push_line(r.text);
            }
            Some(_) => self.user_records += 1,
            None => {}
        }
    }

    /// Feeds one kernel log line.
    pub fn push_line(&mut self, line: &str) {
        if starts_splat(line) {
            if self.splats.len() >= MAX_SPLATS {
                self.extra += 1;
                self.open = false;
                return;
            }
            self.splats.push(vec![line.trim_end().to_owned()]);
            self.open = true;
            return;
        }
        if !self.open {
            return;
        }
        let Some(cur) = self.splats.last_mut() else { return };
        if cur.len() < MAX_LINES {
            cur.push(line.trim_end().to_owned());
        }
        if line.contains("---[ end trace") || line.contains("---[ end Kernel panic") || cur.len() >= MAX_LINES {
            self.open = false;
        }
    }

    /// The splats, each as its lines joined by newlines (plus a note if some were dropped).
    pub fn finish(self) -> Vec<String> {
        let mut out: Vec<String> = self.splats.into_iter().map(|l| l.join("\n")).collect();
        if self.extra > 0 {
            out.push(format!("(and {} more splat(s) not kept)", self.extra));
        }
        out
    }
}

/// The splats in a sequence of kernel log lines (as `dmesg` prints them, without timestamps).
pub fn find_splats<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut c = SplatCollector::default();
    for l in lines {
        c.push_line(l);
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WARN_ON in the MPTCP code, as 6.x prints it, with unrelated lines around it.
    const WARN: &str = "\
IPv6: ADDRCONF(NETDEV_CHANGE): ns2eth1: link becomes ready
------------[ cut here ]------------
WARNING: CPU: 1 PID: 4242 at net/mptcp/protocol.c:1234 __mptcp_clean_una+0x1f0/0x200
Modules linked in: veth
CPU: 1 UID: 0 PID: 4242 Comm: mptcp-conforman Not tainted 6.18.0 #1
RIP: 0010:__mptcp_clean_una+0x1f0/0x200
Call Trace:
 <TASK>
 mptcp_recvmsg+0x12/0x300
 </TASK>
---[ end trace 0000000000000000 ]---
mptcp: something unrelated afterwards";

    #[test]
    fn a_warning_with_its_trace() {
        let s = find_splats(WARN.lines());
        assert_eq!(s.len(), 1);
        let lines: Vec<&str> = s[0].lines().collect();
        assert_eq!(lines.first(), Some(&"WARNING: CPU: 1 PID: 4242 at net/mptcp/protocol.c:1234 __mptcp_clean_una+0x1f0/0x200"));
        assert_eq!(lines.last(), Some(&"---[ end trace 0000000000000000 ]---"));
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn every_kind_of_splat_starts_one() {
        let starts = [
            "BUG: KASAN: slab-use-after-free in mptcp_pm_nl_rm_addr+0x1/0x2",
            "KASAN: null-ptr-deref in range [0x0000000000000010-0x0000000000000017]",
            "Oops: general protection fault, probably for non-canonical address 0xdffffc0000000002: 0000 [#1] SMP KASAN",
            "general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP",
            "kernel BUG at net/mptcp/subflow.c:1500!",
            "UBSAN: array-index-out-of-bounds in net/mptcp/pm_netlink.c:77:9",
            "WARNING: possible circular locking dependency detected",
            "INFO: task kworker/1:2:97 blocked for more than 120 seconds.",
            "BUG: soft lockup - CPU#0 stuck for 26s! [mptcp_connect:1]",
        ];
        for s in starts {
            assert!(starts_splat(s), "{s}");
        }
        for not in [
            "mptcp: fallback to TCP",
            "INFO: task list follows",
            "systemd[1]: Started BUGS tracker",
            "audit: type=1400 WARNING_ENABLED=1",
            "NOHZ tick-stop error: local softirq work is pending, handler #08!!!",
        ] {
            assert!(!starts_splat(not), "{not}");
        }
    }

    #[test]
    fn lockdep_report_is_bounded_and_a_new_splat_splits() {
        let mut text = String::from("WARNING: possible circular locking dependency detected\n");
        for i in 0..200 {
            text.push_str(&format!("  #{i}: lock chain line\n"));
        }
        text.push_str("BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n in_atomic(): 1\n");
        let s = find_splats(text.lines());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].lines().count(), MAX_LINES);
        assert_eq!(s[1], "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n in_atomic(): 1");
    }

    #[test]
    fn splats_are_capped() {
        let many: Vec<String> = (0..MAX_SPLATS + 3).map(|i| format!("WARNING: CPU: 0 PID: {i} at x.c:1 f+0x0/0x1")).collect();
        let s = find_splats(many.iter().map(String::as_str));
        assert_eq!(s.len(), MAX_SPLATS + 1);
        assert_eq!(s.last().map(String::as_str), Some("(and 3 more splat(s) not kept)"));
    }

    #[test]
    fn records_parse_and_user_space_is_ignored() {
        let r = parse_record("4,1234,5678901,-,caller=T42;WARNING: CPU: 0 PID: 42 at a.c:1 f+0x0/0x1\n SUBSYSTEM=net\n DEVICE=n1\n").unwrap();
        assert_eq!((r.facility, r.level), (0, 4));
        assert_eq!(r.text, "WARNING: CPU: 0 PID: 42 at a.c:1 f+0x0/0x1");
        assert!(parse_record("garbage").is_none());
        let mut c = SplatCollector::default();
        c.push_record("12,99,1,-;WARNING: written by a user process\n"); // facility 1 (user)
        c.push_record("4,100,2,-;WARNING: CPU: 0 PID: 1 at b.c:2 g+0x0/0x1\n");
        c.push_record("4,101,3,c;Modules linked in:\n");
        assert_eq!((c.records, c.user_records), (2, 1));
        assert_eq!(c.finish(), ["WARNING: CPU: 0 PID: 1 at b.c:2 g+0x0/0x1\nModules linked in:"]);
    }

    #[test]
    fn the_watch_reads_new_records_only() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let Some(w) = Watch::start() else { return };
        // A user-space record: counted as read, never a splat (facility 1).
        let _ = std::fs::write("/dev/kmsg", "<4>mptcp-conformance kmsg self-test: WARNING: not a splat\n");
        let c = w.finish_detailed().expect("the watch thread ran");
        assert!(c.user_records >= 1, "the record written after the start was read");
        assert!(c.finish().is_empty());
    }
}
