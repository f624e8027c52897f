//! Sockets and transfers.
//!
//! Sockets are created inside their host's namespace (on a short-lived thread) and used from
//! any thread afterwards. A transfer sends a deterministic pseudo-random byte stream each way
//! and the receiver checks every byte against the same stream, so a corruption is reported
//! with its offset, not just as a hash mismatch. Every blocking step (connect, accept, the
//! transfer loop) is non-blocking I/O driven by poll(2) with the remaining time of a deadline.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use mptcp_spec::case::Proto;
use mptcp_spec::errno;

use crate::netns::{Netns, NetnsError};
use crate::wait::Deadline;

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

/// Creates a client socket inside `ns` (`socket(family, SOCK_STREAM, proto)`), non-blocking.
pub fn client_socket(ns: &Netns, host: &str, dst: IpAddr, proto: Proto) -> Result<Socket, SockError> {
    ns.run(|| {
        let s = Socket::new(domain_of(dst), Type::STREAM.cloexec(), Some(protocol(proto)))
            .map_err(|e| sys(host, format!("socket({:?}, SOCK_STREAM, {})", domain_of(dst), proto_name(proto)), &e))?;
        s.set_nonblocking(true).map_err(|e| sys(host, "fcntl(O_NONBLOCK)", &e))?;
        Ok(s)
    })?
}

/// Creates, binds and listens inside `ns`; an unspecified IPv6 address accepts IPv4 too.
pub fn listener(ns: &Netns, host: &str, addr: IpAddr, port: u16, proto: Proto) -> Result<Socket, SockError> {
    ns.run(|| {
        let sa = SocketAddr::new(addr, port);
        let s = Socket::new(domain_of(addr), Type::STREAM.cloexec(), Some(protocol(proto)))
            .map_err(|e| sys(host, format!("socket({:?}, SOCK_STREAM, {})", domain_of(addr), proto_name(proto)), &e))?;
        s.set_reuse_address(true).map_err(|e| sys(host, "setsockopt(SO_REUSEADDR)", &e))?;
        if addr.is_ipv6() {
            s.set_only_v6(false).map_err(|e| sys(host, "setsockopt(IPV6_V6ONLY, 0)", &e))?;
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
        let t = PollTimeout::from(deadline.poll_timeout_ms(std::time::Duration::from_secs(60)));
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

/// `connect()` with a deadline; returns once the connection is established.
pub fn connect(sock: &Socket, host: &str, dst: SocketAddr, deadline: Deadline) -> Result<(), SockError> {
    let call = format!("connect({dst})");
    match sock.connect(&SockAddr::from(dst)) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(sys(host, call, &e)),
    }
    if !wait_fd(sock, PollFlags::POLLOUT, deadline).map_err(|e| sys(host, "poll", &e))? {
        return Err(SockError::Timeout { host: host.into(), what: call, detail: "handshake not complete".into() });
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

/// A deterministic pseudo-random byte stream (xorshift64*), the same on both ends.
#[derive(Debug, Clone)]
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Pattern { state: seed | 1, word: [0; 8], used: 8 }
    }
    fn next_byte(&mut self) -> u8 {
        if self.used == 8 {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.word = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            self.used = 0;
        }
        let b = self.word[self.used];
        self.used += 1;
        b
    }
    /// Fills `buf` with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_byte();
        }
    }
    /// Checks `buf` against the next bytes; returns the index of the first difference.
    pub fn check(&mut self, buf: &[u8]) -> Option<usize> {
        let mut bad = None;
        for (i, b) in buf.iter().enumerate() {
            if self.next_byte() != *b && bad.is_none() {
                bad = Some(i);
            }
        }
        bad
    }
}

/// What one side of a transfer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes written.
    pub sent: u64,
    /// Bytes read (all checked).
    pub received: u64,
}

