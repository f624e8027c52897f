//! `SOL_MPTCP` socket options and `IP_TOS` on an MPTCP socket: a port of the upstream
//! selftest `tools/testing/selftests/net/mptcp/mptcp_sockopt.c` (run by `mptcp_sockopt.sh` as
//! "SOL_MPTCP sockopt v4" and "v6").
//!
//! Upstream forks a client and a server on `127.0.0.1` / `::1`; each calls every option on
//! its socket once connected and again after the transfer (the client writes 128..4095
//! bytes, the server echoes them, the client closes). Here each option group is its own
//! check on the same scenario, so a case names exactly what it judges:
//!
//! | check | upstream function |
//! |---|---|
//! | `sockopt_info` | `do_getsockopt_mptcp_info` and the byte-counter checks of `process_one_client` |
//! | `sockopt_tcpinfo` | `do_getsockopt_tcp_info` |
//! | `sockopt_subflow_addrs` | `do_getsockopt_subflow_addrs` |
//! | `sockopt_bogus_subflow_data` | `do_getsockopt_bogus_sf_data` (for `MPTCP_TCPINFO` or `MPTCP_SUBFLOW_ADDRS`) |
//! | `sockopt_full_info` | `do_getsockopt_mptcp_full_info` |
//! | `sockopt_ip_tos` | `test_ip_tos_sockopt` |
//!
//! Differences, all stricter: every short option length 0..15 is tried (upstream: one random
//! one); the byte counters are checked on the client too; the padding bytes the kernel must
//! not write are canaries rather than zeros; waits are polls bounded by the deadline, not
//! `sleep(1)` retries. Arguments: `family = 4 | 6`, `bytes` (the transfer size, 128..=4095,
//! default 1000), and `option = "tcpinfo" | "subflow_addrs"` for the bogus-header check.

use mptcp_spec::case::Proto;
use mptcp_spec::errno;
use mptcp_wire::mptcp_info::{MPTCP_SUBFLOW_ADDRS, MPTCP_TCPINFO, MptcpInfo, SOL_MPTCP};
use mptcp_wire::subflow_data::{
    FullInfo, MPTCP_FULL_INFO_SIZE, MPTCP_FULL_INFO_TCP_INFO_OFFSET, MPTCP_SUBFLOW_ADDRS_SIZE, MPTCP_SUBFLOW_DATA_SIZE, MPTCP_SUBFLOW_INFO_SIZE, SA_FAMILY_SIZE, SubflowAddrs,
    SubflowArray, SubflowData, SubflowInfo, sockaddr_storage,
};
use mptcp_wire::tcp_info::{TCP_ESTABLISHED, TCP_INFO_SIZE, TcpInfo};
use socket2::Socket;

use super::CheckCtx;
use super::common::{Family, Findings, Pair, echo, family_arg, known_args, loopback_pair, read_eof, settle, uint_arg};
use crate::sockopt::{self as so, getsockopt_negative_len, getsockopt_raw};
use crate::wait::poll_until;

/// Entries the array options are asked for (upstream: room for two, one expected).
const ENTRIES: usize = 2;

fn bytes_arg(ctx: &CheckCtx<'_>) -> Result<usize, Vec<String>> {
    uint_arg(ctx, "bytes", 1000, 128..=4095).map(|n| n as usize)
}

/// The scenario of every check: a connected pair on the loopback of `family`.
fn scenario(ctx: &CheckCtx<'_>) -> Result<(Family, usize, Pair), Vec<String>> {
    let family = family_arg(ctx)?;
    let n = bytes_arg(ctx)?;
    Ok((family, n, loopback_pair(ctx, family, Proto::Mptcp, Proto::Mptcp)?))
}

/// Closes the client and reads the end of stream on the server, as upstream's client does
/// after its own checks; returns the server socket.
fn client_closes(ctx: &CheckCtx<'_>, pair: Pair) -> Result<Socket, Vec<String>> {
    let Pair { listener, client, server } = pair;
    drop(client);
    drop(listener);
    read_eof(&server, ctx.deadline, "server").map_err(|e| vec![e])?;
    Ok(server)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("(absent)".into(), |v| v.to_string())
}

fn mptcp_info(f: &mut Findings, who: &str, sock: &Socket) -> Option<MptcpInfo> {
    match so::mptcp_info(sock) {
        Ok(i) => Some(i),
        Err(e) => {
            f.fail(format!("{who}: getsockopt(SOL_MPTCP, MPTCP_INFO): expected success, observed {e}"));
            None
        }
    }
}

