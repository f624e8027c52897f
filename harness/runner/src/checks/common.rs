//! What the checks share: the findings they return, their arguments, a connection over the
//! host's loopback, and reads and writes bounded by the check's deadline.

use std::fmt::Display;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use mptcp_spec::case::Proto;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::Socket;

use super::CheckCtx;
use crate::traffic;
use crate::wait::Deadline;

/// The prefix of a line that turns a check's result into a skip.
pub(crate) const SKIP: &str = "SKIP:";

/// Mismatches and skip reasons a check collects while it runs.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    problems: Vec<String>,
    skips: Vec<String>,
}

impl Findings {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records a mismatch, already worded ("what: expected X, observed Y").
    pub(crate) fn fail(&mut self, line: impl Into<String>) {
        self.problems.push(line.into());
    }

    /// Records "what: expected X, observed Y" unless `ok`; returns `ok`.
    pub(crate) fn expect(&mut self, ok: bool, what: impl Display, expected: impl Display, observed: impl Display) -> bool {
        if !ok {
            self.problems.push(format!("{what}: expected {expected}, observed {observed}"));
        }
        ok
    }

    /// Records a mismatch unless `observed == expected`; returns whether they were equal.
    pub(crate) fn expect_eq<T: PartialEq + Display>(&mut self, what: impl Display, expected: T, observed: T) -> bool {
        let ok = expected == observed;
        self.expect(ok, what, expected, observed)
    }

    /// Records something this kernel cannot show (an older struct, an unsupported option).
    pub(crate) fn skip(&mut self, reason: impl Into<String>) {
        self.skips.push(reason.into());
    }

    /// Takes over another's findings (a helper thread's).
    pub(crate) fn absorb(&mut self, other: Findings) {
        self.problems.extend(other.problems);
        self.skips.extend(other.skips);
    }

    /// Whether a mismatch was recorded.
    pub(crate) fn failed(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The check's result: the mismatches if any (with what could not be checked as notes
    /// that do not start with `SKIP:`, so that a failure is never reported as a skip); else
    /// one `SKIP: <reason>` line per reason; else success.
    pub(crate) fn finish(self) -> Result<(), Vec<String>> {
        if !self.problems.is_empty() {
            let mut lines = self.problems;
            lines.extend(self.skips.into_iter().map(|s| format!("(not checked on this kernel: {s})")));
            return Err(lines);
        }
        if !self.skips.is_empty() {
            return Err(self.skips.into_iter().map(|s| format!("{SKIP} {s}")).collect());
        }
        Ok(())
    }
}

/// Refuses arguments the check does not know (a typo must not silently test the default).
pub(crate) fn known_args(ctx: &CheckCtx<'_>, allowed: &[&str]) -> Result<(), Vec<String>> {
    let unknown: Vec<String> = ctx.args.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("args.{k}: unknown argument; this check takes: {}", allowed.join(", "))).collect();
    if unknown.is_empty() { Ok(()) } else { Err(unknown) }
}

/// An address family of the host's loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    /// `127.0.0.1` or `::1`.
    pub(crate) fn loopback(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    }

    /// `AF_INET` / `AF_INET6`.
    pub(crate) fn af(self) -> u16 {
        match self {
            Family::V4 => mptcp_wire::subflow_data::AF_INET,
            Family::V6 => mptcp_wire::subflow_data::AF_INET6,
        }
    }
}

/// `family = 4 | 6` (default 4).
pub(crate) fn family_arg(ctx: &CheckCtx<'_>) -> Result<Family, Vec<String>> {
    match ctx.args.get("family") {
        None => Ok(Family::V4),
        Some(toml::Value::Integer(4)) => Ok(Family::V4),
        Some(toml::Value::Integer(6)) => Ok(Family::V6),
        Some(v) => Err(vec![format!("args.family: expected 4 or 6, found {v}")]),
    }
}

/// `<key> = "mptcp" | "tcp"`.
pub(crate) fn proto_arg(ctx: &CheckCtx<'_>, key: &str, default: Proto) -> Result<Proto, Vec<String>> {
    match ctx.args.get(key) {
        None => Ok(default),
        Some(toml::Value::String(s)) if s == "mptcp" => Ok(Proto::Mptcp),
        Some(toml::Value::String(s)) if s == "tcp" => Ok(Proto::Tcp),
        Some(v) => Err(vec![format!("args.{key}: expected \"mptcp\" or \"tcp\", found {v}")]),
    }
}

/// `<key> = <positive integer>`.
pub(crate) fn uint_arg(ctx: &CheckCtx<'_>, key: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64, Vec<String>> {
    match ctx.args.get(key) {
        None => Ok(default),
        Some(toml::Value::Integer(n)) if *n >= 0 && range.contains(&(*n as u64)) => Ok(*n as u64),
        Some(v) => Err(vec![format!("args.{key}: expected an integer in {}..={}, found {v}", range.start(), range.end())]),
    }
}

/// `<key> = "<choice>"` among `choices`.
pub(crate) fn choice_arg<'a>(ctx: &CheckCtx<'_>, key: &str, choices: &[&'a str]) -> Result<&'a str, Vec<String>> {
    match ctx.args.get(key) {
        Some(toml::Value::String(s)) => choices.iter().find(|c| **c == s).copied().ok_or_else(|| vec![format!("args.{key}: expected one of {choices:?}, found {s:?}")]),
        Some(v) => Err(vec![format!("args.{key}: expected one of {choices:?}, found {v}")]),
        None => Err(vec![format!("args.{key}: missing; one of {choices:?}")]),
    }
}

/// A deadline for a value that must settle soon: 10 s, or the check's own if earlier.
pub(crate) fn settle(ctx: &CheckCtx<'_>) -> Deadline {
    ctx.deadline.min(Deadline::after(Duration::from_secs(10)))
}

fn setup(e: impl Display) -> Vec<String> {
    vec![format!("setup: {e}")]
}

/// A connection over the host's loopback: the listener, the client and the accepted socket,
/// all non-blocking.
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) listener: Socket,
    pub(crate) client: Socket,
    pub(crate) server: Socket,
}

