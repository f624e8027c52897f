//! A `NETLINK_SOCK_DIAG` socket inside a host: one request at a time, answers read with
//! poll(2) under a deadline. The bytes are `mptcp_wire::diag`'s.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mptcp_wire::diag::{AF_INET, AF_INET6, DiagMsg, DiagReply, DiagRequest, NETLINK_SOCK_DIAG, parse_replies};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::topology::Host;
use crate::wait::Deadline;

/// An open `NETLINK_SOCK_DIAG` socket of one host.
#[derive(Debug)]
pub(crate) struct DiagSocket {
    fd: OwnedFd,
    host: String,
    seq: u32,
    buf: Vec<u8>,
}

impl DiagSocket {
    /// Opens the socket inside `host`'s namespace (sock_diag answers about the namespace of
    /// the socket that asks).
    pub(crate) fn open(host: &Host) -> Result<Self, String> {
        let fd = host
            .ns
            .run(|| {
                // SAFETY: plain socket(2); the result is checked before being owned.
                let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: a fresh descriptor, owned from here on.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .map_err(|e| format!("{}: open a NETLINK_SOCK_DIAG socket: {e}", host.name))?
            .map_err(|e| format!("{}: socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG): {e}", host.name))?;
        Ok(DiagSocket { fd, host: host.name.clone(), seq: 0, buf: vec![0u8; 256 * 1024] })
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        // SAFETY: sockaddr_nl is plain data; zeroed (pid 0: the kernel) is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `msg` and `sa` outlive the call; their sizes are passed.
        let r = unsafe {
            libc::sendto(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0, (&raw const sa).cast(), std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t)
        };
        if r < 0 {
            return Err(format!("{}: sock_diag sendto: {}", self.host, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Receives one batch of messages.
    fn recv(&mut self, deadline: Deadline) -> Result<Vec<DiagReply>, String> {
        loop {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), libc::MSG_DONTWAIT) };
            if n >= 0 {
                return parse_replies(&self.buf[..n as usize]).map_err(|e| format!("{}: sock_diag answer: {e}", self.host));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("{}: sock_diag recv: {e}", self.host));
            }
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(deadline.poll_timeout_ms(Duration::from_secs(60)))) {
                Ok(0) if deadline.passed() => return Err(format!("{}: sock_diag: no answer before the deadline", self.host)),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("{}: sock_diag poll: {e}", self.host)),
            }
        }
    }

    /// A dump (`NLM_F_DUMP`): every socket the request selects, up to `NLMSG_DONE`.
    pub(crate) fn dump(&mut self, req: &DiagRequest, deadline: Deadline) -> Result<Vec<DiagMsg>, String> {
        self.seq += 1;
        let seq = self.seq;
        self.send(&req.encode(true, seq))?;
        let mut out = Vec::new();
        loop {
            for r in self.recv(deadline)? {
                match r {
                    DiagReply::Sock(h, m) if h.seq == seq => out.push(m),
                    DiagReply::Sock(..) | DiagReply::Ack | DiagReply::Other(_) => {}
                    DiagReply::Done(0) => return Ok(out),
                    DiagReply::Done(e) | DiagReply::Error(e) => {
                        return Err(format!("{}: sock_diag dump {req:?}: {}", self.host, mptcp_spec::errno::describe(e)));
                    }
                }
            }
        }
    }

    /// The same dump for `AF_INET` then `AF_INET6` (`ss` asks per family too).
    pub(crate) fn dump_both(&mut self, req: &DiagRequest, deadline: Deadline) -> Result<Vec<DiagMsg>, String> {
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            out.extend(self.dump(&DiagRequest { family, ..req.clone() }, deadline)?);
        }
        Ok(out)
    }

    /// A dump-one (no `NLM_F_DUMP`): the socket, or the errno the kernel refused with.
    pub(crate) fn get(&mut self, req: &DiagRequest, deadline: Deadline) -> Result<Result<DiagMsg, i32>, String> {
        self.seq += 1;
        let seq = self.seq;
        self.send(&req.encode(false, seq))?;
        loop {
            for r in self.recv(deadline)? {
                match r {
                    DiagReply::Sock(h, m) if h.seq == seq => return Ok(Ok(m)),
                    DiagReply::Error(e) => return Ok(Err(e)),
                    _ => {}
                }
            }
        }
    }
}