// ------------------------------------------------------------------------------ MPTCP_INFO

/// `mptcpi_write_seq` advances by exactly the bytes written; the `mptcpi_rcv_nxt` delta is
/// the bytes read, plus one for a received DATA_FIN; `mptcpi_bytes_sent`, `_received` and
/// `_acked` equal the transfer when the struct has them.
pub(super) fn sockopt_info(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["family", "bytes"])?;
    let (_, n, pair) = scenario(ctx)?;
    let n64 = n as u64;
    let mut f = Findings::new();
    let (Some(c0), Some(s0)) = (mptcp_info(&mut f, "client before the transfer", &pair.client), mptcp_info(&mut f, "server before the transfer", &pair.server)) else {
        return f.finish();
    };
    echo(&pair, n, ctx.deadline).map_err(|e| vec![e])?;
    if let Some(c1) = mptcp_info(&mut f, "client after the transfer", &pair.client) {
        seq_delta(&mut f, "client", "write_seq", &c0, &c1, n64, "the bytes written");
        seq_delta(&mut f, "client", "rcv_nxt", &c0, &c1, n64, "the bytes read");
        byte_counters(&mut f, ctx, "client", &pair.client, &c1, n64, n64);
    }
    let server = client_closes(ctx, pair)?;
    if let Some(s1) = mptcp_info(&mut f, "server after the client closed", &server) {
        seq_delta(&mut f, "server", "write_seq", &s0, &s1, n64, "the bytes written");
        seq_delta(&mut f, "server", "rcv_nxt", &s0, &s1, n64 + 1, "the bytes read + 1 for the DATA_FIN");
        byte_counters(&mut f, ctx, "server", &server, &s1, n64, n64);
    }
    f.finish()
}

fn seq_delta(f: &mut Findings, who: &str, field: &str, before: &MptcpInfo, after: &MptcpInfo, want: u64, meaning: &str) {
    match (before.get(field), after.get(field)) {
        (Some(a), Some(b)) => {
            f.expect_eq(format!("{who}: mptcpi_{field} advance over the transfer ({meaning})"), want, b.wrapping_sub(a));
        }
        _ => f.skip(format!("mptcp_info has no {field} ({} bytes)", after.len())),
    }
}

fn byte_counters(f: &mut Findings, ctx: &CheckCtx<'_>, who: &str, sock: &Socket, info: &MptcpInfo, sent: u64, received: u64) {
    let (Some(s), Some(r)) = (info.get("bytes_sent"), info.get("bytes_received")) else {
        f.skip(format!("mptcp_info has no bytes_sent/bytes_received/bytes_acked ({} bytes; they came with Linux 6.5)", info.len()));
        return;
    };
    f.expect_eq(format!("{who}: mptcpi_bytes_sent"), sent, s);
    f.expect_eq(format!("{who}: mptcpi_bytes_received"), received, r);
    // The peer's DATA_ACK may trail the data it acknowledges: polled.
    let mut last = info.get("bytes_acked");
    let ok = poll_until(settle(ctx), || {
        last = so::mptcp_info(sock).ok()?.get("bytes_acked");
        (last == Some(sent)).then_some(())
    });
    if ok.is_err() {
        f.fail(format!("{who}: mptcpi_bytes_acked: expected {sent}, observed {} (polled until the deadline)", last.map_or("nothing".into(), |v| v.to_string())));
    }
}

// ------------------------------------------------------------------------------ MPTCP_TCPINFO

/// Checks the header of an `MPTCP_TCPINFO` / `MPTCP_SUBFLOW_ADDRS` answer for a one-subflow
/// connection asked for [`ENTRIES`] entries of `our_size` bytes.
fn check_array_header(f: &mut Findings, who: &str, opt: &str, arr: &SubflowArray<'_>, optlen: usize, our_size: usize) {
    let h = arr.header;
    let max = MPTCP_SUBFLOW_DATA_SIZE + ENTRIES * our_size;
    f.expect(optlen <= max, format!("{who}: {opt} optlen"), format!("at most the {max} bytes passed"), optlen);
    f.expect(h.size_kernel > 0, format!("{who}: {opt} size_kernel"), "more than 0", h.size_kernel);
    f.expect_eq(format!("{who}: {opt} size_user (min(size_kernel, {our_size}))"), h.size_kernel.min(our_size as u32), h.size_user);
    f.expect_eq(format!("{who}: {opt} num_subflows"), 1, h.num_subflows);
    f.expect_eq(format!("{who}: {opt} optlen - sizeof(mptcp_subflow_data) (one entry of size_user)"), h.size_user as usize, optlen.saturating_sub(MPTCP_SUBFLOW_DATA_SIZE));
}

