//! One case's life: check it can run, build its topology, configure hosts, run its
//! connections, observe counters, judge, report, tear down.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::os::fd::OwnedFd;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mptcp_spec::Case;
use mptcp_spec::case::{Connection, Side, Stage};
use mptcp_spec::errno;
use mptcp_spec::judge::{self, Mismatch};
use mptcp_wire::mib::Snapshot;

use crate::probe::capabilities;
use crate::topology::Topology;
use crate::traffic::{self, SockError, Stream, Transfer};
use crate::wait::{Deadline, poll_until};
use crate::events::{EventLog, EventRecorder};
use crate::{env, pm, sockopt, steps, sysctl};
use mptcp_spec::events::{self, Vars};
use mptcp_wire::event::{AttrValue, EventKind};

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
    let start;
    // Counters this kernel does not expose are left unchecked (and said so), as upstream
    // skips one check rather than the subtest; strict mode keeps them as missing capabilities.
    let unchecked = crate::probe::unchecked_counters(capabilities(), case, crate::probe::Strictness::requested());
    let reduced;
    let case = if unchecked.is_empty() {
        case
    } else {
        reduced = case.without_counters(&unchecked);
        &reduced
    };
    let (verdict, report, artifacts) = {
        // A case without PM-event listeners runs alone: the kernel's daemon check sees any
        // listener of the machine (see `Case::without_pm_listeners`).
        let _guard: Box<dyn std::any::Any> = if case.serial || case.without_pm_listeners() {
            Box::new(SERIAL.write().unwrap_or_else(|p| p.into_inner()))
        } else {
            Box::new(SERIAL.read().unwrap_or_else(|p| p.into_inner()))
        };
        let blocked = blockers(case);
        // Also across processes: no cooperating harness process records events meanwhile.
        let _exclusive = (blocked.is_none() && case.without_pm_listeners()).then(crate::daemon_lock::exclusive);
        // The case's time (and its deadline, set in `execute`) starts once it may run.
        start = Instant::now();
        match blocked {
            Some(reason) => (Verdict::Skip(reason), String::new(), None),
            None => watched(case, ctx),
        }
    };
    // A failure that is expected says why: upstream's flaky marker, the kernel matrix's known
    // failures of the kernel under test, the case's own xfail (whose pass is an XPass).
    let described = |x: &mptcp_spec::case::XFail| format!("{}{}", x.reason, x.link.as_ref().map(|l| format!(" ({l})")).unwrap_or_default());
    let expected_failure = case
        .flaky
        .as_ref()
        .map(|x| format!("flaky: {}", described(x)))
        .or_else(|| env::known_failures().get(&case.id).map(|r| format!("known failure on this kernel: {r}")))
        .or_else(|| case.xfail.as_ref().map(described));
    let verdict = match (expected_failure, verdict) {
        (Some(why), Verdict::Fail) => Verdict::XFail(why),
        (_, Verdict::Pass) if case.xfail.is_some() => Verdict::XPass,
        (_, v) => v,
    };
    let report = if unchecked.is_empty() || matches!(verdict, Verdict::Skip(_)) {
        report
    } else {
        let list: Vec<String> = unchecked.iter().map(|(h, c)| format!("{h} {c}")).collect();
        format!("not checked here (the kernel does not expose these counters): {}\n{report}", list.join(", "))
    };
    CaseResult { id: case.id.clone(), verdict, elapsed: start.elapsed(), report, artifacts }
}

/// What each running case is doing (case id -> phase), for the watchdog's report.
static PROGRESS: std::sync::Mutex<BTreeMap<String, String>> = std::sync::Mutex::new(BTreeMap::new());

fn progress(case: &Case, phase: impl Into<String>) {
    PROGRESS.lock().unwrap_or_else(|p| p.into_inner()).insert(case.id.clone(), phase.into());
}

/// Runs the case's attempts on a thread of their own and waits at most twice the case's
/// scaled deadline (for every attempt) plus a minute. Every wait inside a case has a
/// deadline, so this only fires on a call that blocks without one (a kernel that never
/// answers, a harness bug): the case fails, naming the phase it was in, and the run goes on.
/// The thread is left behind; its namespaces go when the process exits.
fn watched(case: &Case, ctx: &RunContext) -> (Verdict, String, Option<PathBuf>) {
    let deadline = env::scaled(case.timeout, ctx.concurrency);
    let limit = deadline * 2 * MAX_ATTEMPTS as u32 + Duration::from_secs(60);
    let (tx, rx) = std::sync::mpsc::channel();
    let (owned, octx) = (case.clone(), ctx.clone());
    let spawned = std::thread::Builder::new().name(format!("case {}", case.id)).spawn(move || {
        let r = attempts(&owned, &octx);
        PROGRESS.lock().unwrap_or_else(|p| p.into_inner()).remove(&owned.id);
        let _ = tx.send(r);
    });
    if let Err(e) = spawned {
        return (Verdict::Fail, format!("could not start a thread for the case: {e}\n"), None);
    }
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let phase = PROGRESS.lock().unwrap_or_else(|p| p.into_inner()).get(&case.id).cloned().unwrap_or_else(|| "(unknown)".into());
            let report = format!(
                "case: {} ({})\nHUNG: the case did not finish within {} s (its deadline is {} s, scaled): it was {phase}.\n\
                 A call blocked without a deadline; the run goes on without it (its namespaces go when the process exits).\n",
                case.summary,
                case.id,
                limit.as_secs(),
                deadline.as_secs()
            );
            (Verdict::Fail, report, None)
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            (Verdict::Fail, format!("case: {} ({})\nthe case's thread panicked (see stderr)\n", case.summary, case.id), None)
        }
    }
}

