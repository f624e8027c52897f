//! A generic-netlink socket of one namespace: request/response with deadlines and the
//! kernel's extended ACK kept (the text a user needs when the kernel refuses something).
//!
//! The socket is a plain `AF_NETLINK` socket created inside the namespace; framing and
//! decoding are `mptcp_wire`'s pure codecs.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mptcp_wire::genl::{FamilyInfo, GenlMsgHdr, get_family_request};
use mptcp_wire::nl::{self, DataMessage, ExtAck, NlMessage};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::netns::{Netns, NetnsError};
use crate::wait::Deadline;

const SOL_NETLINK: i32 = 270;
const NETLINK_ADD_MEMBERSHIP: i32 = 1;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;

/// A failed generic-netlink exchange.
#[derive(Debug, thiserror::Error)]
pub enum GenlError {
    /// Namespace entry failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A socket call failed.
    #[error("{op}: {source}")]
    Io { op: String, source: io::Error },
    /// The kernel refused the request.
    #[error("{}{}", mptcp_spec::errno::describe(*errno), ext_ack.msg.as_ref().map(|m| format!(": \"{m}\"")).unwrap_or_default())]
    Refused { errno: i32, ext_ack: ExtAck },
    /// No complete answer before the deadline.
    #[error("no answer from the kernel within {0:?}")]
    Timeout(Duration),
    /// The answer did not decode.
    #[error("undecodable answer: {0}")]
    Decode(String),
}

impl GenlError {
    /// The errno of a refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            GenlError::Refused { errno, .. } => Some(*errno),
            _ => None,
        }
    }
    /// The extended-ACK text of a refusal.
    pub fn ext_ack_msg(&self) -> Option<&str> {
        match self {
            GenlError::Refused { ext_ack, .. } => ext_ack.msg.as_deref(),
            _ => None,
        }
    }
}

/// A netlink socket living in one namespace.
#[derive(Debug)]
pub struct NlSocket {
    fd: OwnedFd,
    seq: AtomicU32,
}

fn io_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> GenlError {
    let op = op.into();
    move |source| GenlError::Io { op, source }
}