/// One `MPTCP_TCPINFO` call with its header checked; entry 0.
fn tcpinfo_checked(f: &mut Findings, who: &str, sock: &Socket) -> Option<TcpInfo> {
    let answer = match so::mptcp_tcpinfo(sock, ENTRIES) {
        Ok(a) => a,
        Err(e) => {
            f.fail(format!("{who}: getsockopt(SOL_MPTCP, MPTCP_TCPINFO): expected success, observed {e}"));
            return None;
        }
    };
    match SubflowArray::parse(&answer) {
        Ok(arr) => {
            check_array_header(f, who, "MPTCP_TCPINFO", &arr, answer.len(), TCP_INFO_SIZE);
            arr.entries.first().map(|e| TcpInfo::from_bytes(e))
        }
        Err(e) => {
            f.fail(format!("{who}: MPTCP_TCPINFO answer: {e}"));
            None
        }
    }
}

fn tcpinfo_quiet(sock: &Socket) -> Option<TcpInfo> {
    let answer = so::mptcp_tcpinfo(sock, ENTRIES).ok()?;
    SubflowArray::parse(&answer).ok()?.entries.first().map(|e| TcpInfo::from_bytes(e))
}

/// Polls until subflow 0's `tcpi_bytes_sent` / `tcpi_bytes_received` are `sent` / `received`
/// (upstream retries for 5 s: the transmission may still be going on); returns the last
/// sample.
fn tcp_bytes(f: &mut Findings, ctx: &CheckCtx<'_>, who: &str, sock: &Socket, first: TcpInfo, sent: u64, received: u64) -> Option<TcpInfo> {
    if first.bytes_sent().is_none() || first.bytes_received().is_none() {
        f.skip(format!("tcp_info has no tcpi_bytes_sent ({} bytes; it came with Linux 5.5)", first.len()));
        return None;
    }
    let mut last = first;
    let ok = poll_until(settle(ctx), || {
        if last.bytes_sent() == Some(sent) && last.bytes_received() == Some(received) {
            return Some(());
        }
        if let Some(t) = tcpinfo_quiet(sock) {
            last = t;
        }
        None
    });
    if ok.is_err() {
        f.fail(format!(
            "{who}: subflow 0 tcpi_bytes_sent/tcpi_bytes_received: expected {sent}/{received}, observed {}/{} (polled until the deadline)",
            last.bytes_sent().unwrap_or_default(),
            last.bytes_received().unwrap_or_default()
        ));
    }
    Some(last)
}

/// The `mptcp_subflow_data` header semantics of `MPTCP_TCPINFO`, and subflow 0's byte
/// counters: 0/0 once connected, then the transfer on each side.
pub(super) fn sockopt_tcpinfo(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["family", "bytes"])?;
    let (_, n, pair) = scenario(ctx)?;
    let n64 = n as u64;
    let mut f = Findings::new();
    for (who, sock) in [("client before the transfer", &pair.client), ("server before the transfer", &pair.server)] {
        if let Some(t) = tcpinfo_checked(&mut f, who, sock) {
            tcp_bytes(&mut f, ctx, who, sock, t, 0, 0);
        }
    }
    echo(&pair, n, ctx.deadline).map_err(|e| vec![e])?;
    if let Some(t) = tcpinfo_checked(&mut f, "client after the transfer", &pair.client) {
        tcp_bytes(&mut f, ctx, "client after the transfer", &pair.client, t, n64, n64);
    }
    let server = client_closes(ctx, pair)?;
    if let Some(t) = tcpinfo_checked(&mut f, "server after the client closed", &server) {
        tcp_bytes(&mut f, ctx, "server after the client closed", &server, t, n64, n64);
    }
    f.finish()
}

// ------------------------------------------------------------------------------ MPTCP_SUBFLOW_ADDRS

