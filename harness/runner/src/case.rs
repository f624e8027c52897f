//! One case's life: check it can run, build its topology, configure hosts, run its
//! connections, observe counters, judge, report, tear down.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use mptcp_spec::Case;
use mptcp_spec::case::{Connection, Stage};
use mptcp_spec::errno;
use mptcp_spec::judge::{self, Mismatch};
use mptcp_wire::mib::Snapshot;

use crate::probe::capabilities;
use crate::topology::Topology;
use crate::traffic::{self, SockError, Transfer};
use crate::wait::{Deadline, poll_until};
use crate::{env, pm, sysctl};

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// Something did not hold; the report says what.
    Fail,
    /// The case could not run here; the reason says why.
    Skip(String),
    /// A known-broken case failed as expected.
    XFail(String),
    /// A known-broken case passed: the xfail marker is stale.
    XPass,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Trial name.
    pub id: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Wall time.
    pub elapsed: Duration,
    /// Human report (empty on a plain pass).
    pub report: String,
    /// Where the failure bundle was written, if any.
    pub artifacts: Option<PathBuf>,
}

/// Settings shared by all cases of a run.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// How many cases run at once (scales deadlines).
    pub concurrency: usize,
    /// Keep a failed case's namespaces.
    pub keep: bool,
    /// Where failure bundles go.
    pub artifacts_dir: PathBuf,
}

impl RunContext {
    /// From the environment, for `concurrency` parallel cases.
    pub fn from_env(concurrency: usize) -> Self {
        let artifacts_dir = std::env::var_os("MPTCP_CT_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::library::workspace_root().join("target/mptcp-artifacts"));
        RunContext { concurrency: concurrency.max(1), keep: env::keep(), artifacts_dir }
    }
}

/// Serial cases take this for writing; others for reading.
static SERIAL: RwLock<()> = RwLock::new(());

/// Runs one case and returns its result. Never panics on a kernel misbehaviour: that is a
/// `Fail` with a report.
pub fn run(case: &Case, ctx: &RunContext) -> CaseResult {
    let start = Instant::now();
    let (verdict, report, artifacts) = {
        let _guard: Box<dyn std::any::Any> = if case.serial {
            Box::new(SERIAL.write().unwrap_or_else(|p| p.into_inner()))
        } else {
            Box::new(SERIAL.read().unwrap_or_else(|p| p.into_inner()))
        };
        match blockers(case) {
            Some(reason) => (Verdict::Skip(reason), String::new(), None),
            None => execute(case, ctx),
        }
    };
    let verdict = match (&case.xfail, verdict) {
        (Some(x), Verdict::Fail) => Verdict::XFail(format!("{}{}", x.reason, x.link.as_ref().map(|l| format!(" ({l})")).unwrap_or_default())),
        (Some(_), Verdict::Pass) => Verdict::XPass,
        (_, v) => v,
    };
    CaseResult { id: case.id.clone(), verdict, elapsed: start.elapsed(), report, artifacts }
}

/// Why the case cannot run here, if it cannot.
fn blockers(case: &Case) -> Option<String> {
    let caps = capabilities();
    if let Some(b) = &caps.blocker {
        return Some(b.clone());
    }
    let missing: Vec<&str> =
        judge::named_counters(case).map(|(_, c)| c).filter(|c| !caps.has_counter(c)).collect();
    if !missing.is_empty() {
        return Some(format!("the kernel does not expose counter(s) {}", missing.join(", ")));
    }
    None
}

/// What one connection did.
#[derive(Debug)]
struct ConnOutcome {
    name: String,
    result: Result<(Transfer, Transfer), (Option<Stage>, SockError)>,
}

fn execute(case: &Case, ctx: &RunContext) -> (Verdict, String, Option<PathBuf>) {
    let deadline = Deadline::after(env::scaled(case.timeout, ctx.concurrency));
    let mut report = String::new();
    let topo = match Topology::build(&case.topology) {
        Ok(t) => t,
        Err(e) => return (Verdict::Fail, format!("building topology {:?} failed: {e}\n", case.topology.name), None),
    };

    if let Err(e) = setup_hosts(case, &topo) {
        let _ = writeln!(report, "host setup failed: {e}");
        return finish(case, ctx, topo, Verdict::Fail, report);
    }

    let before = match snapshots(&topo) {
        Ok(s) => s,
        Err(e) => return finish(case, ctx, topo, Verdict::Fail, format!("{e}\n")),
    };

    let outcomes = run_connections(case, &topo, deadline);
    let mut failed = false;
    for (conn, o) in case.connections.iter().zip(&outcomes) {
        match (&o.result, conn.error) {
            (Ok((c, s)), None) => {
                let _ = writeln!(report, "{}: ok: client sent {} received {}; server sent {} received {}", o.name, c.sent, c.received, s.sent, s.received);
            }
            (Ok(_), Some(want)) => {
                failed = true;
                let _ = writeln!(report, "{}: expected {} to fail with {}, but the transfer succeeded", o.name, stage_name(want.at), errno::describe(want.errno));
            }
            (Err((at, e)), Some(want)) if e.errno() == Some(want.errno) && *at == Some(want.at) => {
                let _ = writeln!(report, "{}: failed as expected: {e}", o.name);
            }
            (Err((_, e)), Some(want)) => {
                failed = true;
                let _ = writeln!(report, "{}: expected {} to fail with {}, observed: {e}", o.name, stage_name(want.at), errno::describe(want.errno));
            }
            (Err((_, e)), None) => {
                failed = true;
                let _ = writeln!(report, "{}: {e}", o.name);
            }
        }
    }

    // Counters move asynchronously (e.g. after a close): wait until the named expectations
    // hold, or until a short settle deadline, then judge the final values.
    let settle = Deadline::after(env::scaled(Duration::from_secs(2), ctx.concurrency)).min(deadline);
    let deltas = poll_until(settle, || {
        let d = deltas(&topo, &before).ok()?;
        judge::named_counters_hold(case, &d).then_some(d)
    })
    .or_else(|()| deltas(&topo, &before));
    let deltas = match deltas {
        Ok(d) => d,
        Err(e) => return finish(case, ctx, topo, Verdict::Fail, format!("{report}{e}\n")),
    };
    let mismatches = judge::check_all_counters(case, &deltas);
    if !mismatches.is_empty() {
        failed = true;
    }
    if failed {
        let mut r = String::new();
        if !mismatches.is_empty() {
            let _ = writeln!(r, "expectations that did not hold:");
            for m in &mismatches {
                let _ = writeln!(r, "  {m}");
            }
        }
        let _ = writeln!(r, "connections:");
        for line in report.lines() {
            let _ = writeln!(r, "  {line}");
        }
        r += &counter_dump(&deltas, &mismatches);
        return finish(case, ctx, topo, Verdict::Fail, r);
    }
    (Verdict::Pass, String::new(), None)
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Socket => "socket()",
        Stage::Listen => "the listener",
        Stage::Connect => "connect()",
    }
}