/// One side of a transfer: what it must send and receive, and how far it got. A stream can
/// be pumped in stages (a first byte each way to get the connection fully established, then
/// the rest), always with the same byte sequences.
#[derive(Debug)]
pub struct Stream {
    host: String,
    tx: Pattern,
    rx: Pattern,
    send: u64,
    recv: u64,
    out: Vec<u8>,
    out_off: usize,
    out_len: usize,
    inb: Vec<u8>,
    done: Transfer,
    shut: bool,
    eof: bool,
    pace: Option<(u64, std::time::Duration)>,
    next_send: std::time::Instant,
    chunk_left: u64,
    abort_after: Option<u64>,
    tolerate_reset: bool,
    /// The peer reset the connection (only when tolerated).
    pub reset: bool,
}

impl Stream {
    /// A side that sends `send` bytes of `Pattern::new(send_seed)` and expects `recv` bytes
    /// of `Pattern::new(recv_seed)`.
    pub fn new(host: &str, send: u64, send_seed: u64, recv: u64, recv_seed: u64) -> Self {
        Stream {
            host: host.to_owned(),
            tx: Pattern::new(send_seed),
            rx: Pattern::new(recv_seed),
            send,
            recv,
            out: vec![0u8; 16 * 1024],
            out_off: 0,
            out_len: 0,
            inb: vec![0u8; 64 * 1024],
            done: Transfer::default(),
            shut: false,
            eof: false,
            pace: None,
            next_send: std::time::Instant::now(),
            chunk_left: 0,
            abort_after: None,
            tolerate_reset: false,
            reset: false,
        }
    }

    /// Sends `chunk` bytes every `interval` instead of as fast as possible (the wait between
    /// chunks is a poll(2) timeout on the socket, so reads go on meanwhile).
    pub fn paced(mut self, pace: Option<(u64, std::time::Duration)>) -> Self {
        self.pace = pace;
        self
    }

    /// This side stops once it has received `after` bytes (then the caller closes abortively).
    pub fn abort_after(mut self, after: Option<u64>) -> Self {
        self.abort_after = after;
        self
    }

    /// The peer may reset the connection: a reset ends the stream instead of failing it,
    /// and fewer bytes than planned may arrive (each one still checked).
    pub fn tolerate_reset(mut self, yes: bool) -> Self {
        self.tolerate_reset = yes;
        self
    }

    /// What was sent and received so far.
    pub fn progress(&self) -> Transfer {
        self.done
    }

    /// Runs the transfer to its end: everything sent, write side shut, EOF read, and exactly
    /// the expected number of bytes received.
    pub fn finish(&mut self, sock: &mut Socket, deadline: Deadline) -> Result<Transfer, SockError> {
        if let Some(after) = self.abort_after {
            let target = after.min(self.recv);
            return self.pump(sock, u64::MAX, move |t| t.received >= target, deadline);
        }
        self.pump(sock, u64::MAX, |_| false, deadline)?;
        if self.reset {
            return Ok(self.done);
        }
        if self.done.received != self.recv {
            return Err(SockError::Length { host: self.host.clone(), got: self.done.received, want: self.recv });
        }
        Ok(self.done)
    }