/// One `MPTCP_SUBFLOW_ADDRS` call with its header checked; entry 0.
fn addrs_checked(f: &mut Findings, who: &str, sock: &Socket) -> Option<SubflowAddrs> {
    let answer = match so::mptcp_subflow_addrs(sock, ENTRIES) {
        Ok(a) => a,
        Err(e) => {
            f.fail(format!("{who}: getsockopt(SOL_MPTCP, MPTCP_SUBFLOW_ADDRS): expected success, observed {e}"));
            return None;
        }
    };
    match SubflowArray::parse(&answer) {
        Ok(arr) => {
            check_array_header(f, who, "MPTCP_SUBFLOW_ADDRS", &arr, answer.len(), MPTCP_SUBFLOW_ADDRS_SIZE);
            arr.entries.first().map(|e| SubflowAddrs::from_bytes(e))
        }
        Err(e) => {
            f.fail(format!("{who}: MPTCP_SUBFLOW_ADDRS answer: {e}"));
            None
        }
    }
}

/// Subflow 0's addresses equal `getsockname` / `getpeername` byte for byte (as upstream's
/// `memcmp` of `sockaddr_storage`); a header asking for `sizeof(sa_family_t)` gets the
/// family and nothing more.
fn addrs_side(f: &mut Findings, who: &str, sock: &Socket, family: Family) {
    let local = sock.local_addr().ok().and_then(|a| a.as_socket());
    let remote = sock.peer_addr().ok().and_then(|a| a.as_socket());
    let (Some(local), Some(remote)) = (local, remote) else {
        f.fail(format!("{who}: getsockname/getpeername: expected two addresses, observed {local:?} / {remote:?}"));
        return;
    };
    f.expect_eq(format!("{who}: getsockname family"), family.af(), mptcp_wire::subflow_data::family_of(local.ip()));
    f.expect_eq(format!("{who}: getpeername family"), family.af(), mptcp_wire::subflow_data::family_of(remote.ip()));
    if let Some(e) = addrs_checked(f, who, sock) {
        let show = |a: Option<std::net::SocketAddr>| a.map_or("(not an address)".to_string(), |a| a.to_string());
        f.expect(e.local_storage() == Some(&sockaddr_storage(local)[..]), format!("{who}: subflow 0 local address (sockaddr_storage bytes)"), format!("{local} as getsockname"), show(e.local()));
        f.expect(e.remote_storage() == Some(&sockaddr_storage(remote)[..]), format!("{who}: subflow 0 remote address (sockaddr_storage bytes)"), format!("{remote} as getpeername"), show(e.remote()));
    }
    // size_user = sizeof(sa_family_t): the family only; the canary after it stays.
    let mut buf = vec![0x5au8; MPTCP_SUBFLOW_DATA_SIZE + MPTCP_SUBFLOW_ADDRS_SIZE];
    buf[..MPTCP_SUBFLOW_DATA_SIZE].copy_from_slice(&SubflowData::request(SA_FAMILY_SIZE as u32).to_bytes());
    let olen = (MPTCP_SUBFLOW_DATA_SIZE + SA_FAMILY_SIZE) as u32;
    let a = getsockopt_raw(sock, SOL_MPTCP, MPTCP_SUBFLOW_ADDRS, &mut buf, olen);
    let what = format!("{who}: MPTCP_SUBFLOW_ADDRS with size_user = sizeof(sa_family_t), optlen {olen}");
    if f.expect(a.errno.is_none() && a.optlen == olen, &what, format!("ok, optlen {olen}"), a.describe()) {
        let fam = u16::from_ne_bytes([buf[16], buf[17]]);
        f.expect_eq(format!("{what}: family"), family.af(), fam);
        let written = buf[olen as usize..].iter().position(|b| *b != 0x5a);
        f.expect(written.is_none(), format!("{what}: bytes after the family"), "untouched", format!("byte {} written", written.unwrap_or(0) + olen as usize));
    }
}

/// `MPTCP_SUBFLOW_ADDRS` on both sides, once connected and after the transfer.
pub(super) fn sockopt_subflow_addrs(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["family", "bytes"])?;
    let (family, n, pair) = scenario(ctx)?;
    let mut f = Findings::new();
    addrs_side(&mut f, "client before the transfer", &pair.client, family);
    addrs_side(&mut f, "server before the transfer", &pair.server, family);
    echo(&pair, n, ctx.deadline).map_err(|e| vec![e])?;
    addrs_side(&mut f, "client after the transfer", &pair.client, family);
    addrs_side(&mut f, "server after the transfer", &pair.server, family);
    f.finish()
}

