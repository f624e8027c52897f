//! `TCP_INQ`, `FIONREAD`, `TIOCOUTQ` and `SIOCOUTQNSD` on MPTCP and fallback sockets: a port
//! of `tools/testing/selftests/net/mptcp/mptcp_inq.c` (run by `mptcp_sockopt.sh` as
//! "TCP_INQ cmsg/ioctl" with `-t tcp`, `-r tcp`, each v4 and `-6`, and `-r tcp -t tcp`).
//!
//! The client sends `bytes` (upstream: 128..4095 random); the accepted socket, with `TCP_INQ`
//! on, polls `FIONREAD` until it shows them all (never more), reads one byte (the `TCP_CM_INQ`
//! message says `bytes - 1` remain), then the rest (exactly that many; 0 remain). The client
//! waits until `TIOCOUTQ` drops to 0 (never above what it wrote, `SIOCOUTQNSD` never above
//! `TIOCOUTQ`), sends `bulk` bytes (upstream: 1..17 MiB random) while the server checks that
//! no `TCP_CM_INQ` exceeds what remains, waits for the acknowledgement again, sends one last
//! byte and closes. Once the FIN has arrived, reading that byte reports 1 remaining (the
//! FIN), and so does the end-of-stream read.
//!
//! Upstream sleeps one second for the FIN; here the server waits for `POLLRDHUP`, bounded by
//! the deadline. Arguments: `family = 4 | 6`, `client` and `server` = `"mptcp" | "tcp"`
//! (default `"mptcp"`), `bytes` (default 1000), `bulk` (default 4 MiB + 4321).

use std::sync::mpsc::{Receiver, Sender};

use mptcp_spec::case::Proto;
use nix::poll::PollFlags;
use socket2::Socket;

use super::CheckCtx;
use super::common::{Findings, Pair, family_arg, known_args, loopback_pair, payload, proto_arg, settle, uint_arg, wait_for, write_all};
use crate::sockopt::{self as so, FIONREAD, SIOCOUTQNSD, TIOCOUTQ};
use crate::wait::{Deadline, poll_until};

/// The synchronisation points of upstream's control socket, server to client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Go {
    /// The first bytes are drained: send the bulk.
    Huge,
    /// The bulk is read: send the last byte and close.
    Shut,
}

/// The `mptcp_inq.c` exchange for one client/server protocol pair.
pub(super) fn inq(ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    known_args(ctx, &["family", "client", "server", "bytes", "bulk"])?;
    let family = family_arg(ctx)?;
    let client_proto = proto_arg(ctx, "client", Proto::Mptcp)?;
    let server_proto = proto_arg(ctx, "server", Proto::Mptcp)?;
    let len = uint_arg(ctx, "bytes", 1000, 128..=4095)? as usize;
    let bulk = uint_arg(ctx, "bulk", 4 * 1024 * 1024 + 4321, 4097..=64 * 1024 * 1024)? as usize;
    let Pair { listener, client, server } = loopback_pair(ctx, family, client_proto, server_proto)?;
    drop(listener);
    let mut f = Findings::new();
    if let Err(e) = so::set_tcp_inq(&server, true) {
        f.fail(format!("server: setsockopt(IPPROTO_TCP, TCP_INQ, 1) on the accepted socket: expected success, observed {e}"));
        return f.finish();
    }
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let (cf, sf) = std::thread::scope(|s| {
        let c = s.spawn(move || sender(ctx, client, len, bulk, go_rx, closed_tx));
        let sf = receiver(ctx, server, len, bulk, &go_tx, &closed_rx);
        // The receiver is done: dropping its sender ends a client still waiting for a cue.
        drop(go_tx);
        (c.join(), sf)
    });
    let cf = cf.unwrap_or_else(|p| {
        let mut f = Findings::new();
        f.fail(format!("client thread panicked: {}", crate::netns::panic_text(&*p)));
        f
    });
    f.absorb(cf);
    f.absorb(sf);
    f.finish()
}