fn setup_hosts(case: &Case, topo: &Topology) -> Result<(), String> {
    for (name, setup) in &case.hosts {
        let host = topo.host(name);
        let mut sysctls = setup.sysctls.clone();
        if let Some(t) = setup.pm_type {
            let v = match t {
                mptcp_spec::case::PmType::Kernel => "0",
                mptcp_spec::case::PmType::Userspace => "1",
            };
            sysctls.push(("net.mptcp.pm_type".into(), v.into()));
        }
        sysctl::write_all(&host.ns, &sysctls).map_err(|e| format!("{name}: {e}"))?;
        pm::apply(host, setup).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

fn snapshots(topo: &Topology) -> Result<BTreeMap<String, Snapshot>, String> {
    topo.hosts
        .iter()
        .map(|(n, h)| h.mib.snapshot().map(|s| (n.clone(), s)).map_err(|e| e.to_string()))
        .collect()
}

fn deltas(topo: &Topology, before: &BTreeMap<String, Snapshot>) -> Result<BTreeMap<String, Snapshot>, String> {
    let now = snapshots(topo)?;
    Ok(now.into_iter().map(|(h, s)| (h.clone(), before[&h].delta(&s))).collect())
}

fn seeds(index: usize) -> (u64, u64) {
    let base = 0x6d70_7463_7000_0000u64 + (index as u64) * 2;
    (base, base + 1)
}

fn run_connections(case: &Case, topo: &Topology, deadline: Deadline) -> Vec<ConnOutcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = case
            .connections
            .iter()
            .enumerate()
            .map(|(i, c)| s.spawn(move || ConnOutcome { name: c.name.clone(), result: run_connection(i, c, topo, deadline) }))
            .collect();
        handles
            .into_iter()
            .zip(&case.connections)
            .map(|(h, c)| {
                h.join().unwrap_or_else(|p| ConnOutcome {
                    name: c.name.clone(),
                    result: Err((None, SockError::Timeout {
                        host: c.client.clone(),
                        what: "connection thread".into(),
                        detail: format!("panicked: {}", crate::netns::panic_text(&p)),
                    })),
                })
            })
            .collect()
    })
}