// ------------------------------------------------------------------------------ bogus headers

/// Malformed and unusual `mptcp_subflow_data` headers, in upstream's order.
fn bogus(f: &mut Findings, who: &str, sock: &Socket, opt: i32, name: &str, first_byte: u8) {
    let good = SubflowData { size_subflow_data: MPTCP_SUBFLOW_DATA_SIZE as u32, ..Default::default() };
    let hdr = MPTCP_SUBFLOW_DATA_SIZE as u32;
    let call = |buf: &mut [u8], olen: u32| getsockopt_raw(sock, SOL_MPTCP, opt, buf, olen);
    let refused = |f: &mut Findings, what: String, a: so::RawAnswer, olen: u32| {
        f.expect(a.errno.is_some() && a.optlen == olen, format!("{who}: {name} {what}"), format!("an error, optlen {olen} unchanged"), a.describe());
    };

    // size_subflow_data 0.
    let mut buf = [0u8; 18];
    let a = call(&mut buf, hdr);
    refused(f, "with an all-zero header (size_subflow_data 0)".into(), a, hdr);

    // A good header and no room for entries: success, nothing copied.
    buf[..16].copy_from_slice(&good.to_bytes());
    let a = call(&mut buf, hdr);
    let what = format!("{who}: {name} with a good header and optlen {hdr}");
    if f.expect(a.errno.is_none() && a.optlen == hdr, &what, format!("ok, optlen {hdr}"), a.describe()) {
        let h = SubflowData::parse(&buf).unwrap_or_default();
        f.expect_eq(format!("{what}: num_subflows"), 1, h.num_subflows);
        f.expect(h.size_kernel > 0, format!("{what}: size_kernel"), "more than 0", h.size_kernel);
        f.expect_eq(format!("{what}: size_user"), 0, h.size_user);
    }

    // Every option length shorter than the header (upstream: one random one).
    for olen in 0..hdr {
        buf[..16].copy_from_slice(&good.to_bytes());
        let a = call(&mut buf, olen);
        refused(f, format!("with optlen {olen} (shorter than the header)"), a, olen);
    }

    // size_kernel and num_subflows are the kernel's to write.
    for (field, h) in [("size_kernel 1", SubflowData { size_kernel: 1, ..good }), ("num_subflows 1", SubflowData { num_subflows: 1, ..good })] {
        buf[..16].copy_from_slice(&h.to_bytes());
        let a = call(&mut buf, hdr);
        refused(f, format!("with {field} on input"), a, hdr);
    }

    // Forward compatibility: a larger header from a newer program.
    let mut big = [0u8; 18];
    big[..16].copy_from_slice(&SubflowData { size_subflow_data: 18, ..good }.to_bytes());
    let a = call(&mut big, 18);
    let what = format!("{who}: {name} with an 18-byte header (size_subflow_data 18, optlen 18)");
    if f.expect(a.errno.is_none() && a.optlen == hdr, &what, format!("ok, optlen truncated to {hdr}"), a.describe()) {
        f.expect_eq(format!("{what}: size_subflow_data"), 18, SubflowData::parse(&big).unwrap_or_default().size_subflow_data);
    }

    // A 17-byte header and 1-byte entries: byte 16 is the caller's, byte 17 gets the first
    // byte of subflow 0's entry.
    let mut odd = [0xaau8; 18];
    odd[..16].copy_from_slice(&SubflowData { size_subflow_data: 17, size_user: 1, ..good }.to_bytes());
    let a = call(&mut odd, 18);
    let what = format!("{who}: {name} with a 17-byte header, size_user 1, optlen 18");
    if f.expect(a.errno.is_none() && a.optlen == 18, &what, "ok, optlen 18 (one byte copied)", a.describe()) {
        f.expect_eq(format!("{what}: size_subflow_data"), 17, SubflowData::parse(&odd).unwrap_or_default().size_subflow_data);
        f.expect(odd[16] == 0xaa, format!("{what}: byte 16 (the caller's header)"), "0xaa, untouched", format!("{:#04x}", odd[16]));
        f.expect(odd[17] == first_byte, format!("{what}: byte 17 (first byte of the entry)"), format!("{first_byte:#04x}"), format!("{:#04x}", odd[17]));
    }
}

