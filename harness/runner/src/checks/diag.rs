//! MPTCP inet_diag, socket accounting and the established-connection gauge: a port of
//! `tools/testing/selftests/net/mptcp/diag.sh` (with its helper `mptcp_diag.c`).
//!
//! Upstream runs `mptcp_connect` listeners on `0.0.0.0:10000..` and clients to `127.0.0.1`
//! in one namespace and reads them with `ss -M` (MPTCP inet_diag), `ss -t` (TCP inet_diag),
//! `/proc/net/protocols` and `nstat`. Here the check opens the sockets itself in the case's
//! host and sends the inet_diag requests `ss` would send (`mptcp_wire::diag`):
//!
//! | check | upstream subtests |
//! |---|---|
//! | `diag_no_msk` | "no msk on netns creation" |
//! | `diag_listen_filters` | "listen match for dport 10000", "listen match for sport 10000", "listen match for saddr and sport", "all listen sockets" |
//! | `diag_msk_flags` | "after MPC handshake", "....chk remote_key", "....chk no fallback"; with `server = "tcp"`: "check fallback" |
//! | `diag_last_time_info` | "....chk last_data_sent", "....chk last_data_recv", "....chk last_ack_recv" |
//! | `diag_msk_inuse` | "....chk 2 msk in use", "....chk 2->0 msk in use after flush"; "1" / "1->0" with `server = "tcp"`; "many" / "many->0" with `clients = 100` |
//! | `diag_cestab` | "....chk 2 cestab", "....chk 2->0 cestab after flush"; "1", "1->0"; "many", "many->0" |
//! | `diag_dump_one` | "....chk dump_one" |
//! | `diag_dump_subflow` | "....chk dump_subflow" |
//! | `diag_many_msk` | "many msk socket present" |
//! | `diag_listeners` | "no listener sockets - mptcp / - subflows", "many listener sockets - mptcp / - subflows" |
//!
//! Every scenario exchanges one byte each way on each connection (upstream's clients and
//! servers send "b" and "a"), so each connection is fully established. Counts are polled
//! until they hold or a short settle deadline passes (upstream polls some, reads others once
//! after waiting); the timing check polls the kernel's own millisecond counters instead of
//! sleeping 500 ms.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mptcp_spec::case::Proto;
use mptcp_spec::errno;
use mptcp_wire::diag::{AF_INET, Cond, DiagMsg, DiagRequest, Filter, HostCond, SS_CONNECTED, SockId, TCPF_LISTEN, TCP_LISTEN};
use mptcp_wire::mptcp_info::{MPTCP_INFO_FLAG_FALLBACK, MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED};
use socket2::Socket;

use super::CheckCtx;
use super::common::{Findings, connect_to, known_args, proto_arg, read_exact, settle, uint_arg, write_all};
use super::protocols::Protocols;
use super::sock_diag::DiagSocket;
use crate::traffic;
use crate::wait::{Deadline, poll_until};

/// diag.sh's first port; the namespace is the case's own, so fixed ports cannot clash.
const PORT: u16 = 10000;
/// diag.sh's first port of the many-listeners test.
const LISTENERS_PORT: u16 = 20002;

fn err(e: impl Into<String>) -> Vec<String> {
    vec![e.into()]
}

/// Listeners on `0.0.0.0:port..`, a client to `127.0.0.1` for each, the accepted sockets.
#[derive(Debug, Default)]
struct Scenario {
    listeners: Vec<Socket>,
    clients: Vec<Socket>,
    servers: Vec<Socket>,
}

fn listen_many(ctx: &CheckCtx<'_>, n: usize, port: u16, proto: Proto) -> Result<Vec<Socket>, Vec<String>> {
    (0..n)
        .map(|i| {
            let p = port + i as u16;
            traffic::listener(&ctx.host.ns, &ctx.host.name, IpAddr::V4(Ipv4Addr::UNSPECIFIED), p, proto).map_err(|e| err(format!("setup: {e}")))
        })
        .collect()
}

