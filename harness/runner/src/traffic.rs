//! Sockets and transfers.
//!
//! Sockets are created inside their host's namespace (on a short-lived thread) and used from
//! any thread afterwards. A transfer sends a deterministic pseudo-random byte stream each way
//! and the receiver checks every byte against the same stream, so a corruption is reported
//! with its offset, not just as a hash mismatch. Every blocking step (connect, accept, the
//! transfer loop) is non-blocking I/O driven by poll(2) with the remaining time of a deadline.
//!
//! The layers, bottom up:
//!
//! - socket set-up: [`client_socket_with`] and [`listener_with`] apply the options a case asks
//!   for (`SO_SNDBUF`, `SO_RCVBUF`, `SO_MARK`, `IP_TRANSPARENT`, `TCP_FASTOPEN`) before
//!   connect()/listen(), like `mptcp_connect` does;
//! - connection life: [`connect`], [`Stream::connect_fastopen`] (`sendto(MSG_FASTOPEN)`),
//!   [`accept`], [`wait_closed`] + [`disconnect`] (`connect(AF_UNSPEC)`, `mptcp_connect -I`);
//! - the [`Stream`] pump (`stream.rs`): one side of a transfer, with its byte source and sink
//!   (`mptcp_connect -m` I/O modes, `-P` peek modes), pacing and the abortive close.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use mptcp_spec::case::Proto;
use mptcp_spec::errno;

use crate::netns::{Netns, NetnsError};
use crate::wait::{Deadline, poll_until};

mod stream;

pub use stream::{Pattern, Release, Stream, Transfer};

/// A socket call that failed: which host, which call with which arguments, which errno.
#[derive(Debug, thiserror::Error)]
pub enum SockError {
    /// The namespace thread failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A system call failed.
    #[error("{host}: {call}: {}", errno::describe(*errno))]
    Sys { host: String, call: String, errno: i32 },
    /// A deadline passed.
    #[error("{host}: {what}: no progress before the deadline ({detail})")]
    Timeout { host: String, what: String, detail: String },
    /// The peer's bytes were not what was sent.
    #[error("{host}: received data differs from what was sent at byte offset {offset}")]
    Corrupt { host: String, offset: u64 },
    /// The stream ended early or carried too much.
    #[error("{host}: received {got} bytes, expected {want}")]
    Length { host: String, got: u64, want: u64 },
    /// `recv(MSG_PEEK)` and the read(2) after it disagree.
    #[error("{host}: at stream offset {offset}: {detail}")]
    Peek { host: String, offset: u64, detail: String },
}

impl SockError {
    /// The errno of a failed system call, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SockError::Sys { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

fn sys(host: &str, call: impl Into<String>, e: &io::Error) -> SockError {
    SockError::Sys { host: host.to_owned(), call: call.into(), errno: e.raw_os_error().unwrap_or(0) }
}

fn protocol(p: Proto) -> Protocol {
    match p {
        Proto::Mptcp => Protocol::MPTCP,
        Proto::Tcp => Protocol::TCP,
    }
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Mptcp => "IPPROTO_MPTCP",
        Proto::Tcp => "IPPROTO_TCP",
    }
}

fn domain_of(a: IpAddr) -> Domain {
    if a.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 }
}

/// Socket options set before connect() or listen(), as `mptcp_connect` sets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockSetup {
    /// `SO_SNDBUF` (`-S`).
    pub sndbuf: Option<u32>,
    /// `SO_RCVBUF` (`-R`).
    pub rcvbuf: Option<u32>,
    /// `SO_MARK` (`-M`).
    pub mark: Option<u32>,
    /// Listener only: `IP_TRANSPARENT` / `IPV6_TRANSPARENT` (`-o TRANSPARENT`).
    pub transparent: bool,
    /// Listener only: `TCP_FASTOPEN` with a queue of 25 (`-o MPTFO`).
    pub fastopen: bool,
}