    /// Pumps until `stop` holds (or the stream ends), sending at most `send_cap` bytes in
    /// total and not shutting down before the whole stream is sent.
    pub fn pump(&mut self, sock: &mut Socket, send_cap: u64, stop: impl Fn(&Transfer) -> bool, deadline: Deadline) -> Result<Transfer, SockError> {
        let host = self.host.clone();
        let host = host.as_str();
        let limit = send_cap.min(self.send);
        loop {
            if stop(&self.done) {
                return Ok(self.done);
            }
            if self.done.sent == self.send && self.out_off == self.out_len && !self.shut {
                sock.shutdown(std::net::Shutdown::Write).map_err(|e| sys(host, "shutdown(SHUT_WR)", &e))?;
                self.shut = true;
            }
            if self.shut && self.eof {
                return Ok(self.done);
            }
            let mut want_out = !self.shut && (self.done.sent < limit || self.out_off < self.out_len);
            let mut wake = deadline;
            if let Some((chunk, interval)) = self.pace
                && want_out
                && self.chunk_left == 0
            {
                let now = std::time::Instant::now();
                if now >= self.next_send {
                    self.chunk_left = chunk;
                    self.next_send = now + interval;
                } else {
                    want_out = false;
                    wake = deadline.min(Deadline::after(self.next_send - now));
                }
            }
            let mut flags = PollFlags::empty();
            if !self.eof {
                flags |= PollFlags::POLLIN;
            }
            if want_out {
                flags |= PollFlags::POLLOUT;
            }
            let mut fds = [PollFd::new(sock.as_fd(), flags)];
            let t = PollTimeout::from(wake.poll_timeout_ms(std::time::Duration::from_secs(60)));
            let ready = match poll(&mut fds, t) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(sys(host, "poll", &e.into())),
            };
            if ready == 0 {
                if deadline.passed() {
                    return Err(SockError::Timeout {
                        host: host.into(),
                        what: "transfer".into(),
                        detail: format!("sent {}/{}, received {}/{}", self.done.sent, self.send, self.done.received, self.recv),
                    });
                }
                continue;
            }
            let rev = fds[0].revents().unwrap_or(PollFlags::empty());
            if rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) && !self.eof {
                match sock.read(&mut self.inb) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        if let Some(i) = self.rx.check(&self.inb[..n]) {
                            return Err(SockError::Corrupt { host: host.into(), offset: self.done.received + i as u64 });
                        }
                        self.done.received += n as u64;
                        if self.done.received > self.recv {
                            return Err(SockError::Length { host: host.into(), got: self.done.received, want: self.recv });
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if self.tolerate_reset && is_reset(&e) => {
                        self.reset = true;
                        return Ok(self.done);
                    }
                    Err(e) => return Err(sys(host, "read", &e)),
                }
            }
            if rev.intersects(PollFlags::POLLOUT) && want_out {
                if self.out_off == self.out_len {
                    let mut room = (limit - self.done.sent).min(self.out.len() as u64);
                    if self.pace.is_some() {
                        room = room.min(self.chunk_left);
                    }
                    let n = usize::try_from(room).unwrap_or(self.out.len());
                    self.tx.fill(&mut self.out[..n]);
                    self.out_off = 0;
                    self.out_len = n;
                }
                if self.out_len > self.out_off {
                    match sock.write(&self.out[self.out_off..self.out_len]) {
                        Ok(n) => {
                            self.out_off += n;
                            self.done.sent += n as u64;
                            self.chunk_left = self.chunk_left.saturating_sub(n as u64);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if self.tolerate_reset && is_reset(&e) => {
                            self.reset = true;
                            return Ok(self.done);
                        }
                        Err(e) => return Err(sys(host, "write", &e)),
                    }
                }
            }
        }
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ECONNABORTED))
}

/// Closes abortively: SO_LINGER {on, 0} then close, which makes MPTCP send MP_FASTCLOSE.
pub fn abortive_close(sock: Socket, host: &str) -> Result<(), SockError> {
    sock.set_linger(Some(std::time::Duration::ZERO)).map_err(|e| sys(host, "setsockopt(SO_LINGER, 0)", &e))?;
    drop(sock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_detects_a_flipped_byte() {
        let mut a = Pattern::new(7);
        let mut buf = vec![0; 1000];
        a.fill(&mut buf);
        assert_eq!(Pattern::new(7).check(&buf), None);
        buf[321] ^= 1;
        assert_eq!(Pattern::new(7).check(&buf), Some(321));
        let mut other = vec![0; 1000];
        Pattern::new(8).fill(&mut other);
        assert_ne!(buf, other);
        // Chunking does not change the stream.
        let mut c = Pattern::new(7);
        let (mut x, mut y) = (vec![0; 3], vec![0; 997]);
        c.fill(&mut x);
        c.fill(&mut y);
        x.extend(y);
        buf[321] ^= 1;
        assert_eq!(x, buf);
    }
}
