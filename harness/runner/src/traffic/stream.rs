//! One side of a transfer: the [`Stream`] pump and where its bytes come from and go.
//!
//! A stream sends a deterministic pseudo-random byte sequence ([`Pattern`]) and checks every
//! byte it receives against the peer's. Its *source* is how bytes reach the socket: write(2)
//! from a buffer, sendfile(2) from a memfd, splice(2) memfd -> pipe -> socket, or write(2)
//! from an mmap'ed memfd (`mptcp_connect -m poll|sendfile|splice|mmap`). Its *sink* is how
//! they are taken out: read(2), `recv(MSG_PEEK)` then read(2) with the peeked bytes compared
//! to the read ones (`-P saveWithPeek|saveAfterPeek`), or splice(2) socket -> pipe then a read
//! of the pipe. Pacing and the abortive close (MP_FASTCLOSE) work with every source and sink;
//! every wait is a poll(2) bounded by the caller's deadline.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{SockAddr, Socket};

use mptcp_spec::case::{IoMode, PeekMode};
use mptcp_spec::errno;

use super::{SockError, is_reset, sys, wait_connected};
use crate::wait::Deadline;

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
    /// Checks `buf` against the next bytes, tolerating bytes that are the bitwise inverse of
    /// the expected ones: the number of inverted bytes, or the index of the first other
    /// difference.
    pub fn check_allowing_inverted(&mut self, buf: &[u8]) -> Result<u64, usize> {
        let mut inverted = 0;
        let mut bad = None;
        for (i, b) in buf.iter().enumerate() {
            let want = self.next_byte();
            if want != *b {
                if want == !*b {
                    inverted += 1;
                } else if bad.is_none() {
                    bad = Some(i);
                }
            }
        }
        bad.map_or(Ok(inverted), Err)
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
    /// Received bytes that were the bitwise inverse of the sent ones (only counted when the
    /// connection tolerates them; otherwise such a byte is a corruption).
    pub inverted: u64,
}

impl std::ops::AddAssign for Transfer {
    fn add_assign(&mut self, o: Transfer) {
        self.sent += o.sent;
        self.received += o.received;
        self.inverted += o.inverted;
    }
}

/// What a paused sender waits for while it keeps reading: how many of its pause points were
/// let go (a `resume` step lets one go, the end of the steps all), and an eventfd its pump
/// polls beside the socket, written at each change.
#[derive(Debug)]
pub struct Release {
    fd: OwnedFd,
    released: std::sync::atomic::AtomicU64,
}