fn setsockopt_int(sock: &Socket, host: &str, level: libc::c_int, name: libc::c_int, what: &str, val: libc::c_int) -> Result<(), SockError> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val` lives across the call and `len` is its size.
    let r = unsafe { libc::setsockopt(sock.as_raw_fd(), level, name, (&raw const val).cast(), len) };
    if r < 0 {
        return Err(sys(host, format!("setsockopt({what}, {val})"), &io::Error::last_os_error()));
    }
    Ok(())
}

fn apply_common(sock: &Socket, host: &str, setup: &SockSetup) -> Result<(), SockError> {
    let int = |v: u32| libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
    if let Some(n) = setup.sndbuf {
        setsockopt_int(sock, host, libc::SOL_SOCKET, libc::SO_SNDBUF, "SO_SNDBUF", int(n))?;
    }
    if let Some(n) = setup.rcvbuf {
        setsockopt_int(sock, host, libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF", int(n))?;
    }
    if let Some(m) = setup.mark {
        // The mark is a u32; setsockopt takes its bits as an int.
        setsockopt_int(sock, host, libc::SOL_SOCKET, libc::SO_MARK, "SO_MARK", m as libc::c_int)?;
    }
    Ok(())
}

/// Creates a client socket inside `ns` (`socket(family, SOCK_STREAM, proto)`), non-blocking.
pub fn client_socket(ns: &Netns, host: &str, dst: IpAddr, proto: Proto) -> Result<Socket, SockError> {
    client_socket_with(ns, host, dst, proto, &SockSetup::default())
}

/// [`client_socket`] with socket options set before connect().
pub fn client_socket_with(ns: &Netns, host: &str, dst: IpAddr, proto: Proto, setup: &SockSetup) -> Result<Socket, SockError> {
    ns.run(|| {
        let s = Socket::new(domain_of(dst), Type::STREAM.cloexec(), Some(protocol(proto)))
            .map_err(|e| sys(host, format!("socket({:?}, SOCK_STREAM, {})", domain_of(dst), proto_name(proto)), &e))?;
        apply_common(&s, host, setup)?;
        s.set_nonblocking(true).map_err(|e| sys(host, "fcntl(O_NONBLOCK)", &e))?;
        Ok(s)
    })?
}

/// Creates, binds and listens inside `ns`; an unspecified IPv6 address accepts IPv4 too.
pub fn listener(ns: &Netns, host: &str, addr: IpAddr, port: u16, proto: Proto) -> Result<Socket, SockError> {
    listener_with(ns, host, addr, port, proto, &SockSetup::default())
}

/// [`listener`] with socket options set before bind() and listen().
pub fn listener_with(ns: &Netns, host: &str, addr: IpAddr, port: u16, proto: Proto, setup: &SockSetup) -> Result<Socket, SockError> {
    listener_at(ns, host, SocketAddr::new(addr, port), proto, setup)
}

/// [`listener_with`] on a full socket address (an IPv6 scope id for a link-local address).
pub fn listener_at(ns: &Netns, host: &str, sa: SocketAddr, proto: Proto, setup: &SockSetup) -> Result<Socket, SockError> {
    let addr = sa.ip();
    ns.run(|| {
        let s = Socket::new(domain_of(addr), Type::STREAM.cloexec(), Some(protocol(proto)))
            .map_err(|e| sys(host, format!("socket({:?}, SOCK_STREAM, {})", domain_of(addr), proto_name(proto)), &e))?;
        s.set_reuse_address(true).map_err(|e| sys(host, "setsockopt(SO_REUSEADDR)", &e))?;
        if addr.is_ipv6() {
            s.set_only_v6(false).map_err(|e| sys(host, "setsockopt(IPV6_V6ONLY, 0)", &e))?;
        }
        apply_common(&s, host, setup)?;
        if setup.transparent {
            if addr.is_ipv4() {
                setsockopt_int(&s, host, libc::SOL_IP, libc::IP_TRANSPARENT, "IP_TRANSPARENT", 1)?;
            } else {
                setsockopt_int(&s, host, libc::SOL_IPV6, libc::IPV6_TRANSPARENT, "IPV6_TRANSPARENT", 1)?;
            }
        }
        if setup.fastopen {
            setsockopt_int(&s, host, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, "TCP_FASTOPEN", 25)?;
        }
        s.bind(&SockAddr::from(sa)).map_err(|e| sys(host, format!("bind({sa})"), &e))?;
        s.listen(128).map_err(|e| sys(host, format!("listen({sa})"), &e))?;
        s.set_nonblocking(true).map_err(|e| sys(host, "fcntl(O_NONBLOCK)", &e))?;
        Ok(s)
    })?
}

fn wait_fd(sock: &Socket, flags: PollFlags, deadline: Deadline) -> io::Result<bool> {
    loop {
        let mut fds = [PollFd::new(sock.as_fd(), flags)];
        let t = PollTimeout::from(deadline.poll_timeout_ms(Duration::from_secs(60)));
        match poll(&mut fds, t) {
            Ok(0) => {
                if deadline.passed() {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `connect()` with a deadline; returns once the connection is established. Also the
/// reconnection after [`disconnect`].
pub fn connect(sock: &Socket, host: &str, dst: SocketAddr, deadline: Deadline) -> Result<(), SockError> {
    let call = format!("connect({dst})");
    match sock.connect(&SockAddr::from(dst)) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(sys(host, call, &e)),
    }
    wait_connected(sock, host, &call, deadline)
}

/// Waits for a connection in progress: writable, then `SO_ERROR` says how it ended.
fn wait_connected(sock: &Socket, host: &str, call: &str, deadline: Deadline) -> Result<(), SockError> {
    if !wait_fd(sock, PollFlags::POLLOUT, deadline).map_err(|e| sys(host, "poll", &e))? {
        return Err(SockError::Timeout { host: host.into(), what: call.into(), detail: "handshake not complete".into() });
    }
    match sock.take_error() {
        Ok(None) => Ok(()),
        Ok(Some(e)) => Err(sys(host, call, &e)),
        Err(e) => Err(sys(host, "getsockopt(SO_ERROR)", &e)),
    }
}

/// `accept()` with a deadline; the accepted socket is non-blocking.
pub fn accept(listener: &Socket, host: &str, deadline: Deadline) -> Result<Socket, SockError> {
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(true).map_err(|e| sys(host, "fcntl(O_NONBLOCK)", &e))?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(sys(host, "accept", &e)),
        }
        if !wait_fd(listener, PollFlags::POLLIN, deadline).map_err(|e| sys(host, "poll", &e))? {
            return Err(SockError::Timeout { host: host.into(), what: "accept".into(), detail: "no connection arrived".into() });
        }
    }
}

/// `TCP_CLOSE` in `tcpi_state` (include/net/tcp_states.h).
const TCP_CLOSE: u8 = 7;

fn tcp_state_name(s: u8) -> &'static str {
    const NAMES: [&str; 13] = [
        "?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT",
        "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
    ];
    NAMES.get(usize::from(s)).copied().unwrap_or("?")
}

/// `tcpi_state` from `getsockopt(SOL_TCP, TCP_INFO)`; on an MPTCP socket the kernel answers
/// for the first subflow.
fn tcp_state(sock: &Socket) -> io::Result<u8> {
    let mut buf = [0u8; 256];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` and `len` outlive the call; `len` holds the buffer size.
    let r = unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_TCP, libc::TCP_INFO, buf.as_mut_ptr().cast(), &raw mut len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf[0])
}