/// `do_getsockopt_bogus_sf_data` for `option = "tcpinfo" | "subflow_addrs"`, on both sides,
/// once connected and after the transfer.
pub(super) fn sockopt_bogus_subflow_data(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["family", "bytes", "option"])?;
    let option = super::common::choice_arg(ctx, "option", &["tcpinfo", "subflow_addrs"])?;
    let (family, n, pair) = scenario(ctx)?;
    let (opt, name, first) = match option {
        "tcpinfo" => (MPTCP_TCPINFO, "MPTCP_TCPINFO", TCP_ESTABLISHED),
        _ => (MPTCP_SUBFLOW_ADDRS, "MPTCP_SUBFLOW_ADDRS", family.af().to_ne_bytes()[0]),
    };
    let mut f = Findings::new();
    bogus(&mut f, "client before the transfer", &pair.client, opt, name, first);
    bogus(&mut f, "server before the transfer", &pair.server, opt, name, first);
    echo(&pair, n, ctx.deadline).map_err(|e| vec![e])?;
    bogus(&mut f, "client after the transfer", &pair.client, opt, name, first);
    bogus(&mut f, "server after the transfer", &pair.server, opt, name, first);
    f.finish()
}

// ------------------------------------------------------------------------------ MPTCP_FULL_INFO

/// `MPTCP_FULL_INFO` against the other options' answers taken just before.
fn full_info_side(f: &mut Findings, ctx: &CheckCtx<'_>, who: &str, sock: &Socket, sent: u64, received: u64) {
    let Some(last) = mptcp_info(f, who, sock) else { return };
    let Some(first) = tcpinfo_checked(f, who, sock) else { return };
    let Some(ti) = tcp_bytes(f, ctx, who, sock, first, sent, received) else { return };
    let Some(addrs) = addrs_checked(f, who, sock) else { return };
    let answer = match so::mptcp_full_info(sock, ENTRIES) {
        Ok(a) => a,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            f.skip("MPTCP_FULL_INFO is not supported by this kernel (EOPNOTSUPP; it came with Linux 6.5)");
            return;
        }
        Err(e) => {
            f.fail(format!("{who}: getsockopt(SOL_MPTCP, MPTCP_FULL_INFO): expected success, observed {e}"));
            return;
        }
    };
    let what = format!("{who}: MPTCP_FULL_INFO");
    let olen = answer.info.len();
    f.expect(olen <= MPTCP_FULL_INFO_SIZE, format!("{what} optlen"), format!("at most the {MPTCP_FULL_INFO_SIZE} bytes passed"), olen);
    f.expect(olen > MPTCP_FULL_INFO_TCP_INFO_OFFSET, format!("{what} optlen"), format!("more than offsetof(tcp_info) = {MPTCP_FULL_INFO_TCP_INFO_OFFSET}"), olen);
    let full = match FullInfo::parse(&answer.info) {
        Ok(x) => x,
        Err(e) => {
            f.fail(format!("{what} answer: {e}"));
            return;
        }
    };
    let h = full.head;
    f.expect(h.size_tcpinfo_kernel > 0, format!("{what} size_tcpinfo_kernel"), "more than 0", h.size_tcpinfo_kernel);
    f.expect_eq(format!("{what} size_tcpinfo_user (min(kernel, {TCP_INFO_SIZE}))"), h.size_tcpinfo_kernel.min(TCP_INFO_SIZE as u32), h.size_tcpinfo_user);
    f.expect(h.size_sfinfo_kernel > 0, format!("{what} size_sfinfo_kernel"), "more than 0", h.size_sfinfo_kernel);
    f.expect_eq(format!("{what} size_sfinfo_user (min(kernel, {MPTCP_SUBFLOW_INFO_SIZE}))"), h.size_sfinfo_kernel.min(MPTCP_SUBFLOW_INFO_SIZE as u32), h.size_sfinfo_user);
    f.expect_eq(format!("{what} num_subflows"), 1, h.num_subflows);
    match full.mptcp_info() {
        None => f.fail(format!("{what}: expected an mptcp_info after the head, observed none (optlen {olen})")),
        Some(mi) => {
            f.expect(mi.get("subflows") == Some(0), format!("{what} mptcp_info.subflows (extra subflows)"), 0, opt(mi.get("subflows")));
            for field in ["bytes_sent", "bytes_received"] {
                match (mi.get(field), last.get(field)) {
                    (Some(a), Some(b)) => {
                        f.expect_eq(format!("{what} mptcp_info.{field} (the last MPTCP_INFO sample's)"), b, a);
                    }
                    _ => f.skip(format!("mptcp_info has no {field}")),
                }
            }
        }
    }
    let size_sf = h.size_sfinfo_user as usize;
    match answer.subflow_info.get(..size_sf).map(SubflowInfo::parse) {
        Some(Ok(sf)) => {
            f.expect_eq(format!("{what} subflow_info[0].id"), 1, sf.id);
            let same = sf.addrs.as_ref().map(|a| a.as_bytes()) == Some(addrs.as_bytes());
            f.expect(same, format!("{what} subflow_info[0].addrs"), format!("{addrs:?} as MPTCP_SUBFLOW_ADDRS"), format!("{:?}", sf.addrs));
        }
        other => f.fail(format!("{what} subflow_info[0]: expected an entry of {size_sf} bytes, observed {other:?}")),
    }
    let t = TcpInfo::from_bytes(answer.tcp_info.get(..h.size_tcpinfo_user as usize).unwrap_or_default());
    f.expect(ti.bytes_sent() == t.bytes_sent(), format!("{what} tcp_info[0].tcpi_bytes_sent"), format!("{} as MPTCP_TCPINFO", opt(ti.bytes_sent())), opt(t.bytes_sent()));
    f.expect(ti.bytes_received() == t.bytes_received(), format!("{what} tcp_info[0].tcpi_bytes_received"), format!("{} as MPTCP_TCPINFO", opt(ti.bytes_received())), opt(t.bytes_received()));
}