/// Polls `TIOCOUTQ` until 0 (the peer acknowledged everything); every sample must show at
/// most `total` queued and `SIOCOUTQNSD <= TIOCOUTQ`.
fn wait_for_ack(f: &mut Findings, ctx: &CheckCtx<'_>, sock: &Socket, total: usize, when: &str) {
    let mut last = (0, 0);
    let mut bad = false;
    let r = poll_until(settle(ctx), || {
        let (Ok(outq), Ok(nsd)) = (so::ioctl_int(sock, TIOCOUTQ), so::ioctl_int(sock, SIOCOUTQNSD)) else {
            return Some(Err(format!("ioctl(TIOCOUTQ/SIOCOUTQNSD): {}", std::io::Error::last_os_error())));
        };
        last = (outq, nsd);
        if !bad && (outq as usize > total || nsd > outq) {
            bad = true;
            f.expect(outq as usize <= total, format!("client {when}: TIOCOUTQ"), format!("at most the {total} bytes written"), outq);
            f.expect(nsd <= outq, format!("client {when}: SIOCOUTQNSD"), format!("at most TIOCOUTQ ({outq})"), nsd);
        }
        (outq == 0).then_some(Ok(()))
    });
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => f.fail(format!("client {when}: {e}")),
        Err(()) => f.fail(format!("client {when}: TIOCOUTQ: expected 0 (everything acknowledged) before the deadline, observed {} (SIOCOUTQNSD {})", last.0, last.1)),
    }
}

/// The client of `mptcp_inq.c`.
fn sender(ctx: &CheckCtx<'_>, sock: Socket, len: usize, bulk: usize, go: Receiver<Go>, closed: Sender<()>) -> Findings {
    let mut f = Findings::new();
    let wait_go = |want: Go| go.recv_timeout(ctx.deadline.remaining()).ok() == Some(want);
    if let Err(e) = write_all(&sock, &payload(len), ctx.deadline, "client") {
        f.fail(e);
        return f;
    }
    if !wait_go(Go::Huge) {
        return f; // the receiver gave up; it reports why
    }
    wait_for_ack(&mut f, ctx, &sock, len, &format!("after writing {len} bytes"));
    let chunk = payload(4096);
    let mut sent = 0;
    while sent < bulk {
        let n = (bulk - sent).min(chunk.len());
        if let Err(e) = write_all(&sock, &chunk[..n], ctx.deadline, "client bulk") {
            f.fail(format!("{e} (after {sent}/{bulk} bulk bytes)"));
            return f;
        }
        sent += n;
    }
    if !wait_go(Go::Shut) {
        return f;
    }
    wait_for_ack(&mut f, ctx, &sock, bulk, &format!("after writing {bulk} bulk bytes"));
    if let Err(e) = write_all(&sock, b"!", ctx.deadline, "client last byte") {
        f.fail(e);
    }
    drop(sock);
    let _ = closed.send(());
    f
}

/// One `recvmsg` of at most `max` bytes once data (or the end) is there.
fn read_inq(sock: &Socket, max: usize, deadline: Deadline, what: &str) -> Result<so::InqRead, String> {
    let mut buf = vec![0u8; max];
    loop {
        match so::recv_with_inq(sock, &mut buf) {
            Ok(r) => return Ok(r),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                wait_for(sock, PollFlags::POLLIN, deadline, what)?;
            }
            Err(e) => return Err(format!("{what}: recvmsg: {e}")),
        }
    }
}

fn show(inq: Option<i32>) -> String {
    inq.map_or("no TCP_CM_INQ control message".into(), |v| v.to_string())
}