/// Waits until a connection whose both directions are shut is fully closed (`TCP_INFO` state
/// CLOSE: for MPTCP the DATA_FIN exchange is over and the subflow closed). A disconnect before
/// that would drop what is still in flight and reset the subflows (MP_FASTCLOSE); the
/// upstream test waits the same way (`ss -M` no longer lists the socket). There is no
/// readiness signal for it: the state is polled, bounded by the deadline.
pub fn wait_closed(sock: &Socket, host: &str, deadline: Deadline) -> Result<(), SockError> {
    let mut last = 0;
    let r = poll_until(deadline, || match tcp_state(sock) {
        Ok(TCP_CLOSE) => Some(Ok(())),
        Ok(s) => {
            last = s;
            None
        }
        Err(e) => Some(Err(sys(host, "getsockopt(SOL_TCP, TCP_INFO)", &e))),
    });
    r.unwrap_or_else(|()| {
        Err(SockError::Timeout {
            host: host.into(),
            what: "waiting for the connection to close before connect(AF_UNSPEC)".into(),
            detail: format!("TCP state still {}", tcp_state_name(last)),
        })
    })
}

/// Disconnects a connected socket with `connect(AF_UNSPEC)` (the socket can connect again).
pub fn disconnect(sock: &Socket, host: &str) -> Result<(), SockError> {
    // SAFETY: an all-zero sockaddr is a valid value; only the family is set.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sockaddr>() as libc::socklen_t;
    // SAFETY: `sa` outlives the call and `len` is its size.
    let r = unsafe { libc::connect(sock.as_raw_fd(), &raw const sa, len) };
    if r < 0 {
        return Err(sys(host, "connect(AF_UNSPEC)", &io::Error::last_os_error()));
    }
    Ok(())
}

fn is_reset(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ECONNABORTED))
}

/// Closes abortively: SO_LINGER {on, 0} then close, which makes MPTCP send MP_FASTCLOSE.
pub fn abortive_close(sock: Socket, host: &str) -> Result<(), SockError> {
    sock.set_linger(Some(Duration::ZERO)).map_err(|e| sys(host, "setsockopt(SO_LINGER, 0)", &e))?;
    drop(sock);
    Ok(())
}