impl Release {
    /// A closed release (`eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`).
    pub fn new() -> io::Result<Release> {
        // SAFETY: plain eventfd(2) call; the result is checked before being owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Release { fd: unsafe { OwnedFd::from_raw_fd(fd) }, released: std::sync::atomic::AtomicU64::new(0) })
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one` to an open eventfd.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Lets the next pause point go.
    pub fn resume_one(&self) {
        self.released.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.wake();
    }

    /// Lets every pause point go (the steps are done).
    pub fn open(&self) {
        self.released.store(u64::MAX, std::sync::atomic::Ordering::SeqCst);
        self.wake();
    }

    /// How many pause points were let go.
    fn released(&self) -> u64 {
        self.released.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Empties the eventfd after a wake-up (the count is what matters).
    fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into `v` from an open non-blocking eventfd.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut v).cast(), 8) };
    }
}

/// A pipe (both ends non-blocking), the middle of a splice(2).
#[derive(Debug)]
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

/// Pipe capacity on Linux by default (16 pages): the most one splice moves.
const PIPE_CAPACITY: usize = 64 * 1024;

impl Pipe {
    fn new(host: &str) -> Result<Pipe, SockError> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(sys(host, "pipe2(O_NONBLOCK)", &io::Error::last_os_error()));
        }
        // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
        Ok(unsafe { Pipe { r: OwnedFd::from_raw_fd(fds[0]), w: OwnedFd::from_raw_fd(fds[1]) } })
    }
}

fn splice(from: &impl AsRawFd, from_off: Option<&mut i64>, to: &impl AsRawFd, len: usize) -> io::Result<usize> {
    let off = from_off.map_or(std::ptr::null_mut(), std::ptr::from_mut);
    // SAFETY: both descriptors are open; `off` is null or points to a live i64.
    let r = unsafe {
        libc::splice(from.as_raw_fd(), off, to.as_raw_fd(), std::ptr::null_mut(), len, libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK)
    };
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// A memfd holding a whole pattern stream: what `mptcp_connect` reads from its input file.
fn pattern_memfd(host: &str, seed: u64, len: u64) -> Result<OwnedFd, SockError> {
    // SAFETY: the name is a NUL-terminated literal.
    let fd = unsafe { libc::memfd_create(c"mptcp-ct-stream".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(sys(host, "memfd_create", &io::Error::last_os_error()));
    }
    // SAFETY: memfd_create succeeded: the descriptor is open and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    let mut p = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        p.fill(&mut buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| sys(host, "write(memfd)", &e))?;
        left -= n as u64;
    }
    Ok(file.into())
}

/// A read-only shared mapping of a file (`mmap(PROT_READ, MAP_SHARED)`), unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    _file: OwnedFd,
}

// SAFETY: the mapping is read-only and owned by this value; it is only read through `bytes`.
unsafe impl Send for Mapping {}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapping({} bytes)", self.len)
    }
}

impl Mapping {
    fn new(host: &str, file: OwnedFd, len: u64) -> Result<Mapping, SockError> {
        let len = usize::try_from(len).map_err(|_| sys(host, "mmap", &io::Error::from_raw_os_error(libc::EFBIG)))?;
        if len == 0 {
            return Ok(Mapping { ptr: std::ptr::null_mut(), len, _file: file });
        }
        // SAFETY: a fresh read-only shared mapping of an open file of at least `len` bytes.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(sys(host, format!("mmap({len}, PROT_READ, MAP_SHARED, memfd)"), &io::Error::last_os_error()));
        }
        Ok(Mapping { ptr, len, _file: file })
    }
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the region mapped in `new`; no slice of it outlives `self`.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

/// Where a sender's bytes come from and how they reach the socket.
#[derive(Debug)]
enum Source {
    /// write(2) from `out`, refilled from the pattern.
    Pattern,
    /// sendfile(2) from a memfd holding the whole stream.
    Sendfile(OwnedFd),
    /// splice(2) memfd -> pipe -> socket; `in_pipe` bytes wait in the pipe.
    Splice { file: OwnedFd, pipe: Pipe, in_pipe: usize },
    /// write(2) straight from a read-only shared mapping of a memfd holding the stream.
    Mmap(Mapping),
}

/// How a receiver takes bytes out of the socket.
#[derive(Debug)]
enum Sink {
    /// read(2).
    Read,
    /// `recv(MSG_PEEK)` of a varying length into `peeked`, then read(2); the bytes must agree.
    Peek { mode: PeekMode, peeked: Vec<u8>, rng: u64 },
    /// splice(2) socket -> pipe, then read(2) from the pipe.
    Splice(Pipe),
}

/// The most `mptcp_connect` peeks or reads at once (its receive buffer).
const PEEK_BUF: usize = 8192;

/// What one receive attempt gave.
enum Recv {
    Again,
    Eof,
    Data(usize),
    Reset,
}

/// One side of a transfer: what it must send and receive, and how far it got. A stream can
/// be pumped in stages (a first byte each way to get the connection fully established, then
/// the rest), always with the same byte sequences.
#[derive(Debug)]
pub struct Stream {
    host: String,
    tx: Pattern,
    tx_seed: u64,
    rx: Pattern,
    send: u64,
    recv: u64,
    source: Source,
    sink: Sink,
    /// Bytes taken from the source so far (sent, or waiting in `out` or in a pipe).
    taken: u64,
    out: Vec<u8>,
    out_off: usize,
    out_len: usize,
    inb: Vec<u8>,
    done: Transfer,
    shut: bool,
    eof: bool,
    recv_first: bool,
    pace: Option<(u64, Duration)>,
    next_send: Instant,
    chunk_left: u64,
    abort_after: Option<u64>,
    tolerate_reset: bool,
    allow_inverted: bool,
    pause: Option<(Vec<u64>, std::sync::Arc<Release>)>,
    /// The peer reset the connection (only when tolerated).
    pub reset: bool,
}

impl Stream {
    /// A side that sends `send` bytes of `Pattern::new(send_seed)` and expects `recv` bytes
    /// of `Pattern::new(recv_seed)`, with write(2) and read(2).
    pub fn new(host: &str, send: u64, send_seed: u64, recv: u64, recv_seed: u64) -> Self {
        Stream {
            host: host.to_owned(),
            tx: Pattern::new(send_seed),
            tx_seed: send_seed,
            rx: Pattern::new(recv_seed),
            send,
            recv,
            source: Source::Pattern,
            sink: Sink::Read,
            taken: 0,
            out: vec![0u8; 16 * 1024],
            out_off: 0,
            out_len: 0,
            inb: vec![0u8; 64 * 1024],
            done: Transfer::default(),
            shut: false,
            eof: false,
            recv_first: false,
            pace: None,
            next_send: Instant::now(),
            chunk_left: 0,
            abort_after: None,
            tolerate_reset: false,
            allow_inverted: false,
            pause: None,
            reset: false,
        }
    }

    /// Sends with `mode` (`mptcp_connect -m`): the file-based modes put the whole stream in a
    /// memfd first; `splice` also receives through a pipe.
    pub fn with_io(mut self, mode: IoMode) -> Result<Self, SockError> {
        let host = self.host.clone();
        self.source = match mode {
            IoMode::Poll => Source::Pattern,
            IoMode::Sendfile => Source::Sendfile(pattern_memfd(&host, self.tx_seed, self.send)?),
            IoMode::Splice => {
                self.sink = Sink::Splice(Pipe::new(&host)?);
                Source::Splice { file: pattern_memfd(&host, self.tx_seed, self.send)?, pipe: Pipe::new(&host)?, in_pipe: 0 }
            }
            IoMode::Mmap => Source::Mmap(Mapping::new(&host, pattern_memfd(&host, self.tx_seed, self.send)?, self.send)?),
        };
        Ok(self)
    }

    /// Receives with `MSG_PEEK` first (`mptcp_connect -P`); `seed` varies the peek lengths.
    pub fn peek(mut self, mode: Option<PeekMode>, seed: u64) -> Self {
        if let Some(mode) = mode {
            self.sink = Sink::Peek { mode, peeked: vec![0u8; PEEK_BUF], rng: seed | 1 };
        }
        self
    }

    /// Sends nothing more until the peer's whole stream has arrived (what `mptcp_connect -l`
    /// does in the mmap, sendfile and splice modes). Takes effect from the next pump.
    pub fn set_recv_first(&mut self, yes: bool) {
        self.recv_first = yes;
    }

    /// Sends `chunk` bytes every `interval` instead of as fast as possible (the wait between
    /// chunks is a poll(2) timeout on the socket, so reads go on meanwhile).
    pub fn paced(mut self, pace: Option<(u64, Duration)>) -> Self {
        self.pace = pace;
        self
    }

    /// Bytes that are the bitwise inverse of the expected ones are counted, not a corruption.
    pub fn allow_inverted(mut self, yes: bool) -> Self {
        self.allow_inverted = yes;
        self
    }

    /// Stops sending at each offset of `points` until `release` lets that point go; reads go
    /// on meanwhile.
    pub fn pause(mut self, pause: Option<(Vec<u64>, std::sync::Arc<Release>)>) -> Self {
        self.pause = pause;
        self
    }

    /// This side sends its whole stream and reads exactly `after` bytes of the peer's (its
    /// reads are capped there), then stops; the caller closes abortively. Like
    /// `mptcp_connect -f <after>` with an input of the stream's length.
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

    /// Copies the next `n` bytes of the source into `out` (for a write(2) of them).
    fn take_into_out(&mut self, n: usize) -> Result<(), SockError> {
        let n = n.min(self.out.len());
        let at = self.taken;
        match &self.source {
            Source::Pattern => self.tx.fill(&mut self.out[..n]),
            Source::Mmap(m) => {
                let from = usize::try_from(at).unwrap_or(usize::MAX);
                self.out[..n].copy_from_slice(&m.bytes()[from..from + n]);
            }
            Source::Sendfile(fd) | Source::Splice { file: fd, .. } => {
                let off = i64::try_from(at).unwrap_or(i64::MAX);
                let mut got = 0;
                while got < n {
                    let buf = &mut self.out[got..n];
                    // SAFETY: `buf` is valid for writes of its length.
                    let r = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off + got as i64) };
                    match usize::try_from(r) {
                        Ok(0) => return Err(sys(&self.host, "pread(memfd)", &io::Error::from_raw_os_error(libc::ENODATA))),
                        Ok(k) => got += k,
                        Err(_) => return Err(sys(&self.host, "pread(memfd)", &io::Error::last_os_error())),
                    }
                }
            }
        }
        self.taken += n as u64;
        self.out_off = 0;
        self.out_len = n;
        Ok(())
    }

    /// Connects with TCP Fast Open like `mptcp_connect -o MPTFO`: `sendto(MSG_FASTOPEN)` with
    /// the first 8 KiB of the stream (the SYN carries them if a cookie is cached, else it
    /// requests one and nothing is queued), then waits for the handshake. What the SYN did not
    /// carry is written by the pump.
    pub fn connect_fastopen(&mut self, sock: &Socket, dst: SocketAddr, deadline: Deadline) -> Result<(), SockError> {
        let n = usize::try_from((self.send - self.taken).min(8192)).unwrap_or(8192);
        self.take_into_out(n)?;
        let call = format!("sendto({n} bytes, MSG_FASTOPEN, {dst})");
        match sock.send_to_with_flags(&self.out[..n], &SockAddr::from(dst), libc::MSG_FASTOPEN) {
            Ok(k) => {
                self.out_off = k;
                self.done.sent += k as u64;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(sys(&self.host, call, &e)),
        }
        wait_connected(sock, &self.host, &call, deadline)
    }

    /// Runs the transfer to its end: everything sent, write side shut, EOF read, and exactly
    /// the expected number of bytes received.
    pub fn finish(&mut self, sock: &mut Socket, deadline: Deadline) -> Result<Transfer, SockError> {
        if let Some(after) = self.abort_after {
            let target = after.min(self.recv);
            let send = self.send;
            return self.pump(sock, u64::MAX, move |t| t.received >= target && t.sent >= send, deadline);
        }
        self.pump(sock, u64::MAX, |_| false, deadline)?;
        if self.reset {
            // The peer closed abortively once it had sent its whole stream. What reached this
            // socket's receive queue but was not read yet when MP_FASTCLOSE arrived is dropped
            // by the kernel with the connection (seen about 1 run in 10 under load): a shorter
            // stream is not an error, more is, and every byte received was checked.
            if self.done.received > self.recv {
                return Err(SockError::Length { host: self.host.clone(), got: self.done.received, want: self.recv });
            }
            return Ok(self.done);
        }
        if self.done.received != self.recv {
            return Err(SockError::Length { host: self.host.clone(), got: self.done.received, want: self.recv });
        }
        Ok(self.done)
    }

    fn in_pipe(&self) -> usize {
        match &self.source {
            Source::Splice { in_pipe, .. } => *in_pipe,
            _ => 0,
        }
    }

    /// Pumps until `stop` holds (or the stream ends), sending at most `send_cap` bytes in
    /// total and not shutting down before the whole stream is sent.
    pub fn pump(&mut self, sock: &mut Socket, send_cap: u64, stop: impl Fn(&Transfer) -> bool, deadline: Deadline) -> Result<Transfer, SockError> {
        let host = self.host.clone();
        let host = host.as_str();
        let full_limit = send_cap.min(self.send);
        loop {
            // The first pause point not let go yet bounds what may be sent.
            let limit = match &self.pause {
                Some((points, r)) => usize::try_from(r.released())
                    .ok()
                    .and_then(|k| points.get(k))
                    .map_or(full_limit, |p| full_limit.min(*p)),
                None => full_limit,
            };
            if stop(&self.done) {
                return Ok(self.done);
            }
            if self.done.sent == self.send && !self.shut {
                sock.shutdown(std::net::Shutdown::Write).map_err(|e| sys(host, "shutdown(SHUT_WR)", &e))?;
                self.shut = true;
            }
            if self.shut && self.eof {
                return Ok(self.done);
            }
            let pending = self.taken < limit || self.out_off < self.out_len || self.in_pipe() > 0;
            let mut want_out = !self.shut && pending && (self.eof || !self.recv_first);
            let mut wake = deadline;
            if let Some((chunk, interval)) = self.pace
                && want_out
                && self.chunk_left == 0
            {
                let now = Instant::now();
                if now >= self.next_send {
                    self.chunk_left = chunk;
                    self.next_send = now + interval;
                } else {
                    want_out = false;
                    wake = deadline.min(Deadline::after(self.next_send - now));
                }
            }
            let mut flags = PollFlags::empty();
            let read_room = self.abort_after.map_or(u64::MAX, |a| a.saturating_sub(self.done.received));
            if !self.eof && read_room > 0 {
                flags |= PollFlags::POLLIN;
            }
            if want_out {
                flags |= PollFlags::POLLOUT;
            }
            // A paused sender also waits for its release.
            let paused = self.taken >= limit && full_limit > limit;
            let release = self.pause.as_ref().map(|(_, r)| std::sync::Arc::clone(r)).filter(|_| paused);
            let t = PollTimeout::from(wake.poll_timeout_ms(Duration::from_secs(60)));
            let (ready, rev) = {
                let mut fds = vec![PollFd::new(sock.as_fd(), flags)];
                if let Some(r) = &release {
                    fds.push(PollFd::new(r.fd.as_fd(), PollFlags::POLLIN));
                }
                let ready = match poll(&mut fds, t) {
                    Ok(n) => n,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(sys(host, "poll", &e.into())),
                };
                if fds.get(1).and_then(PollFd::revents).is_some_and(|r| r.contains(PollFlags::POLLIN)) {
                    if let Some(r) = &release {
                        r.drain();
                    }
                    continue;
                }
                (ready, fds[0].revents().unwrap_or(PollFlags::empty()))
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
            if rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) && !self.eof && read_room > 0 {
                match self.recv_once(sock, usize::try_from(read_room).unwrap_or(usize::MAX))? {
                    Recv::Again => {}
                    Recv::Eof => self.eof = true,
                    Recv::Reset => {
                        self.reset = true;
                        return Ok(self.done);
                    }
                    Recv::Data(n) => {
                        if self.allow_inverted {
                            match self.rx.check_allowing_inverted(&self.inb[..n]) {
                                Ok(k) => self.done.inverted += k,
                                Err(i) => return Err(SockError::Corrupt { host: host.into(), offset: self.done.received + i as u64 }),
                            }
                        } else if let Some(i) = self.rx.check(&self.inb[..n]) {
                            return Err(SockError::Corrupt { host: host.into(), offset: self.done.received + i as u64 });
                        }
                        self.done.received += n as u64;
                        if self.done.received > self.recv {
                            return Err(SockError::Length { host: host.into(), got: self.done.received, want: self.recv });
                        }
                    }
                }
            }
            if rev.intersects(PollFlags::POLLOUT) && want_out && self.send_once(sock, limit)? {
                self.reset = true;
                return Ok(self.done);
            }
        }
    }

    /// One receive attempt into `inb`, through the sink.
    fn recv_once(&mut self, sock: &Socket, room: usize) -> Result<Recv, SockError> {
        let offset = self.done.received;
        let room = room.min(self.inb.len());
        let (call, r) = match &mut self.sink {
            Sink::Read => ("read", (&*sock).read(&mut self.inb[..room])),
            Sink::Splice(pipe) => match splice(sock, None, &pipe.w, PIPE_CAPACITY.min(room)) {
                Ok(0) => ("splice(socket -> pipe)", Ok(0)),
                Ok(n) => {
                    // Drain what was just spliced: the pipe then holds nothing between calls.
                    let mut got = 0;
                    while got < n {
                        // SAFETY: `inb` is valid for writes of its length, which is >= n.
                        let r = unsafe { libc::read(pipe.r.as_raw_fd(), self.inb[got..n].as_mut_ptr().cast(), n - got) };
                        match usize::try_from(r) {
                            Ok(k) if k > 0 => got += k,
                            _ => return Err(sys(&self.host, "read(pipe)", &io::Error::last_os_error())),
                        }
                    }
                    ("splice(socket -> pipe)", Ok(n))
                }
                Err(e) => ("splice(socket -> pipe)", Err(e)),
            },
            Sink::Peek { mode, peeked, rng } => {
                // Lengths vary like mptcp_connect's `rand() & 0xffff` capped to its buffer.
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                let cap = match (*rng & 0xffff) as usize {
                    0 => 1,
                    c => c.min(peeked.len()).min(room),
                };
                // SAFETY: `peeked` is valid for writes of `cap` bytes.
                let r = unsafe { libc::recv(sock.as_raw_fd(), peeked.as_mut_ptr().cast(), cap, libc::MSG_PEEK) };
                match usize::try_from(r) {
                    Err(_) => ("recv(MSG_PEEK)", Err(io::Error::last_os_error())),
                    Ok(0) => ("recv(MSG_PEEK)", Ok(0)),
                    Ok(n) => {
                        // saveWithPeek reads exactly what was peeked, saveAfterPeek the whole
                        // length it asked the peek for (more may have arrived meanwhile).
                        let want = match mode {
                            PeekMode::WithPeek => n,
                            PeekMode::AfterPeek => cap,
                        };
                        let m = match (&*sock).read(&mut self.inb[..want]) {
                            Ok(m) => m,
                            Err(e) if self.tolerate_reset && is_reset(&e) => return Ok(Recv::Reset),
                            Err(e) => {
                                return Err(SockError::Peek {
                                    host: self.host.clone(),
                                    offset,
                                    detail: format!("recv(MSG_PEEK) returned {n} bytes, then read({want}) failed: {}", errno::describe(e.raw_os_error().unwrap_or(0))),
                                });
                            }
                        };
                        if m < n {
                            return Err(SockError::Peek {
                                host: self.host.clone(),
                                offset,
                                detail: format!("recv(MSG_PEEK) returned {n} bytes, the read({want}) after it only {m}"),
                            });
                        }
                        if let Some(i) = peeked[..n].iter().zip(&self.inb[..n]).position(|(a, b)| a != b) {
                            return Err(SockError::Peek {
                                host: self.host.clone(),
                                offset: offset + i as u64,
                                detail: format!("the byte read differs from the byte recv(MSG_PEEK) returned ({n} bytes peeked)"),
                            });
                        }
                        ("read", Ok(m))
                    }
                }
            }
        };
        match r {
            Ok(0) => Ok(Recv::Eof),
            Ok(n) => Ok(Recv::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Ok(Recv::Again),
            Err(e) if self.tolerate_reset && is_reset(&e) => Ok(Recv::Reset),
            Err(e) => Err(sys(&self.host, call, &e)),
        }
    }

    /// One send attempt through the source; true if the peer reset (and that is tolerated).
    fn send_once(&mut self, sock: &Socket, limit: u64) -> Result<bool, SockError> {
        let mut room = limit.saturating_sub(self.taken);
        if self.pace.is_some() {
            room = room.min(self.chunk_left);
        }
        let room_usize = usize::try_from(room).unwrap_or(usize::MAX);
        // Bytes already taken from the source go first: a partial write(2), what the SYN of
        // a Fast Open did not carry, what waits in the splice pipe.
        let (call, r): (&str, io::Result<usize>) = if self.out_off < self.out_len {
            ("write", (&*sock).write(&self.out[self.out_off..self.out_len]))
        } else if self.in_pipe() > 0 {
            let Source::Splice { pipe, in_pipe, .. } = &self.source else { unreachable!("in_pipe > 0 only for splice") };
            ("splice(pipe -> socket)", splice(&pipe.r, None, sock, *in_pipe))
        } else if room == 0 {
            return Ok(false);
        } else {
            match &mut self.source {
                Source::Pattern => {
                    self.take_into_out(room_usize)?;
                    ("write", (&*sock).write(&self.out[..self.out_len]))
                }
                Source::Sendfile(fd) => {
                    let mut off = i64::try_from(self.taken).unwrap_or(i64::MAX);
                    // SAFETY: both descriptors are open; `off` is a live i64.
                    let r = unsafe { libc::sendfile(sock.as_raw_fd(), fd.as_raw_fd(), &raw mut off, room_usize) };
                    let r = usize::try_from(r).map_err(|_| io::Error::last_os_error());
                    if let Ok(n) = r {
                        self.taken += n as u64;
                    }
                    ("sendfile(socket, memfd)", r)
                }
                Source::Mmap(m) => {
                    let from = usize::try_from(self.taken).unwrap_or(usize::MAX);
                    let r = (&*sock).write(&m.bytes()[from..from + room_usize]);
                    if let Ok(n) = r {
                        self.taken += n as u64;
                    }
                    ("write(from mmap)", r)
                }
                Source::Splice { file, pipe, in_pipe } => {
                    let mut off = i64::try_from(self.taken).unwrap_or(i64::MAX);
                    match splice(file, Some(&mut off), &pipe.w, room_usize.min(PIPE_CAPACITY)) {
                        Ok(0) => return Err(sys(&self.host, "splice(memfd -> pipe)", &io::Error::from_raw_os_error(libc::ENODATA))),
                        Ok(n) => {
                            self.taken += n as u64;
                            *in_pipe = n;
                            ("splice(pipe -> socket)", splice(&pipe.r, None, sock, n))
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) => return Err(sys(&self.host, "splice(memfd -> pipe)", &e)),
                    }
                }
            }
        };
        match r {
            Ok(n) => {
                if self.out_off < self.out_len {
                    self.out_off += n;
                } else if let Source::Splice { in_pipe, .. } = &mut self.source {
                    *in_pipe -= n;
                }
                self.done.sent += n as u64;
                self.chunk_left = self.chunk_left.saturating_sub(n as u64);
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) if self.tolerate_reset && is_reset(&e) => Ok(true),
            Err(e) => Err(sys(&self.host, call, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

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

    #[test]
    fn a_memfd_holds_the_pattern_and_maps_it() {
        let fd = pattern_memfd("t", 9, 100_001).unwrap();
        let m = Mapping::new("t", fd, 100_001).unwrap();
        assert_eq!(m.bytes().len(), 100_001);
        assert_eq!(Pattern::new(9).check(m.bytes()), None);
        assert!(Mapping::new("t", pattern_memfd("t", 9, 0).unwrap(), 0).unwrap().bytes().is_empty());
    }

    /// Every source and sink over a socketpair: the bytes arrive, checked.
    #[test]
    fn every_io_mode_and_peek_mode_transfers_the_stream() {
        let cases: [(IoMode, Option<PeekMode>); 6] = [
            (IoMode::Poll, None),
            (IoMode::Sendfile, None),
            (IoMode::Mmap, None),
            (IoMode::Splice, None),
            (IoMode::Poll, Some(PeekMode::WithPeek)),
            (IoMode::Sendfile, Some(PeekMode::AfterPeek)),
        ];
        for (io, peek) in cases {
            let (mut a, mut b) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            let deadline = Deadline::after(Duration::from_secs(20));
            let mut sa = Stream::new("a", 300_001, 1, 200_003, 2).with_io(io).unwrap().peek(peek, 5);
            let mut sb = Stream::new("b", 200_003, 2, 300_001, 1).with_io(io).unwrap().peek(peek, 6);
            let (ra, rb) = std::thread::scope(|s| {
                let h = s.spawn(|| sb.finish(&mut b, deadline));
                (sa.finish(&mut a, deadline), h.join().unwrap())
            });
            let what = format!("{io:?} {peek:?}");
            assert_eq!(ra.expect(&what), Transfer { sent: 300_001, received: 200_003, inverted: 0 }, "{what}");
            assert_eq!(rb.expect(&what), Transfer { sent: 200_003, received: 300_001, inverted: 0 }, "{what}");
        }
    }

    #[test]
    fn inverted_bytes_are_counted_only_when_allowed() {
        let mut buf = vec![0; 100];
        Pattern::new(3).fill(&mut buf);
        buf[10] = !buf[10];
        assert_eq!(Pattern::new(3).check(&buf), Some(10));
        assert_eq!(Pattern::new(3).check_allowing_inverted(&buf), Ok(1));
        buf[20] ^= 1;
        assert_eq!(Pattern::new(3).check_allowing_inverted(&buf), Err(20));
    }

    fn pair() -> (Socket, Socket) {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// A paused sender stops at its pause point, keeps reading, and sends on once released.
    #[test]
    fn a_pause_holds_the_rest_of_the_stream_until_released() {
        let (mut a, mut b) = pair();
        let deadline = Deadline::after(Duration::from_secs(20));
        let release = std::sync::Arc::new(Release::new().unwrap());
        let mut sa = Stream::new("a", 50_000, 1, 30_000, 2).pause(Some((vec![10_000, 20_000], std::sync::Arc::clone(&release))));
        let mut sb = Stream::new("b", 30_000, 2, 50_000, 1);
        // b sends everything and reads what a sends before its pause; a reads meanwhile.
        std::thread::scope(|s| {
            let h = s.spawn(|| sb.pump(&mut b, u64::MAX, |t| t.received >= 10_000 && t.sent >= 30_000, deadline).unwrap());
            let got = sa.pump(&mut a, u64::MAX, |t| t.received >= 30_000, deadline).unwrap();
            assert_eq!(got.sent, 10_000, "stopped at the pause point");
            assert_eq!(h.join().unwrap().received, 10_000);
        });
        // Nothing more leaves before the release: a pump bounded by a short deadline times out.
        let short = Deadline::after(Duration::from_millis(100));
        assert!(matches!(sa.pump(&mut a, u64::MAX, |t| t.sent > 10_000, short), Err(SockError::Timeout { .. })));
        // One resume: on to the second point only.
        release.resume_one();
        std::thread::scope(|s| {
            let h = s.spawn(|| sb.pump(&mut b, u64::MAX, |t| t.received >= 20_000, deadline).unwrap());
            assert_eq!(sa.pump(&mut a, u64::MAX, |t| t.sent >= 20_000, deadline).unwrap().sent, 20_000);
            h.join().unwrap();
        });
        let short = Deadline::after(Duration::from_millis(100));
        assert!(matches!(sa.pump(&mut a, u64::MAX, |t| t.sent > 20_000, short), Err(SockError::Timeout { .. })));
        release.open();
        let (ra, rb) = std::thread::scope(|s| {
            let h = s.spawn(|| sb.finish(&mut b, deadline));
            (sa.finish(&mut a, deadline), h.join().unwrap())
        });
        assert_eq!(ra.unwrap(), Transfer { sent: 50_000, received: 30_000, inverted: 0 });
        assert_eq!(rb.unwrap(), Transfer { sent: 30_000, received: 50_000, inverted: 0 });
    }

    /// The closing side of a fastclose sends its stream and reads exactly `after` bytes.
    #[test]
    fn an_aborting_side_reads_exactly_its_share() {
        let (mut a, mut b) = pair();
        let deadline = Deadline::after(Duration::from_secs(20));
        let mut sa = Stream::new("a", 1024, 1, 200_000, 2).abort_after(Some(1024));
        let mut sb = Stream::new("b", 200_000, 2, 1024, 1).tolerate_reset(true);
        let got = std::thread::scope(|s| {
            let h = s.spawn(|| sb.pump(&mut b, u64::MAX, |t| t.received >= 1024, deadline).unwrap());
            let got = sa.finish(&mut a, deadline).unwrap();
            h.join().unwrap();
            got
        });
        assert_eq!(got, Transfer { sent: 1024, received: 1024, inverted: 0 });
    }
}