/// `n` connections, MPTCP clients to `server`-protocol listeners, one byte each way.
fn scenario(ctx: &CheckCtx<'_>, n: usize, server: Proto) -> Result<Scenario, Vec<String>> {
    let mut s = Scenario { listeners: listen_many(ctx, n, PORT, server)?, ..Default::default() };
    for (i, l) in s.listeners.iter().enumerate() {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), PORT + i as u16);
        let c = connect_to(ctx, addr, Proto::Mptcp)?;
        let a = traffic::accept(l, &ctx.host.name, ctx.deadline).map_err(|e| err(format!("setup: {e}")))?;
        let dl = ctx.deadline;
        write_all(&c, b"b", dl, "client").and_then(|_| read_exact(&a, 1, dl, "server")).map_err(err)?;
        write_all(&a, b"a", dl, "server").and_then(|_| read_exact(&c, 1, dl, "client")).map_err(err)?;
        s.clients.push(c);
        s.servers.push(a);
    }
    Ok(s)
}

/// The MPTCP sockets `ss -inmHM` lists with a `token:` (connected states, with
/// `INET_DIAG_INFO`).
fn msk(diag: &mut DiagSocket, deadline: Deadline) -> Result<Vec<DiagMsg>, String> {
    let req = DiagRequest::mptcp(AF_INET).states(SS_CONNECTED).with_info();
    Ok(diag.dump_both(&req, deadline)?.into_iter().filter(|m| m.mptcp_info().is_some()).collect())
}

/// Listening sockets of MPTCP (`ss -lM`) or TCP (`ss -lt`, which shows the MPTCP listeners'
/// subflow listeners).
fn listeners(diag: &mut DiagSocket, mptcp: bool, deadline: Deadline) -> Result<usize, String> {
    let req = if mptcp { DiagRequest::mptcp(AF_INET) } else { DiagRequest::tcp(AF_INET) }.states(TCPF_LISTEN);
    Ok(diag.dump_both(&req, deadline)?.iter().filter(|m| m.state == TCP_LISTEN).count())
}

/// Polls `sample` until it yields `want` or the settle deadline passes; returns the last
/// value (an error of `sample` ends the wait).
fn settle_on<T: PartialEq + Clone>(ctx: &CheckCtx<'_>, want: &T, mut sample: impl FnMut() -> Result<T, String>) -> Result<T, Vec<String>> {
    let mut last = None;
    let r = poll_until(settle(ctx), || match sample() {
        Ok(v) => {
            let done = v == *want;
            last = Some(v);
            done.then_some(Ok(()))
        }
        Err(e) => Some(Err(e)),
    });
    match r {
        Ok(Err(e)) => Err(err(e)),
        _ => last.ok_or_else(|| err("no sample taken")),
    }
}

fn server_arg(ctx: &CheckCtx<'_>) -> Result<Proto, Vec<String>> {
    proto_arg(ctx, "server", Proto::Mptcp)
}

// ------------------------------------------------------------------------------ listeners

/// "no msk on netns creation": a listener and no connection: no MPTCP socket with a token.
pub(super) fn diag_no_msk(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &[])?;
    let _l = listen_many(ctx, 1, PORT, Proto::Mptcp)?;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    let n = settle_on(ctx, &0, || msk(&mut diag, ctx.deadline).map(|v| v.len()))?;
    let mut f = Findings::new();
    f.expect_eq("no msk on netns creation: MPTCP sockets listed with a token (ss -inmHM)", 0, n);
    f.finish()
}

/// The listener filters of `chk_msk_listen`: `dport` matches nothing, `sport`, `src` +
/// `sport` and no filter match the one listener.
pub(super) fn diag_listen_filters(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &[])?;
    let _l = listen_many(ctx, 1, PORT, Proto::Mptcp)?;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    let listen = DiagRequest::mptcp(AF_INET).states(TCPF_LISTEN);
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let cases = [
        (format!("listen match for dport {PORT} (ss -Ml 'dport {PORT}')"), Some(Cond::Destination(HostCond::port(PORT))), true, 0),
        (format!("listen match for sport {PORT} (ss -Ml 'sport {PORT}')"), Some(Cond::Source(HostCond::port(PORT))), true, 1),
        (format!("listen match for saddr and sport (ss -Ml 'src inet:0.0.0.0:{PORT}')"), Some(Cond::Source(HostCond::prefix(any, 32, PORT))), false, 1),
        ("all listen sockets (ss -Ml)".to_string(), None, true, 1),
    ];
    let mut f = Findings::new();
    for (name, cond, both, want) in cases {
        let req = match cond {
            Some(c) => listen.clone().filter(Filter::all(&[c])),
            None => listen.clone(),
        };
        let got = if both { diag.dump_both(&req, ctx.deadline) } else { diag.dump(&req, ctx.deadline) }.map_err(err)?;
        let n = got.iter().filter(|m| m.state == TCP_LISTEN).count();
        f.expect_eq(format!("{name}: LISTEN sockets"), want, n);
    }
    f.finish()
}