/// `MPTCP_FULL_INFO` after the transfer, on the client (before it closes) and on the server
/// (after the end of stream), as upstream does once data has been read.
pub(super) fn sockopt_full_info(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["family", "bytes"])?;
    let (_, n, pair) = scenario(ctx)?;
    let n64 = n as u64;
    let mut f = Findings::new();
    echo(&pair, n, ctx.deadline).map_err(|e| vec![e])?;
    full_info_side(&mut f, ctx, "client after the transfer", &pair.client, n64, n64);
    let server = client_closes(ctx, pair)?;
    full_info_side(&mut f, ctx, "server after the client closed", &server, n64, n64);
    f.finish()
}

// ------------------------------------------------------------------------------ IP_TOS

/// `IP_TOS` on a connected MPTCP socket: a set value reads back (`tos & 0xfc`, one byte),
/// optlen 0 succeeds with 0, optlen -1 is `EINVAL` with optlen unchanged.
pub(super) fn sockopt_ip_tos(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["family"])?;
    let family = family_arg(ctx)?;
    let pair = loopback_pair(ctx, family, Proto::Mptcp, Proto::Mptcp)?;
    let sock = &pair.client;
    let mut f = Findings::new();
    // Upstream draws one `rand() & 0xfc`; these cover every settable bit.
    for tos in [0x04u8, 0xb8, 0xfc] {
        if let Err(e) = so::set_ip_tos(sock, tos) {
            f.fail(format!("setsockopt(SOL_IP, IP_TOS, {tos:#04x}, 1): expected success, observed {e}"));
            continue;
        }
        let mut b = [0u8; 1];
        let a = getsockopt_raw(sock, libc::SOL_IP, libc::IP_TOS, &mut b, 1);
        let what = format!("getsockopt(SOL_IP, IP_TOS, optlen 1) after setting {tos:#04x}");
        if f.expect(a.errno.is_none() && a.optlen == 1, &what, "ok, optlen 1", a.describe()) {
            f.expect(b[0] == tos, &what, format!("{tos:#04x}"), format!("{:#04x}", b[0]));
        }
    }
    let mut b = [0u8; 4];
    let a = getsockopt_raw(sock, libc::SOL_IP, libc::IP_TOS, &mut b, 0);
    f.expect(a.errno.is_none() && a.optlen == 0, "getsockopt(SOL_IP, IP_TOS, optlen 0)", "ok, optlen 0", a.describe());
    let a = getsockopt_negative_len(sock, libc::SOL_IP, libc::IP_TOS, -1);
    f.expect(
        a.errno == Some(libc::EINVAL) && a.optlen as i32 == -1,
        "getsockopt(SOL_IP, IP_TOS, optlen -1)",
        format!("{}, optlen -1 unchanged", errno::describe(libc::EINVAL)),
        a.describe(),
    );
    f.finish()
}
