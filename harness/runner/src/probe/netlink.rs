//! A minimal netlink request/response socket for the probes (rtnetlink, sock_diag): send one
//! request, collect the answer's data messages until the ack or `NLMSG_DONE`, keep the
//! kernel's errno and extended-ACK text.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mptcp_wire::nl::{self, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NlMessage, NlMsgHdr};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::wait::Deadline;

/// A netlink socket of any protocol, opened inside a namespace.
pub(crate) fn nl_socket(protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); checked below.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: zeroed sockaddr_nl is valid (nl_pid 0: the kernel).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    let len = size_of::<libc::sockaddr_nl>() as u32;
    // SAFETY: `sa` outlives the call; its size is passed.
    if unsafe { libc::connect(fd.as_raw_fd(), (&raw const sa).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    for opt in [nl::NETLINK_EXT_ACK, nl::NETLINK_CAP_ACK] {
        let one: i32 = 1;
        // SAFETY: `one` outlives the call; its size is passed.
        unsafe { libc::setsockopt(fd.as_raw_fd(), nl::SOL_NETLINK, opt, (&raw const one).cast(), 4) };
    }
    Ok(fd)
}

/// A refused netlink request: errno and the extended-ACK text.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) errno: i32,
    pub(crate) msg: Option<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", mptcp_spec::errno::describe(self.errno))?;
        if let Some(m) = &self.msg {
            write!(f, ": \"{m}\"")?;
        }
        Ok(())
    }
}

pub(crate) struct RawNl {
    fd: OwnedFd,
    seq: u32,
}

impl RawNl {
    pub(crate) fn new(fd: OwnedFd) -> RawNl {
        RawNl { fd, seq: 1 }
    }

    /// Sends one request (`NLM_F_REQUEST`, plus `NLM_F_ACK` unless a dump) and collects the
    /// data messages of the answer until the ack or `NLMSG_DONE`; one second at most.
    pub(crate) fn request(&mut self, msg_type: u16, flags: u16, payload: &[u8]) -> Result<Vec<nl::DataMessage>, Refusal> {
        self.seq += 1;
        let seq = self.seq;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let flags = flags | NLM_F_REQUEST | if dump { 0 } else { NLM_F_ACK };
        let bytes = NlMsgHdr::new(msg_type, flags, seq).encode_message(payload);
        let io_err = |e: io::Error| Refusal { errno: e.raw_os_error().unwrap_or(libc::EIO), msg: Some(e.to_string()) };
        // SAFETY: `bytes` is valid for its length.
        if unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) } < 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        let deadline = Deadline::after(Duration::from_secs(1));
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(deadline.poll_timeout_ms(Duration::from_secs(1)))) {
                Ok(0) if deadline.passed() => return Err(Refusal { errno: libc::ETIMEDOUT, msg: Some("no answer within 1 s".into()) }),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io_err(e.into())),
            }
            // SAFETY: `buf` is valid for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                    continue;
                }
                return Err(io_err(e));
            }
            let msgs = nl::parse_messages(&buf[..n as usize]).map_err(|e| Refusal { errno: libc::EBADMSG, msg: Some(e.to_string()) })?;
            for m in msgs {
                if m.header().seq != seq {
                    continue;
                }
                match m {
                    NlMessage::Data(d) => out.push(d),
                    NlMessage::Ack(_) => return Ok(out),
                    NlMessage::Done(d) if d.errno == 0 => return Ok(out),
                    NlMessage::Done(d) => return Err(Refusal { errno: d.errno, msg: d.ext_ack.msg }),
                    NlMessage::Error(e) => return Err(Refusal { errno: e.errno, msg: e.ext_ack.msg }),
                }
            }
        }
    }
}