/// "no listener sockets" then "many listener sockets": 0, then 100 MPTCP listeners and as
/// many TCP (subflow) listeners.
pub(super) fn diag_listeners(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["listeners"])?;
    let n = uint_arg(ctx, "listeners", 100, 1..=1000)? as usize;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    let mut f = Findings::new();
    for (what, want) in [("no listener sockets", 0usize), ("many listener sockets", n)] {
        let _ls = if want > 0 { listen_many(ctx, want, LISTENERS_PORT, Proto::Mptcp)? } else { Vec::new() };
        let m = settle_on(ctx, &want, || listeners(&mut diag, true, ctx.deadline))?;
        f.expect_eq(format!("{what} - mptcp (ss -nlHM)"), want, m);
        let t = settle_on(ctx, &want, || listeners(&mut diag, false, ctx.deadline))?;
        f.expect_eq(format!("{what} - subflows (ss -nlHt)"), want, t);
    }
    f.finish()
}

// ------------------------------------------------------------------------------ msk lists

/// "after MPC handshake" (2 msk), "....chk remote_key" (2) and "....chk no fallback" (0); with
/// `server = "tcp"`, "check fallback" (1 msk flagged fallback).
pub(super) fn diag_msk_flags(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["server"])?;
    let server = server_arg(ctx)?;
    let _s = scenario(ctx, 1, server)?;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    let count = |v: &[DiagMsg], flag: u32| v.iter().filter(|m| m.mptcp_info().and_then(|i| i.get("flags")).is_some_and(|x| x & u64::from(flag) != 0)).count();
    let sample = |diag: &mut DiagSocket| -> Result<(usize, usize, usize), String> {
        let v = msk(diag, ctx.deadline)?;
        Ok((v.len(), count(&v, MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED), count(&v, MPTCP_INFO_FLAG_FALLBACK)))
    };
    let mut f = Findings::new();
    if server == Proto::Mptcp {
        let (n, rk, fb) = settle_on(ctx, &(2, 2, 0), || sample(&mut diag))?;
        f.expect_eq("after MPC handshake: MPTCP sockets with a token (ss -inmHM)", 2, n);
        f.expect_eq("....chk remote_key: MPTCP sockets flagged remote_key", 2, rk);
        f.expect_eq("....chk no fallback: MPTCP sockets flagged fallback", 0, fb);
    } else {
        let fb = settle_on(ctx, &1, || sample(&mut diag).map(|(_, _, fb)| fb))?;
        f.expect_eq("check fallback: MPTCP sockets flagged fallback (client to a TCP listener)", 1, fb);
    }
    f.finish()
}