/// The server of `mptcp_inq.c`.
fn receiver(ctx: &CheckCtx<'_>, sock: Socket, len: usize, bulk: usize, go: &Sender<Go>, closed: &Receiver<()>) -> Findings {
    let mut f = Findings::new();
    let dl = ctx.deadline;
    // FIONREAD climbs to `len`, never above.
    let mut last = 0;
    let r = poll_until(settle(ctx), || match so::ioctl_int(&sock, FIONREAD) {
        Ok(q) => {
            last = q;
            (q as usize >= len).then_some(Ok(q))
        }
        Err(e) => Some(Err(e)),
    });
    match r {
        Ok(Ok(q)) => {
            f.expect_eq(format!("server: FIONREAD once {len} bytes were sent"), len as i32, q);
        }
        Ok(Err(e)) => f.fail(format!("server: ioctl(FIONREAD): expected success, observed {e}")),
        Err(()) => f.fail(format!("server: FIONREAD: expected {len} before the deadline, observed {last}")),
    }
    if f.failed() {
        return f;
    }
    let step = |f: &mut Findings, r: Result<so::InqRead, String>| r.map_err(|e| f.fail(e)).ok();
    let Some(one) = step(&mut f, read_inq(&sock, 1, dl, "server first byte")) else { return f };
    f.expect(one.controllen != 0, "server: recvmsg of 1 byte: msg_controllen", "non-zero", one.controllen);
    f.expect_eq("server: recvmsg of 1 byte: length", 1, one.len);
    f.expect(one.inq == Some(len as i32 - 1), "server: TCP_CM_INQ after reading 1 of the first bytes", len - 1, show(one.inq));
    let Some(rest) = step(&mut f, read_inq(&sock, 4096, dl, "server rest")) else { return f };
    f.expect_eq("server: recvmsg of the rest: length (the previous TCP_CM_INQ)", len - 1, rest.len);
    f.expect(rest.inq == Some(0), "server: TCP_CM_INQ after draining", 0, show(rest.inq));
    if go.send(Go::Huge).is_err() {
        return f;
    }

    let mut tot = 0usize;
    let mut over = None;
    while tot < bulk {
        let Some(r) = step(&mut f, read_inq(&sock, 4096, dl, &format!("server bulk after {tot}/{bulk} bytes"))) else { return f };
        if r.len == 0 {
            f.fail(format!("server: bulk: expected {bulk} bytes, observed the end of stream after {tot}"));
            return f;
        }
        tot += r.len;
        let remaining = bulk - tot.min(bulk);
        match r.inq {
            None => {
                f.fail(format!("server: bulk recvmsg after {tot} bytes: expected a TCP_CM_INQ control message, observed none"));
                return f;
            }
            Some(v) if v < 0 || v as usize > remaining => {
                over.get_or_insert((tot, v, remaining));
            }
            Some(_) => {}
        }
    }
    if let Some((at, v, remaining)) = over {
        f.fail(format!("server: TCP_CM_INQ during the bulk transfer (first excess after {at} bytes read): expected at most the {remaining} bytes remaining, observed {v}"));
    }
    if go.send(Go::Shut).is_err() {
        return f;
    }
    if closed.recv_timeout(dl.remaining()).is_err() {
        f.fail("server: the client did not send its last byte and close before the deadline");
        return f;
    }
    // Upstream sleeps 1 s for the FIN; POLLRDHUP says it arrived.
    if let Err(e) = wait_for(&sock, PollFlags::from_bits_retain(libc::POLLRDHUP), dl, "server: waiting for the peer's FIN (POLLRDHUP)") {
        f.fail(e);
        return f;
    }
    let Some(last) = step(&mut f, read_inq(&sock, 1, dl, "server last byte")) else { return f };
    f.expect_eq("server: recvmsg of the last byte: length", 1, last.len);
    f.expect(last.inq == Some(1), "server: TCP_CM_INQ after the last byte, FIN received", 1, show(last.inq));
    let Some(end) = step(&mut f, read_inq(&sock, 1, dl, "server end of stream")) else { return f };
    f.expect_eq("server: recvmsg at the end of stream: length", 0, end.len);
    f.expect(end.inq == Some(1), "server: TCP_CM_INQ at the end of stream", 1, show(end.inq));
    f
}