type Staged<T> = Result<T, (Option<Stage>, SockError)>;

fn at(stage: Stage) -> impl FnOnce(SockError) -> (Option<Stage>, SockError) {
    move |e| (Some(stage), e)
}

fn run_connection(index: usize, c: &Connection, topo: &Topology, deadline: Deadline) -> Staged<(Transfer, Transfer)> {
    let server = topo.host(&c.server);
    let client = topo.host(&c.client);
    let cl = format!("{} (client)", c.client);
    let sv = format!("{} (server)", c.server);
    let lst = traffic::listener(&server.ns, &sv, c.listen, c.port, c.server_proto).map_err(at(Stage::Listen))?;
    let mut csock = traffic::client_socket(&client.ns, &cl, c.connect, c.client_proto).map_err(at(Stage::Socket))?;
    let dst = SocketAddr::new(c.connect, c.port);
    let (up, down) = seeds(index);
    // The handshake completes before accept() can succeed, so connect first (a failure
    // needs no server-side cancellation), then accept, then exchange on both sides at once.
    traffic::connect(&csock, &cl, dst, deadline).map_err(at(Stage::Connect))?;
    let mut ssock = traffic::accept(&lst, &sv, deadline).map_err(|e| (None, e))?;
    drop(lst);
    std::thread::scope(|s| {
        let srv = s.spawn(|| traffic::exchange(&mut ssock, &sv, c.download, down, c.upload, up, deadline));
        let cli = traffic::exchange(&mut csock, &cl, c.upload, up, c.download, down, deadline);
        // A failed side drops its socket here, which ends the peer's loop (EOF or reset).
        drop(csock);
        let srv = srv.join().unwrap_or_else(|p| {
            Err(SockError::Timeout { host: sv.clone(), what: "server thread".into(), detail: format!("panicked: {}", crate::netns::panic_text(&p)) })
        });
        Ok((cli.map_err(|e| (None, e))?, srv.map_err(|e| (None, e))?))
    })
}

fn counter_dump(deltas: &BTreeMap<String, Snapshot>, mismatches: &[Mismatch]) -> String {
    let mut r = String::from("counter deltas (non-zero, per host):\n");
    for (h, d) in deltas {
        let _ = writeln!(r, "  {h}:");
        let mut any = false;
        for (n, v) in d.non_zero() {
            if n.starts_with("MPTcpExt") || n.starts_with("TcpExt") || n.starts_with("Tcp") || mismatches.iter().any(|m| m.what == n) {
                let mark = if mismatches.iter().any(|m| &m.host == h && m.what == n) { "  <- mismatch" } else { "" };
                let _ = writeln!(r, "    {n} = {v}{mark}");
                any = true;
            }
        }
        if !any {
            let _ = writeln!(r, "    (none)");
        }
    }
    r
}

fn finish(case: &Case, ctx: &RunContext, topo: Topology, verdict: Verdict, report: String) -> (Verdict, String, Option<PathBuf>) {
    let mut report = format!("case: {} ({})\ntopology: {}\n{report}", case.summary, case.id, case.topology.name);
    let dir = ctx.artifacts_dir.join(case.id.replace("::", "__"));
    let artifacts = match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join("report.txt"), &report)) {
        Ok(()) => {
            let _ = writeln!(report, "report bundle: {}", dir.display());
            Some(dir)
        }
        Err(e) => {
            let _ = writeln!(report, "(could not write the report bundle to {}: {e})", dir.display());
            None
        }
    };
    if ctx.keep {
        let _ = writeln!(report, "kept topology (until the next run sweeps it; enter with `ip netns exec <name> bash`):");
        for (host, r) in topo.keep() {
            match r {
                Ok(name) => {
                    let _ = writeln!(report, "  {host}: ip netns exec {name} bash");
                }
                Err(e) => {
                    let _ = writeln!(report, "  {host}: could not keep: {e}");
                }
            }
        }
    }
    (verdict, report, artifacts)
}