/// "....chk last_data_sent / last_data_recv / last_ack_recv": on an idle connection the
/// client msk's milliseconds-since counters (Linux 6.10) grow. Upstream samples, sleeps
/// 500 ms and wants more than 250 ms of growth; here the later samples are polled until each
/// counter has grown by more than 250 ms (at most 5 s of waiting).
pub(super) fn diag_last_time_info(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &[])?;
    const FIELDS: [&str; 3] = ["last_data_sent", "last_data_recv", "last_ack_recv"];
    const DELTA_MS: u64 = 250;
    let _s = scenario(ctx, 1, Proto::Mptcp)?;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    // `ss -inHM dport 10000`: the client's msk.
    let req = DiagRequest::mptcp(AF_INET).states(SS_CONNECTED).with_info().filter(Filter::all(&[Cond::Destination(HostCond::port(PORT))]));
    let sample = |diag: &mut DiagSocket| -> Result<Vec<Option<u64>>, String> {
        let v = diag.dump(&req, ctx.deadline)?;
        let [m] = v.as_slice() else { return Err(format!("ss -inHM dport {PORT}: expected 1 MPTCP socket, observed {}", v.len())) };
        let info = m.mptcp_info().ok_or("the client's msk has no INET_DIAG_INFO")?;
        Ok(FIELDS.iter().map(|f| info.get(f)).collect())
    };
    let first = sample(&mut diag).map_err(err)?;
    let mut f = Findings::new();
    if first.iter().any(Option::is_none) {
        f.skip("mptcp_info has no last_data_sent/last_data_recv/last_ack_recv (they came with Linux 6.10)");
        return f.finish();
    }
    let mut base: Vec<u64> = first.iter().map(|v| v.unwrap_or_default()).collect();
    let mut grown: Vec<Option<u64>> = vec![None; FIELDS.len()];
    let mut best = vec![0u64; FIELDS.len()];
    let mut restarts = vec![0usize; FIELDS.len()];
    let start = Instant::now();
    let mut failure = None;
    let _ = poll_until(ctx.deadline.min(Deadline::after(Duration::from_secs(5))), || {
        let now = match sample(&mut diag) {
            Ok(v) => v,
            Err(e) => {
                failure = Some(e);
                return Some(());
            }
        };
        for (i, v) in now.iter().enumerate() {
            let v = v.unwrap_or_default();
            if v < base[i] {
                // Activity restarted the counter: measure from here.
                base[i] = v;
                restarts[i] += 1;
            }
            let d = v - base[i];
            best[i] = best[i].max(d);
            if d > DELTA_MS && grown[i].is_none() {
                grown[i] = Some(d);
            }
        }
        grown.iter().all(Option::is_some).then_some(())
    });
    if let Some(e) = failure {
        return Err(err(e));
    }
    let waited = start.elapsed().as_millis();
    for (i, field) in FIELDS.iter().enumerate() {
        f.expect(
            grown[i].is_some(),
            format!("....chk {field}: growth on the idle client msk"),
            format!("more than {DELTA_MS} ms"),
            format!("at most {} ms over {waited} ms of polling ({} restarts)", best[i], restarts[i]),
        );
    }
    f.finish()
}

/// "many msk socket present": 100 listeners and 100 clients make 200 MPTCP sockets (upstream
/// waits up to 20 s).
pub(super) fn diag_many_msk(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["clients"])?;
    let n = uint_arg(ctx, "clients", 100, 1..=500)? as usize;
    let _s = scenario(ctx, n, Proto::Mptcp)?;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    let (mut max, mut last) = (0, 0);
    let r = poll_until(ctx.deadline, || match msk(&mut diag, ctx.deadline) {
        Ok(v) => {
            last = v.len();
            max = max.max(last);
            (last == 2 * n).then_some(Ok(()))
        }
        Err(e) => Some(Err(e)),
    });
    let mut f = Findings::new();
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(err(e)),
        Err(()) => f.fail(format!("many msk socket present: expected {} MPTCP sockets with a token, observed {last} at the deadline (max {max})", 2 * n)),
    }
    f.finish()
}

// ------------------------------------------------------------------------------ accounting

fn count_args(ctx: &CheckCtx<'_>) -> Result<(usize, Proto, &'static str), Vec<String>> {
    known_args(ctx, &["clients", "server"])?;
    let n = uint_arg(ctx, "clients", 1, 1..=500)? as usize;
    let server = server_arg(ctx)?;
    // Upstream's labels: "2" (one MPTCP connection), "1" (fallback), "many".
    let label = match (n, server) {
        (1, Proto::Mptcp) => "2",
        (1, Proto::Tcp) => "1",
        _ => "many",
    };
    Ok((n, server, label))
}

/// MPTCP sockets `n` connections make: both ends, or only the client against TCP.
fn msk_of(n: usize, server: Proto) -> usize {
    if server == Proto::Mptcp { 2 * n } else { n }
}