fn setopt(fd: &OwnedFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` outlives the call; its size is passed.
    let r = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (&raw const value).cast(), size_of::<i32>() as u32)
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

impl NlSocket {
    /// Opens a `NETLINK_GENERIC` socket inside `ns` with extended ACKs on, bound (autobind)
    /// and connected to the kernel.
    pub fn open(ns: &Netns) -> Result<NlSocket, GenlError> {
        Self::open_with(ns, false)
    }

    /// Like [`NlSocket::open`]; with `unprivileged`, the socket is created by a thread that
    /// has dropped every effective capability first, so the kernel judges its requests as
    /// an unprivileged user's (the socket file keeps its creator's credentials).
    pub fn open_with(ns: &Netns, unprivileged: bool) -> Result<NlSocket, GenlError> {
        Self::open_protocol(ns, libc::NETLINK_GENERIC, unprivileged)
    }

    /// A `NETLINK_ROUTE` socket inside `ns`, with the same request/response and extended
    /// ACKs (routes and rules whose refusal must carry the kernel's text).
    pub fn open_route(ns: &Netns) -> Result<NlSocket, GenlError> {
        Self::open_protocol(ns, libc::NETLINK_ROUTE, false)
    }

    fn open_protocol(ns: &Netns, protocol: i32, unprivileged: bool) -> Result<NlSocket, GenlError> {
        let fd = ns.run(|| -> io::Result<OwnedFd> {
            if unprivileged {
                drop_effective_caps()?;
            }
            crate::probe::netlink::nl_socket(protocol)
        })?
        .map_err(io_err(format!("open a netlink socket (protocol {protocol}) in {}", ns.name())))?;
        setopt(&fd, SOL_NETLINK, NETLINK_EXT_ACK, 1).map_err(io_err("setsockopt(NETLINK_EXT_ACK)"))?;
        setopt(&fd, SOL_NETLINK, NETLINK_CAP_ACK, 1).map_err(io_err("setsockopt(NETLINK_CAP_ACK)"))?;
        Ok(NlSocket { fd, seq: AtomicU32::new(1) })
    }

    /// Joins a multicast group (events).
    pub fn join_group(&self, group: u32) -> Result<(), GenlError> {
        setopt(&self.fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group as i32).map_err(io_err(format!("join multicast group {group}")))
    }

    /// Sets the receive buffer (SO_RCVBUFFORCE, root) so bursts of events are not dropped.
    pub fn set_rcvbuf(&self, bytes: i32) -> Result<(), GenlError> {
        setopt(&self.fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).map_err(io_err("setsockopt(SO_RCVBUFFORCE)"))
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends one encoded request and collects the data messages of its answer (a reply, or
    /// every part of a dump) until the ack / done; a refusal is [`GenlError::Refused`].
    pub fn request(&self, bytes: &[u8], seq: u32, timeout: Duration) -> Result<Vec<DataMessage>, GenlError> {
        // SAFETY: `bytes` is valid for its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(io_err("send a netlink request")(io::Error::last_os_error()));
        }
        let deadline = Deadline::after(timeout);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Some(len) = self.recv(&mut buf, deadline)? else {
                return Err(GenlError::Timeout(timeout));
            };
            let msgs = nl::parse_messages(&buf[..len]).map_err(|e| GenlError::Decode(e.to_string()))?;
            for m in msgs {
                if m.header().seq != seq {
                    continue;
                }
                match m {
                    // Requests carry NLM_F_ACK: a reply is always followed by an ack (or, for
                    // a dump, by NLMSG_DONE), so collect until then.
                    NlMessage::Data(d) => out.push(d),
                    NlMessage::Ack(_) => return Ok(out),
                    NlMessage::Done(d) if d.errno == 0 => return Ok(out),
                    NlMessage::Done(d) => return Err(GenlError::Refused { errno: d.errno, ext_ack: d.ext_ack }),
                    NlMessage::Error(e) => return Err(GenlError::Refused { errno: e.errno, ext_ack: e.ext_ack }),
                }
            }
        }
    }

    /// Receives one datagram, waiting until `deadline`; `None` on timeout.
    pub fn recv(&self, buf: &mut [u8], deadline: Deadline) -> Result<Option<usize>, GenlError> {
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(deadline.poll_timeout_ms(Duration::from_secs(60)))) {
                Ok(0) if deadline.passed() => return Ok(None),
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(io_err("poll a netlink socket")(e.into())),
            }
            // SAFETY: `buf` is valid for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => return Err(io_err("recv from a netlink socket")(e)),
            }
        }
    }

    /// The raw descriptor (poll sets).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Resolves a generic-netlink family by name (CTRL_CMD_GETFAMILY).
    pub fn family(&self, name: &str, timeout: Duration) -> Result<FamilyInfo, GenlError> {
        let seq = self.next_seq();
        let msgs = self.request(&get_family_request(name, seq), seq, timeout)?;
        let d = msgs.first().ok_or_else(|| GenlError::Decode(format!("no reply to GETFAMILY {name}")))?;
        FamilyInfo::decode(&d.payload).map_err(|e| GenlError::Decode(e.to_string()))
    }
}

/// Clears the calling thread's effective capability set (capset(2), version 3). Only ever
/// called on a short-lived namespace thread.
fn drop_effective_caps() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut hdr = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: header and a 2-element data array as capget(2) v3 requires.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut hdr, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for d in &mut data {
        d.effective = 0;
    }
    // SAFETY: as above; only this thread's sets change.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut hdr, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The generic-netlink header of a data message.
pub fn genl_header(d: &DataMessage) -> Option<GenlMsgHdr> {
    GenlMsgHdr::parse(&d.payload).ok().map(|(h, _)| h)
}