/// Listens on the loopback address of `family` (an ephemeral port), connects a client and
/// accepts it, like the forked client and server of `mptcp_sockopt.c` and `mptcp_inq.c`.
pub(crate) fn loopback_pair(ctx: &CheckCtx<'_>, family: Family, client: Proto, server: Proto) -> Result<Pair, Vec<String>> {
    let host = ctx.host.name.as_str();
    let listener = traffic::listener(&ctx.host.ns, host, family.loopback(), 0, server).map_err(setup)?;
    let addr = listener.local_addr().ok().and_then(|a| a.as_socket()).ok_or_else(|| setup("getsockname on the listener"))?;
    let c = traffic::client_socket(&ctx.host.ns, host, addr.ip(), client).map_err(setup)?;
    traffic::connect(&c, host, addr, ctx.deadline).map_err(setup)?;
    let s = traffic::accept(&listener, host, ctx.deadline).map_err(setup)?;
    Ok(Pair { listener, client: c, server: s })
}

/// A connection to `addr` from a new `client`-protocol socket inside the check's host.
pub(crate) fn connect_to(ctx: &CheckCtx<'_>, addr: SocketAddr, client: Proto) -> Result<Socket, Vec<String>> {
    let host = ctx.host.name.as_str();
    let c = traffic::client_socket(&ctx.host.ns, host, addr.ip(), client).map_err(setup)?;
    traffic::connect(&c, host, addr, ctx.deadline).map_err(setup)?;
    Ok(c)
}

/// Waits until `sock` reports one of `flags` (or an error/hang-up); returns the events.
pub(crate) fn wait_for(sock: &Socket, flags: PollFlags, deadline: Deadline, what: &str) -> Result<PollFlags, String> {
    loop {
        let mut fds = [PollFd::new(sock.as_fd(), flags)];
        let t = PollTimeout::from(deadline.poll_timeout_ms(Duration::from_secs(60)));
        match poll(&mut fds, t) {
            Ok(0) if deadline.passed() => return Err(format!("{what}: nothing before the deadline")),
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => return Ok(fds[0].revents().unwrap_or(PollFlags::empty())),
            Err(e) => return Err(format!("{what}: poll: {e}")),
        }
    }
}

/// Writes all of `data`.
pub(crate) fn write_all(sock: &Socket, data: &[u8], deadline: Deadline, what: &str) -> Result<(), String> {
    let mut off = 0;
    while off < data.len() {
        match (&*sock).write(&data[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                wait_for(sock, PollFlags::POLLOUT, deadline, &format!("{what}: write after {off}/{} bytes", data.len()))?;
            }
            Err(e) => return Err(format!("{what}: write after {off}/{} bytes: {e}", data.len())),
        }
    }
    Ok(())
}

/// Reads exactly `n` bytes (an early end of stream is an error).
pub(crate) fn read_exact(sock: &Socket, n: usize, deadline: Deadline, what: &str) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    let mut off = 0;
    while off < n {
        match (&*sock).read(&mut buf[off..]) {
            Ok(0) => return Err(format!("{what}: end of stream after {off}/{n} bytes")),
            Ok(k) => off += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                wait_for(sock, PollFlags::POLLIN, deadline, &format!("{what}: read after {off}/{n} bytes"))?;
            }
            Err(e) => return Err(format!("{what}: read after {off}/{n} bytes: {e}")),
        }
    }
    Ok(buf)
}

/// Reads the end of stream (any byte before it is an error).
pub(crate) fn read_eof(sock: &Socket, deadline: Deadline, what: &str) -> Result<(), String> {
    let mut b = [0u8; 1];
    loop {
        match (&*sock).read(&mut b) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(format!("{what}: expected the end of stream, read a byte")),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                wait_for(sock, PollFlags::POLLIN, deadline, what)?;
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

/// `n` bytes of printable text (the selftests send random capital letters).
pub(crate) fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'A' + (i * 7 % 26) as u8).collect()
}

/// The transfer of `mptcp_sockopt.c`: the client writes `n` bytes, the server reads them and
/// writes them back, the client reads them.
pub(crate) fn echo(pair: &Pair, n: usize, deadline: Deadline) -> Result<(), String> {
    let data = payload(n);
    write_all(&pair.client, &data, deadline, "client")?;
    let got = read_exact(&pair.server, n, deadline, "server")?;
    write_all(&pair.server, &got, deadline, "server")?;
    let back = read_exact(&pair.client, n, deadline, "client")?;
    if back != data {
        return Err("client: the echoed bytes differ from those sent".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_is_never_reported_as_a_skip() {
        let mut f = Findings::new();
        f.expect_eq("server: mptcpi_bytes_sent", 5, 6);
        f.skip("mptcp_info has no last_ack_recv");
        assert_eq!(f.finish(), Err(vec!["server: mptcpi_bytes_sent: expected 5, observed 6".to_string(), "(not checked on this kernel: mptcp_info has no last_ack_recv)".to_string()]));

        let mut f = Findings::new();
        f.expect_eq("client: num_subflows", 1, 1);
        f.skip("MPTCP_FULL_INFO is not supported");
        assert_eq!(f.finish(), Err(vec!["SKIP: MPTCP_FULL_INFO is not supported".to_string()]));
        assert_eq!(Findings::new().finish(), Ok(()));
    }
}