/// "....chk N msk in use" and "....chk N->0 msk in use after flush": the `MPTCP` row of
/// `/proc/net/protocols` counts the msk plus the MPTCP listeners, and returns to 0 once all
/// are closed.
pub(super) fn diag_msk_inuse(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    let (n, server, label) = count_args(ctx)?;
    let s = scenario(ctx, n, server)?;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    let mut proto = Protocols::open(ctx.host).map_err(err)?;
    let mut f = Findings::new();
    let inuse = |proto: &mut Protocols| -> Result<u64, String> { proto.sockets("MPTCP")?.ok_or_else(|| "no MPTCP row in /proc/net/protocols".to_string()) };
    let listening = listeners(&mut diag, true, ctx.deadline).map_err(err)?;
    let want = (msk_of(n, server) + listening) as u64;
    let got = settle_on(ctx, &want, || inuse(&mut proto))?;
    f.expect_eq(format!("....chk {label} msk in use: /proc/net/protocols MPTCP sockets ({} msk + {listening} MPTCP listeners)", msk_of(n, server)), want, got);
    drop(s);
    let listening = listeners(&mut diag, true, ctx.deadline).map_err(err)?;
    let want = listening as u64;
    let got = settle_on(ctx, &want, || inuse(&mut proto))?;
    f.expect_eq(format!("....chk {label}->0 msk in use after flush: /proc/net/protocols MPTCP sockets ({listening} MPTCP listeners left)"), want, got);
    f.finish()
}

/// "....chk N cestab" and "....chk N->0 cestab after flush": the `MPTcpExtMPCurrEstab`
/// gauge counts the established msk and returns to 0 once they are closed.
pub(super) fn diag_cestab(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    const NAME: &str = "MPTcpExtMPCurrEstab";
    let (n, server, label) = count_args(ctx)?;
    let mut f = Findings::new();
    let read = || -> Result<Option<i64>, String> { Ok(ctx.host.mib.snapshot().map_err(|e| e.to_string())?.get(NAME)) };
    if read().map_err(err)?.is_none() {
        f.skip(format!("this kernel has no {NAME} counter (it came with Linux 6.10)"));
        return f.finish();
    }
    let s = scenario(ctx, n, server)?;
    let want = msk_of(n, server) as i64;
    let got = settle_on(ctx, &Some(want), read)?;
    f.expect_eq(format!("....chk {label} cestab: {NAME}"), want, got.unwrap_or(-1));
    drop(s);
    let got = settle_on(ctx, &Some(0), read)?;
    f.expect_eq(format!("....chk {label}->0 cestab after flush: {NAME}"), 0, got.unwrap_or(-1));
    f.finish()
}

// ------------------------------------------------------------------------------ lookups

/// "....chk dump_one": an MPTCP inet_diag request without `NLM_F_DUMP`, the token in
/// `idiag_cookie[0]` and `INET_DIAG_INFO` asked for, answers the msk of that token (upstream
/// looks up the first `ss` token; here both msk's, and an unknown token must be `ENOENT`).
pub(super) fn diag_dump_one(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &[])?;
    let _s = scenario(ctx, 1, Proto::Mptcp)?;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    let list = settle_on(ctx, &2, || msk(&mut diag, ctx.deadline).map(|v| v.len())).and_then(|_| msk(&mut diag, ctx.deadline).map_err(err))?;
    let mut f = Findings::new();
    f.expect_eq("....chk dump_one: MPTCP sockets to look up (ss -inmHM)", 2, list.len());
    let mut tokens = Vec::new();
    for m in &list {
        let Some(token) = m.mptcp_info().and_then(|i| i.token()) else {
            f.fail(format!("....chk dump_one: msk {:?} -> {:?}: expected a token in its mptcp_info, observed none", m.local(), m.remote()));
            continue;
        };
        tokens.push(token);
        let req = DiagRequest::mptcp(m.family).with_info().states(0).id(SockId::token(token));
        match diag.get(&req, ctx.deadline).map_err(err)? {
            Ok(one) => {
                let got = one.mptcp_info().and_then(|i| i.token());
                f.expect(got == Some(token), format!("....chk dump_one: token {token:x}: mptcp_info.token of the answer"), format!("{token:x}"), got.map_or("none".into(), |t| format!("{t:x}")));
                f.expect((one.local(), one.remote()) == (m.local(), m.remote()), format!("....chk dump_one: token {token:x}: the answer's addresses"), format!("{:?} -> {:?} as in the dump", m.local(), m.remote()), format!("{:?} -> {:?}", one.local(), one.remote()));
            }
            Err(e) => f.fail(format!("....chk dump_one: token {token:x}: expected its msk, observed {}", errno::describe(e))),
        }
    }
    if let Some(unknown) = (1..).find(|t| !tokens.contains(t)) {
        let req = DiagRequest::mptcp(AF_INET).with_info().states(0).id(SockId::token(unknown));
        let r = diag.get(&req, ctx.deadline).map_err(err)?;
        f.expect(r.as_ref().err() == Some(&libc::ENOENT), format!("dump_one of token {unknown:x}, which no connection has"), errno::describe(libc::ENOENT), match r {
            Ok(m) => format!("a socket {:?} -> {:?}", m.local(), m.remote()),
            Err(e) => errno::describe(e),
        });
    }
    f.finish()
}