/// Attempts a case may have when a failed one meets a `[[rerun_if]]` condition.
const MAX_ATTEMPTS: usize = 3;

/// Runs the case; a failed attempt that meets one of its `[[rerun_if]]` conditions is set
/// aside (and said so in the final report) and the case runs again on a fresh topology, at
/// most [`MAX_ATTEMPTS`] times in all. The last attempt's verdict is the case's.
fn attempts(case: &Case, ctx: &RunContext) -> (Verdict, String, Option<PathBuf>) {
    let mut set_aside = String::new();
    for n in 1..=MAX_ATTEMPTS {
        let mut rerun = Vec::new();
        let (verdict, report, artifacts) = execute(case, ctx, &mut rerun);
        if verdict != Verdict::Fail || rerun.is_empty() || n == MAX_ATTEMPTS {
            let mut report = report;
            if !set_aside.is_empty() {
                let last = if rerun.is_empty() || verdict != Verdict::Fail {
                    String::new()
                } else {
                    format!("attempt {n} (the last) met the rerun condition too: {}\n", rerun.join("; "))
                };
                report = format!("{set_aside}{last}{report}");
            }
            return (verdict, report, artifacts);
        }
        let _ = writeln!(set_aside, "attempt {n} failed and was set aside, because {}", rerun.join("; "));
        if let Some(dir) = &artifacts {
            // Keep the set-aside attempt's bundle beside the next one.
            let kept = dir.with_file_name(format!("{}.attempt{n}", dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()));
            let _ = std::fs::remove_dir_all(&kept);
            if std::fs::rename(dir, &kept).is_ok() {
                let _ = writeln!(set_aside, "  its report bundle: {}", kept.display());
            }
        }
        if env::verbose() {
            eprintln!("{}: attempt {n} set aside: {}", case.id, rerun.join("; "));
        }
    }
    unreachable!("the last attempt returns")
}

/// Why the case cannot run here, if it cannot.
/// Every capability the case needs (`probe::needs`) that the probe found missing is named.
fn blockers(case: &Case) -> Option<String> {
    crate::probe::skip_reason(capabilities(), case)
}

/// What one connection did.
#[derive(Debug)]
struct ConnOutcome {
    name: String,
    result: Result<Exchanged, (Option<Stage>, SockError)>,
}

/// Client and server transfers, and how long the bulk transfers took (from the end of the
/// first-byte exchange and the steps until both sides had everything).
type Exchanged = ((Transfer, Transfer), Duration);

/// What is known of an established connection, exported as `$<name>.*` variables.
#[derive(Debug, Clone)]
struct ConnInfo {
    name: String,
    client: SocketAddr,
    server: SocketAddr,
    client_token: Option<u32>,
    server_token: Option<u32>,
    client_fd: Option<Arc<OwnedFd>>,
    server_fd: Option<Arc<OwnedFd>>,
}

impl ConnInfo {
    fn export(&self, vars: &mut Vars) {
        let n = &self.name;
        vars.insert(format!("{n}.client_addr"), AttrValue::Addr(self.client.ip().to_canonical()));
        vars.insert(format!("{n}.client_port"), AttrValue::Uint(u64::from(self.client.port())));
        vars.insert(format!("{n}.server_addr"), AttrValue::Addr(self.server.ip().to_canonical()));
        vars.insert(format!("{n}.server_port"), AttrValue::Uint(u64::from(self.server.port())));
        if let Some(t) = self.client_token {
            vars.insert(format!("{n}.client_token"), AttrValue::Uint(u64::from(t)));
        }
        if let Some(t) = self.server_token {
            vars.insert(format!("{n}.server_token"), AttrValue::Uint(u64::from(t)));
        }
    }
}