/// "....chk dump_subflow": the TCP inet_diag of an MPTCP subflow carries
/// `INET_DIAG_ULP_INFO` ("mptcp", `MPTCP_SUBFLOW_ATTR_*`); an exact lookup of the subflow by
/// its addresses (as `mptcp_diag -s`) shows the same tokens and ids as the dump (as
/// `ss -tni`), and the local token is the owning msk's (`MPTCP_INFO`).
pub(super) fn diag_dump_subflow(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &[])?;
    let s = scenario(ctx, 1, Proto::Mptcp)?;
    let mut diag = DiagSocket::open(ctx.host).map_err(err)?;
    let mut f = Findings::new();
    let owners: Vec<(Option<SocketAddr>, Option<u32>, &str)> = [(&s.clients[0], "client"), (&s.servers[0], "server")]
        .into_iter()
        .map(|(sock, who)| (sock.local_addr().ok().and_then(|a| a.as_socket()), crate::sockopt::mptcp_info(sock).ok().and_then(|i| i.token()), who))
        .collect();
    let dump = diag.dump_both(&DiagRequest::tcp(AF_INET).states(SS_CONNECTED).with_info(), ctx.deadline).map_err(err)?;
    if !dump.iter().any(|m| m.ulp_info().is_some()) {
        f.skip("no TCP socket carries INET_DIAG_ULP_INFO: this kernel does not report MPTCP subflow info over inet_diag");
        return f.finish();
    }
    let subflows: Vec<&DiagMsg> = dump.iter().filter(|m| m.ulp_info().and_then(Result::ok).and_then(|u| u.name).as_deref() == Some("mptcp")).collect();
    f.expect_eq("....chk dump_subflow: TCP sockets with ULP mptcp (ss -tni)", 2, subflows.len());
    for sf in subflows {
        let (Some(local), Some(remote)) = (sf.local(), sf.remote()) else { continue };
        let what = format!("....chk dump_subflow {local} -> {remote}");
        let listed = sf.ulp_info().and_then(Result::ok).and_then(|u| u.mptcp);
        let Some(listed) = listed else {
            f.fail(format!("{what}: expected INET_ULP_INFO_MPTCP in the dump, observed none"));
            continue;
        };
        let one = match diag.get(&DiagRequest::tcp(sf.family).with_info().id(SockId::connection(local, remote)), ctx.deadline).map_err(err)? {
            Ok(m) => m,
            Err(e) => {
                f.fail(format!("{what}: exact lookup (mptcp_diag -s): expected the subflow, observed {}", errno::describe(e)));
                continue;
            }
        };
        let found = one.ulp_info().and_then(Result::ok).and_then(|u| u.mptcp);
        let show = |s: &Option<mptcp_wire::diag::SubflowDiag>| s.as_ref().and_then(|s| s.ss_token()).unwrap_or_else(|| "no token".into());
        f.expect(found.is_some() && show(&found) == show(&Some(listed.clone())), format!("{what}: token of the exact lookup"), format!("{} as in the dump", show(&Some(listed.clone()))), show(&found));
        if let Some((_, token, who)) = owners.iter().find(|(a, _, _)| *a == Some(local)) {
            f.expect(listed.token_loc.is_some() && listed.token_loc == *token, format!("{what}: MPTCP_SUBFLOW_ATTR_TOKEN_LOC"), format!("the {who} msk's token {}", token.map_or("?".into(), |t| format!("{t:x}"))), listed.token_loc.map_or("none".into(), |t| format!("{t:x}")));
        } else {
            f.fail(format!("{what}: expected the local address of the client or the accepted socket, observed another"));
        }
    }
    f.finish()
}