/// Holds established connections until the steps are done.
#[derive(Debug, Default)]
struct Gate {
    open: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
    /// Also opened with the gate: what paused senders (`pause`) poll beside their socket,
    /// per connection name (`resume` steps let one pause point go).
    releases: BTreeMap<String, Arc<traffic::Release>>,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
        for r in self.releases.values() {
            r.open();
        }
    }
    fn wait(&self, deadline: Deadline) -> bool {
        let mut g = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*g {
            if deadline.passed() {
                return false;
            }
            g = self.cv.wait_timeout(g, deadline.remaining()).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

/// One attempt. `rerun` gets the `[[rerun_if]]` conditions that held, if the attempt failed.
fn execute(case: &Case, ctx: &RunContext, rerun: &mut Vec<String>) -> (Verdict, String, Option<PathBuf>) {
    let deadline = Deadline::after(env::scaled(case.timeout, ctx.concurrency));
    let mut report = String::new();
    let t0 = Instant::now();
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    progress(case, "building the topology");
    let topo = match Topology::build(&case.topology) {
        Ok(t) => t,
        Err(e) => return (Verdict::Fail, format!("building topology {:?} failed: {e}\n", case.topology.name), None),
    };

    phases.push(("topology", t0.elapsed()));
    // `$ll.<ifname>` variables: the kernel-assigned link-local addresses, once usable.
    let ll_ifaces = case.link_local_interfaces();
    let resolved;
    let case = if ll_ifaces.is_empty() {
        case
    } else {
        match crate::linklocal::addresses(case, &topo, &ll_ifaces, deadline) {
            Ok(lls) => {
                resolved = crate::linklocal::substitute(case, &lls);
                &resolved
            }
            Err(e) => return finish(case, ctx, topo, Verdict::Fail, format!("link-local addresses: {e}\n")),
        }
    };
    let kernel_log = crate::kmsg::Watch::start();
    let capture = crate::pcap::Capture::start(&topo);
    // Event recorders join each host's mptcp_pm_events group before anything happens; the
    // shared lock keeps them out of another process's no-daemon case (`daemon_lock`).
    let _recording = (!case.without_pm_listeners()).then(crate::daemon_lock::recording);
    let mut recorders = BTreeMap::new();
    for (name, host) in &topo.hosts {
        if case.without_pm_listeners() {
            break;
        }
        match EventRecorder::start(&host.ns, name) {
            Ok(r) => {
                recorders.insert(name.clone(), r);
            }
            Err(e) => return finish(case, ctx, topo, Verdict::Fail, format!("{e}\n")),
        }
    }

    progress(case, "setting up the hosts (sysctls, limits, endpoints, impairments)");
    let setup_listeners = match setup_hosts(case, &topo) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(report, "host setup failed: {e}");
            return finish(case, ctx, topo, Verdict::Fail, report);
        }
    };

    let before = match snapshots(&topo) {
        Ok(s) => s,
        Err(e) => return finish(case, ctx, topo, Verdict::Fail, format!("{e}\n")),
    };
    let links_before = match link_stats(case, &topo) {
        Ok(s) => s,
        Err(e) => return finish(case, ctx, topo, Verdict::Fail, format!("{e}\n")),
    };

    let mut vars = Vars::new();
    let mut failed = false;
    // Connections are established first; the steps run while they are open (tokens and
    // ports are known as `$connN.*` variables); then the transfers run and the sockets close.
    phases.push(("setup", t0.elapsed()));
    progress(case, "running the connections and steps");
    let mut steplog = Vec::new();
    let mut step_failure = None;
    let mut held_listeners = Vec::new();
    let mut sockets: Vec<String> = Vec::new();
    let outcomes = run_connections(case, &topo, deadline, |infos, releases| {
        for info in infos.iter().flatten() {
            info.export(&mut vars);
        }
        // Steps act on established MPTCP connections: wait for each client's `established`
        // event (sent once data has flowed) before the first step.
        if !case.steps.is_empty() {
            for (c, info) in case.connections.iter().zip(infos) {
                let (Some(info), Some(rec)) = (info, recorders.get(&c.client)) else { continue };
                if info.client_token.is_none() {
                    continue;
                }
                let port = u64::from(info.client.port());
                let seen = rec.wait_for(deadline, |l| {
                    l.events.iter().any(|e| e.event.kind == EventKind::Established && e.event.sport.map(u64::from) == Some(port))
                });
                if !seen {
                    let _ = writeln!(report, "{}: the client never reported `established`", c.name);
                }
            }
        }
        let mut sc = steps::StepContext {
            topo: &topo,
            clients: BTreeMap::new(),
            vars: &mut vars,
            log: Vec::new(),
            recorders: &recorders,
            seen: BTreeMap::new(),
            concurrency: ctx.concurrency,
            before: &before,
            listeners: Vec::new(),
            conns: infos.iter().flatten().map(|i| (i.name.clone(), (i.client_fd.clone(), i.server_fd.clone()))).collect(),
            releases: releases.clone(),
        };
        if let Err(f) = steps::run(&mut sc, &case.steps) {
            step_failure = Some(f);
        }
        // What the sockets looked like once the steps were done (for failure reports).
        for (name, (c, sv)) in &sc.conns {
            for (side, fd) in [("client", c), ("server", sv)] {
                let line = match fd.as_deref().map(sockopt::mptcp_info) {
                    Some(Ok(i)) => format!("{name} {side}: mptcp_info {i}"),
                    Some(Err(e)) => format!("{name} {side}: getsockopt(MPTCP_INFO): {e}"),
                    None => format!("{name} {side}: not connected"),
                };
                sockets.push(line);
            }
        }
        steplog = sc.log;
        held_listeners = sc.listeners;
    });
    if let Some(f) = step_failure {
        if f.skip {
            return (Verdict::Skip(format!("{}: {}", f.command, f.detail)), String::new(), None);
        }
        failed = true;
        let _ = writeln!(report, "step failed: {f}");
    }
    let mut duration_failures: Vec<String> = Vec::new();
    for (conn, o) in case.connections.iter().zip(&outcomes) {
        match (&o.result, conn.error) {
            (Ok(((c, s), took)), None) => {
                let _ = writeln!(report, "{}: ok: client sent {} received {}; server sent {} received {}", o.name, c.sent, c.received, s.sent, s.received);
                // `mptcp_connect -T`: the transfer must not take longer than the shaped
                // links allow.
                if let Some(m) = conn.max_duration {
                    let bytes = conn.upload.max(conn.download);
                    let bound = m.bound(bytes, env::slowness());
                    let verdict = if *took > bound { "SLOWER than" } else { "within" };
                    let _ = writeln!(report, "{}: bulk transfer took {} ms, {verdict} the bound of {} ms ({})", o.name, took.as_millis(), bound.as_millis(), m.explain(bytes, env::slowness()));
                    if env::verbose() {
                        eprintln!("{}: {}: transfer {} ms, bound {} ms", case.id, o.name, took.as_millis(), bound.as_millis());
                    }
                    if *took > bound {
                        failed = true;
                        duration_failures.push(format!("{}: the bulk transfer took {} ms, more than {} ms ({})", o.name, took.as_millis(), bound.as_millis(), m.explain(bytes, env::slowness())));
                    }
                }
                for (side, t) in [("client", c), ("server", s)] {
                    if t.inverted > 0 {
                        let _ = writeln!(report, "{}: the {side} received {} inverted byte(s) (tolerated: integrity = \"allow_inverted\")", o.name, t.inverted);
                    }
                }
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
    phases.push(("traffic", t0.elapsed()));
    progress(case, "waiting for the counters to settle");
    drop(held_listeners);
    drop(setup_listeners);
    let events_hold = || {
        case.expect.iter().all(|(h, e)| {
            e.events.is_empty() || recorders.get(h).is_some_and(|r| events::check_events(h, &e.events, &plain(&r.snapshot()), &vars).is_empty())
        })
    };
    let deltas = poll_until(settle, || {
        let d = deltas(&topo, &before).ok()?;
        (judge::named_counters_hold(case, &d) && events_hold()).then_some(d)
    })
    .or_else(|()| deltas(&topo, &before));
    let deltas = match deltas {
        Ok(d) => d,
        Err(e) => return finish(case, ctx, topo, Verdict::Fail, format!("{report}{e}\n")),
    };
    phases.push(("settle", t0.elapsed()));
    progress(case, "judging and writing the report (capture, kernel log)");
    if env::verbose() {
        eprintln!("{}: {}", case.id, phases.iter().map(|(n, d)| format!("{n} @{}ms", d.as_millis())).collect::<Vec<_>>().join(", "));
    }
    let logs: BTreeMap<String, EventLog> = recorders.into_iter().map(|(h, r)| (h, r.stop())).collect();
    let mut mismatches = judge::check_all_counters(case, &deltas);
    mismatches.extend(impairment_mismatches(case, &topo, &links_before));
    for (h, e) in &case.expect {
        let Some(log) = logs.get(h) else { continue };
        if log.overflow {
            let _ = writeln!(report, "{h}: the kernel dropped path-manager events (ENOBUFS): the event log is incomplete");
            failed = true;
        }
        if let Some(err) = &log.error {
            let _ = writeln!(report, "{h}: event recorder: {err}");
            failed = true;
        }
        mismatches.extend(events::check_events(h, &e.events, &plain(log), &vars));
    }
    if !mismatches.is_empty() {
        failed = true;
    }
    let splats = kernel_log.map(crate::kmsg::Watch::finish).unwrap_or_default();
    if !splats.is_empty() {
        failed = true;
        let _ = writeln!(report, "CRITICAL: the kernel logged {} splat(s) during this case:", splats.len());
        for sp in &splats {
            for line in sp.lines() {
                let _ = writeln!(report, "  {line}");
            }
        }
    }
    let dir = ctx.artifacts_dir.join(case.id.replace("::", "__"));
    let pcap = capture.and_then(|c| c.finish(failed.then_some(dir.as_path())));
    if let Some(p) = &pcap {
        let _ = writeln!(report, "packet capture: {}", p.display());
    }
    if failed {
        *rerun = judge::rerun_conditions(case, &deltas);
        let mut r = String::new();
        if !mismatches.is_empty() || !duration_failures.is_empty() {
            let _ = writeln!(r, "expectations that did not hold:");
            for m in &mismatches {
                let _ = writeln!(r, "  {m}");
            }
            for d in &duration_failures {
                let _ = writeln!(r, "  {d}");
            }
        }
        let _ = writeln!(r, "what happened:");
        for line in report.lines() {
            let _ = writeln!(r, "  {line}");
        }
        if !steplog.is_empty() {
            let _ = writeln!(r, "steps run (last {}):", steplog.len().min(20));
            for line in steplog.iter().rev().take(20).rev() {
                let _ = writeln!(r, "  {line}");
            }
        }
        if case.without_pm_listeners() {
            let _ = writeln!(
                r,
                "note: this case needs no mptcp_pm_events listener on the whole machine (the kernel's daemon check,\n  \
                 genl_has_listeners(), is not per namespace). Cooperating harness processes wait for it (daemon_lock);\n  \
                 any other subscriber (another tool, an older harness binary running cases) makes the kernel see a daemon."
            );
        }
        r += &counter_dump(&deltas, &mismatches);
        r += &event_dump(&logs);
        if !sockets.is_empty() {
            let _ = writeln!(r, "sockets after the steps:");
            for l in &sockets {
                let _ = writeln!(r, "  {l}");
            }
        }
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

/// Applies every host's setup; returns the listeners opened there (`hosts.<h>.listen`), to
/// be held until the transfers are done.
fn setup_hosts(case: &Case, topo: &Topology) -> Result<Vec<socket2::Socket>, String> {
    let mut listeners = Vec::new();
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
        if let Some(rules) = &setup.nft {
            crate::nft::load(&host.ns, rules).map_err(|e| format!("{name}: {e}"))?;
        }
        for cmd in &setup.tc {
            crate::tc::run(&host.ns, name, cmd)?;
        }
        for o in &setup.offloads {
            crate::offload::apply(&host.ns, name, o)?;
        }
        for r in &setup.routes {
            crate::route::add(host, r)?;
        }
        for r in &setup.rules {
            crate::rule::add(host, r)?;
        }
        for l in &setup.listen {
            let sa = crate::linklocal::scoped(host, l.addr.ip(), l.addr.port(), l.ll.as_ref());
            let sock = traffic::listener_at(&host.ns, name, sa, l.proto, &traffic::SockSetup::default()).map_err(|e| format!("{name}: listen on {sa}: {e}"))?;
            listeners.push(sock);
        }
        pm::apply(host, setup).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(listeners)
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

/// Statistics of every interface a case has link expectations on, keyed by (host, dev).
fn link_stats(case: &Case, topo: &Topology) -> Result<BTreeMap<(String, String), mptcp_spec::observe::LinkStats>, String> {
    let mut out = BTreeMap::new();
    for e in &case.expect_links {
        if let std::collections::btree_map::Entry::Vacant(slot) = out.entry((e.host.clone(), e.dev.clone())) {
            slot.insert(crate::linkstats::read(topo.host(&e.host), &e.dev)?);
        }
    }
    Ok(out)
}

/// Link statistics grown over the case and nftables counters, against their expectations.
fn impairment_mismatches(case: &Case, topo: &Topology, links_before: &BTreeMap<(String, String), mptcp_spec::observe::LinkStats>) -> Vec<Mismatch> {
    let mut grown = BTreeMap::new();
    for (key, before) in links_before {
        let now = crate::linkstats::read(topo.host(&key.0), &key.1).map(|after| before.delta(&after));
        grown.insert(key.clone(), now);
    }
    let mut nft = BTreeMap::new();
    for e in &case.expect_nft {
        let v = crate::nft::counter_packets(&topo.host(&e.host).ns, &e.name)
            .and_then(|p| p.ok_or_else(|| format!("no nft counter named {:?} in host {}", e.name, e.host)));
        nft.insert((e.host.clone(), e.name.clone()), v);
    }
    let mut out = mptcp_spec::observe::check_links(&case.expect_links, &grown);
    out.extend(mptcp_spec::observe::check_nft_counters(&case.expect_nft, &nft));
    out
}

fn seeds(index: usize) -> (u64, u64) {
    let base = 0x6d70_7463_7000_0000u64 + (index as u64) * 2;
    (base, base + 1)
}

fn run_connections(
    case: &Case,
    topo: &Topology,
    deadline: Deadline,
    between: impl FnOnce(&[Option<ConnInfo>], &BTreeMap<String, Arc<traffic::Release>>),
) -> Vec<ConnOutcome> {
    let mut gate = Gate::default();
    for c in case.connections.iter().filter(|c| c.pause.is_some()) {
        // Without an eventfd a paused sender would never be released: its connection then
        // fails with the reason (see exchange_once).
        if let Ok(r) = traffic::Release::new() {
            gate.releases.insert(c.name.clone(), Arc::new(r));
        }
    }
    let releases = gate.releases.clone();
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Option<ConnInfo>)>();
    std::thread::scope(|s| {
        let handles: Vec<_> = case
            .connections
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let tx = tx.clone();
                let gate = &gate;
                s.spawn(move || {
                    let mut report = |info| {
                        let _ = tx.send((i, info));
                    };
                    let result = run_connection(i, c, topo, deadline, &mut report, gate);
                    ConnOutcome { name: c.name.clone(), result }
                })
            })
            .collect();
        drop(tx);
        // Every connection reports once: established (with its info) or failed (None).
        let mut infos = vec![None; case.connections.len()];
        for (i, info) in rx.iter().take(case.connections.len()) {
            infos[i] = info;
        }
        between(&infos, &releases);
        // The infos hold duplicated socket descriptors: release them before the transfers,
        // so a close in a connection thread really closes the socket.
        drop(infos);
        gate.open();
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

fn run_connection(
    index: usize,
    c: &Connection,
    topo: &Topology,
    deadline: Deadline,
    established: &mut dyn FnMut(Option<ConnInfo>),
    gate: &Gate,
) -> Staged<Exchanged> {
    let mut reported = false;
    let r = connect_and_exchange(index, c, topo, deadline, &mut |info| {
        reported = true;
        established(info);
    }, gate);
    if !reported {
        established(None);
    }
    r
}

fn connect_and_exchange(
    index: usize,
    c: &Connection,
    topo: &Topology,
    deadline: Deadline,
    established: &mut dyn FnMut(Option<ConnInfo>),
    gate: &Gate,
) -> Staged<Exchanged> {
    let server = topo.host(&c.server);
    let client = topo.host(&c.client);
    let cl = format!("{} (client)", c.client);
    let sv = format!("{} (server)", c.server);
    let common = traffic::SockSetup { sndbuf: c.sndbuf, rcvbuf: c.rcvbuf, mark: c.mark, ..Default::default() };
    let lsetup = traffic::SockSetup { transparent: c.transparent, fastopen: c.fastopen, ..common };
    let lsa = crate::linklocal::scoped(server, c.listen, c.port, c.listen_ll.as_ref());
    let lst = traffic::listener_at(&server.ns, &sv, lsa, c.server_proto, &lsetup).map_err(at(Stage::Listen))?;
    let dst = crate::linklocal::scoped(client, c.connect, c.port, c.connect_ll.as_ref());
    let mut lst = Some(lst);
    let mut total = (Transfer::default(), Transfer::default());
    let mut took = Duration::ZERO;
    let mut established = Some(established);
    // `repeat` runs the whole connection again with a new client socket; `reconnect` runs
    // further transfers on the same socket after a disconnect (connect(AF_UNSPEC)).
    for run in 0..c.repeat {
        let csock = traffic::client_socket_with(&client.ns, &cl, c.connect, c.client_proto, &common).map_err(at(Stage::Socket))?;
        let mut csock = Some(csock);
        for round in 0..=c.reconnect {
            let Some(sock) = csock.take() else { break };
            if round > 0 {
                traffic::wait_closed(&sock, &cl, deadline).map_err(|e| (None, e))?;
                traffic::disconnect(&sock, &cl).map_err(|e| (None, e))?;
            }
            let turn = Turn {
                index,
                seq: u64::from(run + round),
                reconnecting: round > 0,
                last: run + 1 == c.repeat && round == c.reconnect,
            };
            let ends = Ends { cl: &cl, sv: &sv, dst, deadline, gate };
            let (t, back, d) = exchange_once(c, &turn, sock, &mut lst, &ends, established.take())?;
            total.0 += t.0;
            total.1 += t.1;
            took += d;
            csock = back;
        }
    }
    Ok((total, took))
}

/// Which transfer of a connection this is.
#[derive(Debug, Clone, Copy)]
struct Turn {
    /// The connection's index in the case (seeds, ports).
    index: usize,
    /// The transfer's number within the connection (0 first); varies the byte streams.
    seq: u64,
    /// The client socket was disconnected and connects again.
    reconnecting: bool,
    /// No transfer follows: the listener and the client socket close at the end.
    last: bool,
}

/// What every transfer of a connection shares: the two ends' names, the deadline, the gate
/// the steps open.
struct Ends<'a> {
    cl: &'a str,
    sv: &'a str,
    /// Where the client connects (with a scope id for a link-local address).
    dst: SocketAddr,
    deadline: Deadline,
    gate: &'a Gate,
}

/// One connect, accept and bidirectional transfer. The first one (`established` given)
/// reports the connection for the steps and waits for them; the last one closes the
/// listener, then the sockets. Returns the client socket when a transfer follows.
fn exchange_once(
    c: &Connection,
    turn: &Turn,
    mut csock: socket2::Socket,
    lst: &mut Option<socket2::Socket>,
    ends: &Ends<'_>,
    established: Option<&mut dyn FnMut(Option<ConnInfo>)>,
) -> Staged<((Transfer, Transfer), Option<socket2::Socket>, Duration)> {
    let Ends { cl, sv, dst, deadline, gate } = *ends;
    let (up, down) = seeds(turn.index);
    let (up, down) = (up + (turn.seq << 20), down + (turn.seq << 20));
    let stage = |e| (None, e);
    let fc = c.fastclose;
    let closer = |side: Side| fc.filter(|f| f.by == side).map(|f| f.after);
    let pause = |side: Side| -> Staged<Option<(Vec<u64>, Arc<traffic::Release>)>> {
        match c.pause.as_ref().filter(|p| p.by.contains(&side)) {
            None => Ok(None),
            Some(p) => match gate.releases.get(&c.name) {
                Some(r) => Ok(Some((p.after.clone(), Arc::clone(r)))),
                None => Err((None, SockError::Timeout { host: c.client.clone(), what: "pause".into(), detail: "eventfd(2) failed: a paused sender could not be released".into() })),
            },
        }
    };
    let mut cstream = Stream::new(cl, c.upload, up, c.download, down)
        .with_io(c.io)
        .map_err(stage)?
        .peek(c.peek, up ^ 0x5eed)
        .paced(c.pace)
        .abort_after(closer(Side::Client))
        .tolerate_reset(fc.is_some_and(|f| f.by == Side::Server))
        .allow_inverted(c.allow_inverted)
        .pause(if turn.seq == 0 { pause(Side::Client)? } else { None });
    let mut sstream = Stream::new(sv, c.download, down, c.upload, up)
        .with_io(c.io)
        .map_err(stage)?
        .peek(c.peek, down ^ 0x5eed)
        .paced(c.pace)
        .abort_after(closer(Side::Server))
        .tolerate_reset(fc.is_some_and(|f| f.by == Side::Client))
        .allow_inverted(c.allow_inverted)
        .pause(if turn.seq == 0 { pause(Side::Server)? } else { None });
    // The handshake completes before accept() can succeed, so connect first (a failure
    // needs no server-side cancellation), then accept, then exchange on both sides at once.
    // With Fast Open the client's first bytes go with the SYN when it holds a cookie.
    if c.fastopen && !turn.reconnecting {
        cstream.connect_fastopen(&csock, dst, deadline).map_err(at(Stage::Connect))?;
    } else {
        traffic::connect(&csock, cl, dst, deadline).map_err(at(Stage::Connect))?;
    }
    let listener = lst.as_ref().ok_or_else(|| {
        (None, SockError::Timeout { host: sv.to_owned(), what: "accept".into(), detail: "the listener is already closed".into() })
    })?;
    let mut ssock = traffic::accept(listener, sv, deadline).map_err(stage)?;
    // A first byte each way: an MPTCP client is fully established (and its path manager
    // acts) only once data has flowed.
    if c.upload > 0 {
        cstream.pump(&mut csock, 1, |t| t.sent >= 1, deadline).map_err(stage)?;
        sstream.pump(&mut ssock, 0, |t| t.received >= 1, deadline).map_err(stage)?;
    }
    if c.download > 0 {
        sstream.pump(&mut ssock, 1, |t| t.sent >= 1, deadline).map_err(stage)?;
        cstream.pump(&mut csock, 1, |t| t.received >= 1, deadline).map_err(stage)?;
    }
    // mptcp_connect's server reads the whole stream before it answers in the file-based
    // modes (mmap, sendfile, splice).
    sstream.set_recv_first(c.io != mptcp_spec::case::IoMode::Poll);
    let first = established.is_some();
    if let Some(report) = established {
        let local = |s: &socket2::Socket| s.local_addr().ok().and_then(|a| a.as_socket());
        let info = match (local(&csock), local(&ssock)) {
            (Some(client), Some(server)) => Some(ConnInfo {
                name: c.name.clone(),
                client,
                server,
                client_token: sockopt::mptcp_info(&csock).ok().and_then(|i| i.token()),
                server_token: sockopt::mptcp_info(&ssock).ok().and_then(|i| i.token()),
                client_fd: dup(&csock),
                server_fd: dup(&ssock),
            }),
            _ => None,
        };
        report(info);
    }
    let wait_gate = || {
        if gate.wait(deadline) {
            Ok(())
        } else {
            Err((None, SockError::Timeout { host: c.client.clone(), what: "waiting for the steps".into(), detail: "steps did not finish".into() }))
        }
    };
    if first && !c.with_steps {
        wait_gate()?;
    }
    let panicked = |p: Box<dyn std::any::Any + Send>| SockError::Timeout {
        host: sv.to_owned(),
        what: "server thread".into(),
        detail: format!("panicked: {}", crate::netns::panic_text(&*p)),
    };
    // The bulk transfer's duration (`max_duration`): from here until both sides have sent
    // and received everything.
    let t_start = Instant::now();
    std::thread::scope(|s| {
        // The server side runs on its own thread and hands its socket back when done.
        // A server that closes abortively does so as soon as its share is done (the client
        // may still be sending), like `mptcp_connect -l -f N`.
        let srv = s.spawn(move || {
            let r = sstream.finish(&mut ssock, deadline);
            if r.is_ok() && fc.is_some_and(|f| f.by == Side::Server) {
                return match traffic::abortive_close(ssock, sv) {
                    Ok(()) => (r, None, Instant::now()),
                    Err(e) => (Err(e), None, Instant::now()),
                };
            }
            (r, Some(ssock), Instant::now())
        });
        let cli = cstream.finish(&mut csock, deadline);
        let cli_end = Instant::now();
        let took = |srv_end: Instant| cli_end.max(srv_end) - t_start;
        // The closing side of a fastclose closes now (abortively); a failed side drops its
        // socket here too, which ends the peer's loop (EOF or reset).
        if fc.is_some_and(|f| f.by == Side::Client) || cli.is_err() {
            drop(lst.take());
            traffic::abortive_close(csock, cl).map_err(stage)?;
            let (srv, end) = srv.join().map(|(r, _, end)| (r, end)).unwrap_or_else(|p| (Err(panicked(p)), Instant::now()));
            return Ok(((cli.map_err(stage)?, srv.map_err(stage)?), None, took(end)));
        }
        let (srv, ssock, end) = match srv.join() {
            Ok((r, sock, end)) => (r, sock, end),
            Err(p) => (Err(panicked(p)), None, Instant::now()),
        };
        let took = took(end);
        if !turn.last {
            // A clean close of the accepted socket; the client disconnects and reconnects
            // (or opens a new socket) for the next transfer.
            drop(ssock);
            let t = (cli.map_err(stage)?, srv.map_err(stage)?);
            return Ok((t, Some(csock), took));
        }
        if first && c.with_steps {
            wait_gate()?;
        }
        // The listener closes once the transfers are done (joins needed it until then),
        // before the connection's sockets: a fixed order for event expectations.
        drop(lst.take());
        if let Some(ssock) = ssock
            && fc.is_some_and(|f| f.by == Side::Server)
        {
            traffic::abortive_close(ssock, sv).map_err(stage)?;
        }
        drop(csock);
        Ok(((cli.map_err(stage)?, srv.map_err(stage)?), None, took))
    })
}

/// A second descriptor of a socket, for observers (getsockopt) while its owner runs.
fn dup(s: &socket2::Socket) -> Option<Arc<OwnedFd>> {
    use std::os::fd::AsFd;
    s.as_fd().try_clone_to_owned().ok().map(Arc::new)
}

fn plain(log: &EventLog) -> Vec<mptcp_wire::event::Event> {
    log.events.iter().map(|r| r.event.clone()).collect()
}

fn event_dump(logs: &BTreeMap<String, EventLog>) -> String {
    let mut r = String::from("path-manager events (per host):\n");
    for (h, log) in logs {
        let _ = writeln!(r, "  {h}:{}", if log.events.is_empty() { " (none)" } else { "" });
        for e in &log.events {
            let _ = writeln!(r, "    +{:>5} ms {}", e.at.as_millis(), e.event);
        }
    }
    r
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
    // The bundle: the report, the resolved case (the validated model, topology included),
    // and the pieces of the report as separate files for tools.
    let write_all = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("report.txt"), &report)?;
        std::fs::write(dir.join("resolved-case.txt"), format!("{case:#?}\n"))?;
        for (name, marker) in [("counters.txt", "counter deltas"), ("events.txt", "path-manager events"), ("sockets.txt", "sockets after the steps")] {
            if let Some(start) = report.find(marker) {
                // The section: its title line and the indented lines below it.
                let mut lines = report[start..].lines();
                let mut text = lines.next().unwrap_or_default().to_owned() + "\n";
                for l in lines.take_while(|l| l.starts_with(' ')) {
                    text += l;
                    text += "\n";
                }
                std::fs::write(dir.join(name), text)?;
            }
        }
        Ok(())
    };
    let artifacts = match write_all() {
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
