//! Runs a case's steps (path-manager commands) and checks each answer.

use std::collections::BTreeMap;
use std::net::IpAddr;

use mptcp_spec::errno;
use mptcp_spec::events::Vars;
use mptcp_spec::steps::{AddrPortVar, EndpointExpect, NumOrVar, PmCommand, Step, StepExpect};
use std::net::SocketAddr;
use mptcp_wire::event::AttrValue;
use mptcp_wire::pm::{AddrPort, AddrTarget, Endpoint, EndpointFlags, PmRequest};

use crate::events::EventRecorder;
use crate::pm::{PmClient, describe};
use crate::wait::{Deadline, poll_until};
use mptcp_wire::mib::Snapshot;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use mptcp_spec::events::{event_matches, substitute};
use crate::topology::{Host, Topology};

/// What steps run against.
#[derive(Debug)]
pub struct StepContext<'a> {
    /// The live topology.
    pub topo: &'a Topology,
    /// PM clients opened so far, per host.
    pub clients: BTreeMap<String, PmClient>,
    /// `$variables`.
    pub vars: &'a mut Vars,
    /// One line per step run.
    pub log: Vec<String>,
    /// Event recorders per host.
    pub recorders: &'a BTreeMap<String, EventRecorder>,
    /// Per host, how many events earlier waits consumed.
    pub seen: BTreeMap<String, usize>,
    /// Parallel cases (deadline scaling).
    pub concurrency: usize,
    /// Counter snapshots taken before the case's traffic, per host.
    pub before: &'a BTreeMap<String, Snapshot>,
    /// Listeners opened by `listen` steps, kept until the case ends.
    pub listeners: Vec<socket2::Socket>,
    /// Live connections by name: duplicated client and server socket descriptors.
    pub conns: BTreeMap<String, (Option<Arc<OwnedFd>>, Option<Arc<OwnedFd>>)>,
    /// What `resume` steps act on: the paused senders' releases, by connection name.
    pub releases: BTreeMap<String, Arc<crate::traffic::Release>>,
}

/// One step whose answer was not the expected one.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// `steps[3]` (with repeat values: `steps[2].steps[0] ($i=17)`).
    pub at: String,
    /// Host.
    pub host: String,
    /// The command, `ip mptcp`-style.
    pub command: String,
    /// Expected vs observed, in words.
    pub detail: String,
    /// Not a failure: the step cannot run on this kernel (a check reported `SKIP: reason`).
    pub skip: bool,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}: `{}`: {}", self.at, self.host, self.command, self.detail)
    }
}

/// Runs steps in order; stops at the first failure (later steps would judge a state the
/// case did not intend). `log` gets one line per command run.
pub fn run(ctx: &mut StepContext<'_>, steps: &[Step]) -> Result<(), StepFailure> {
    for s in steps {
        let StepContext { topo, clients, vars, log, recorders, seen, concurrency, before, conns, listeners, releases } = ctx;
        let topo = *topo;
        match s {
            Step::WaitCounter { at, host, counters, timeout } => {
                let h = topo.host(host);
                let base = before.get(host).cloned().unwrap_or_default();
                let deadline = Deadline::after(crate::env::scaled(*timeout, *concurrency));
                let mut last = String::new();
                // A counter that only grows and is past the expected value will not come back:
                // fail at once instead of at the deadline.
                let mut overshot = None;
                // A key "A + B" waits on the sum of its counters.
                let value = |d: &mptcp_wire::mib::Snapshot, key: &str| -> Option<i64> { mptcp_spec::counters::sum_parts(key).iter().map(|p| d.get(p)).sum() };
                let grows = |key: &str| mptcp_spec::counters::sum_parts(key).iter().all(|p| mptcp_spec::counters::only_grows(p));
                let ok = poll_until(deadline, || {
                    let d = base.delta(&h.mib.snapshot().ok()?);
                    last = counters.iter().map(|(n, _)| format!("{n}={}", value(&d, n).map_or("-".into(), |v| v.to_string()))).collect::<Vec<_>>().join(" ");
                    if let Some((n, v, max)) = counters.iter().find_map(|(n, want)| {
                        let v = value(&d, n)?;
                        let max = want.upper_bound()?;
                        (v > max && grows(n)).then(|| (n.clone(), v, max))
                    }) {
                        overshot = Some(format!("{n} is {v}, past {max}, and only grows; last seen: {last}"));
                        return Some(());
                    }
                    counters.iter().all(|(n, want)| value(&d, n).is_some_and(|v| want.matches(v))).then_some(())
                });
                let want = counters.iter().map(|(n, w)| format!("{n} {w}")).collect::<Vec<_>>().join(", ");
                if let Some(detail) = overshot {
                    return Err(StepFailure { skip: false, at: at.clone(), host: host.clone(), command: format!("wait_counter {want}"), detail });
                }
                if ok.is_err() {
                    return Err(StepFailure { skip: false, at: at.clone(), host: host.clone(), command: format!("wait_counter {want}"), detail: format!("not reached within {:?}; last seen: {last}", crate::env::scaled(*timeout, *concurrency)) });
                }
                log.push(format!("{at} {host}: counters reached: {last}"));
            }
            Step::WaitInfo { at, conn, side, fields, timeout } => {
                let fd = conns.get(conn).and_then(|(c, s)| if side == "client" { c.clone() } else { s.clone() });
                let Some(fd) = fd else {
                    return Err(StepFailure { skip: false, at: at.clone(), host: side.clone(), command: format!("wait_info {conn} {side}"), detail: format!("connection {conn} has no open {side} socket") });
                };
                let deadline = Deadline::after(crate::env::scaled(*timeout, *concurrency));
                let mut last = String::new();
                let mut missing = None;
                let ok = poll_until(deadline, || {
                    let info = match crate::sockopt::mptcp_info(&*fd) {
                        Ok(i) => i,
                        Err(e) => {
                            last = format!("getsockopt(MPTCP_INFO): {e}");
                            return None;
                        }
                    };
                    last = info.to_string();
                    for (f, want) in fields.iter() {
                        match info.get(f) {
                            None => {
                                missing = Some(f.clone());
                                return Some(());
                            }
                            Some(v) if !want.matches(v as i64) => return None,
                            Some(_) => {}
                        }
                    }
                    Some(())
                });
                let want = fields.iter().map(|(n, w)| format!("{n} {w}")).collect::<Vec<_>>().join(", ");
                if let Some(f) = missing {
                    return Err(StepFailure { skip: false, at: at.clone(), host: format!("{conn} {side}"), command: format!("wait_info {want}"), detail: format!("this kernel's mptcp_info has no field {f} (struct is {} bytes)", last.len()) });
                }
                if ok.is_err() {
                    return Err(StepFailure { skip: false, at: at.clone(), host: format!("{conn} {side}"), command: format!("wait_info {want}"), detail: format!("not reached within {:?}; mptcp_info: {last}", crate::env::scaled(*timeout, *concurrency)) });
                }
                log.push(format!("{at} {conn} {side}: mptcp_info {want}"));
            }
            Step::Nft { at, host, rules } => {
                crate::nft::load(&topo.host(host).ns, rules).map_err(|e| StepFailure { skip: false, at: at.clone(), host: host.clone(), command: "nft -f -".into(), detail: e })?;
                log.push(format!("{at} {host}: nft rules loaded"));
            }
            Step::Resume { at, conn } => {
                let Some(r) = releases.get(conn) else {
                    return Err(StepFailure { skip: false, at: at.clone(), host: conn.clone(), command: format!("resume {conn}"), detail: format!("connection {conn} has no `pause`") });
                };
                r.resume_one();
                log.push(format!("{at} {conn}: resumed to the next pause point"));
            }
            Step::Link { at, host, dev, up } => {
                crate::topology::set_link(topo.host(host), dev, *up).map_err(|e| StepFailure {
                    skip: false,
                    at: at.clone(),
                    host: host.clone(),
                    command: format!("ip link set {dev} {}", if *up { "up" } else { "down" }),
                    detail: e.to_string(),
                })?;
                log.push(format!("{at} {host}: ip link set {dev} {}", if *up { "up" } else { "down" }));
            }
            Step::Listen { at, host, addr, proto } => {
                let addr = sockaddr(addr, vars).map_err(|e| StepFailure { skip: false, at: at.clone(), host: host.clone(), command: format!("listen {addr}"), detail: e })?;
                let l = crate::traffic::listener(&topo.host(host).ns, host, addr.ip(), addr.port(), *proto)
                    .map_err(|e| StepFailure { skip: false, at: at.clone(), host: host.clone(), command: format!("listen {addr}"), detail: e.to_string() })?;
                listeners.push(l);
                log.push(format!("{at} {host}: listening on {addr}"));
            }
            Step::Tc { at, host, cmd } => {
                crate::tc::run(&topo.host(host).ns, host, cmd).map_err(|e| StepFailure { skip: false, at: at.clone(), host: host.clone(), command: format!("tc {cmd}"), detail: e })?;
                log.push(format!("{at} {host}: tc {cmd}"));
            }
            Step::CloseListener { at, host, addr } => {
                let want = sockaddr(addr, vars).map_err(|e| StepFailure { skip: false, at: at.clone(), host: host.clone(), command: format!("close listener {addr}"), detail: e })?;
                let before_len = listeners.len();
                listeners.retain(|l| l.local_addr().ok().and_then(|a| a.as_socket()).map(|a| (a.ip().to_canonical(), a.port())) != Some((want.ip().to_canonical(), want.port())));
                if listeners.len() == before_len {
                    return Err(StepFailure { skip: false, at: at.clone(), host: host.clone(), command: format!("close listener {want}"), detail: "no listener of a `listen` step has that address".into() });
                }
                log.push(format!("{at} {host}: closed listener {want}"));
            }
            Step::Sysctl { at, host, values } => {
                crate::sysctl::write_all(&topo.host(host).ns, values)
                    .map_err(|e| StepFailure { skip: false, at: at.clone(), host: host.clone(), command: "sysctl".into(), detail: e.to_string() })?;
                log.push(format!("{at} {host}: sysctl {}", values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")));
            }
            Step::Check { at, host, name, args } => {
                let cctx = crate::checks::CheckCtx { host: topo.host(host), args, deadline: Deadline::after(crate::env::scaled(std::time::Duration::from_secs(30), *concurrency)) };
                if let Err(problems) = crate::checks::run(name, &cctx) {
                    // A check reports only `SKIP:` lines when the kernel lacks what it reads
                    // (it never mixes a mismatch into a skip): the case is skipped, not failed.
                    let skip = !problems.is_empty() && problems.iter().all(|p| p.starts_with(crate::checks::SKIP_PREFIX));
                    return Err(StepFailure { skip, at: at.clone(), host: host.clone(), command: format!("check {name}"), detail: format!("\n      {}", problems.join("\n      ")) });
                }
                log.push(format!("{at} {host}: check {name} passed"));
            }
            Step::WaitEvent { at, host, event, capture, timeout } => {
                let Some(rec) = recorders.get(host) else {
                    return Err(StepFailure { skip: false, at: at.clone(), host: host.clone(), command: "wait_event".into(), detail: "no event recorder for this host".into() });
                };
                let from = seen.get(host).copied().unwrap_or(0);
                let deadline = Deadline::after(crate::env::scaled(*timeout, *concurrency));
                let mut found = None;
                let vars_now = vars.clone();
                rec.wait_for(deadline, |l| {
                    found = l.events.iter().enumerate().skip(from).find(|(_, e)| event_matches(event, &e.event, &vars_now)).map(|(i, _)| i);
                    found.is_some()
                });
                match found {
                    Some(i) => {
                        seen.insert(host.clone(), i + 1);
                        let ev = rec.snapshot().events[i].event.clone();
                        for (attr, var) in capture {
                            match ev.attr(attr) {
                                Some(v) => {
                                    vars.insert(var.clone(), v);
                                }
                                None => {
                                    return Err(StepFailure { skip: false, at: at.clone(), host: host.clone(), command: format!("capture {attr}"), detail: format!("the matched event has no {attr}: {ev}") });
                                }
                            }
                        }
                        log.push(format!("{at} {host}: saw {ev}"));
                    }
                    None => {
                        return Err(StepFailure {
                    skip: false,
                            at: at.clone(),
                            host: host.clone(),
                            command: format!("wait_event {}", substitute(event, vars)),
                            detail: format!("no matching event within {:?}", crate::env::scaled(*timeout, *concurrency)),
                        });
                    }
                }
            }
            Step::Repeat { var, from, to, steps } => {
                for i in *from..=*to {
                    ctx.vars.insert(var.clone(), AttrValue::Uint(u64::from(i)));
                    run(ctx, steps).map_err(|mut f| {
                        f.at = format!("{} (${var}={i})", f.at);
                        f
                    })?;
                }
                ctx.vars.remove(var);
            }
            Step::Pm { at, host, unprivileged, cmd, expect } => {
                let h = topo.host(host);
                let key = if *unprivileged { format!("{host} (unprivileged)") } else { host.clone() };
                if !clients.contains_key(&key) {
                    let c = PmClient::open_with(&h.ns, host, *unprivileged)
                        .map_err(|e| StepFailure { skip: false, at: at.clone(), host: host.clone(), command: "open the PM client".into(), detail: e.to_string() })?;
                    clients.insert(key.clone(), c);
                }
                let client = &clients[&key];
                let fail = |command: String, detail: String| StepFailure { skip: false, at: at.clone(), host: host.clone(), command, detail };
                let req = request(cmd, h, vars).map_err(|d| fail(format!("{cmd:?}"), d))?;
                let command = describe(&req);
                log.push(format!("{at} {host}: {command}"));
                check(client, h, &req, expect).map_err(|d| fail(command, d))?;
            }
        }
    }
    Ok(())
}

fn num(v: &NumOrVar, vars: &Vars) -> Result<u64, String> {
    match v {
        NumOrVar::Num(n) => Ok(*n),
        NumOrVar::Var(name) => match vars.get(name) {
            Some(AttrValue::Uint(u)) => Ok(*u),
            Some(other) => Err(format!("${name} is {other}, not a number")),
            None => Err(format!("${name} is not defined at this point")),
        },
    }
}

fn small<T: TryFrom<u64>>(v: &NumOrVar, vars: &Vars, what: &str) -> Result<T, String> {
    let n = num(v, vars)?;
    T::try_from(n).map_err(|_| format!("{what} {n} is out of range"))
}

fn flags(words: &[String]) -> Result<EndpointFlags, String> {
    let kept: Vec<&str> = words.iter().map(String::as_str).filter(|w| !w.starts_with("no")).collect();
    kept.join(" ").parse().map_err(|e| format!("{e}"))
}

fn ifindex(h: &Host, dev: &str) -> Result<i32, String> {
    h.ifindex.get(dev).map(|i| *i as i32).ok_or_else(|| format!("host {} has no interface {dev}", h.name))
}

fn endpoint(h: &Host, addr: IpAddr, id: &Option<NumOrVar>, fl: &[String], port: &Option<NumOrVar>, dev: &Option<String>, vars: &Vars) -> Result<Endpoint, String> {
    let mut e = Endpoint::new(addr).with_flags(flags(fl)?);
    if let Some(id) = id {
        e = e.with_id(small(id, vars, "id")?);
    }
    if let Some(p) = port {
        e = e.with_port(small(p, vars, "port")?);
    }
    if let Some(d) = dev {
        e = e.with_ifindex(ifindex(h, d)?);
    }
    Ok(e)
}

/// Resolves an `ip:port` whose port may be a variable.
pub fn sockaddr(a: &AddrPortVar, vars: &Vars) -> Result<SocketAddr, String> {
    Ok(SocketAddr::new(a.ip, small(&a.port, vars, "port")?))
}

/// Builds the request for a command, resolving variables and device names.
pub fn request(cmd: &PmCommand, h: &Host, vars: &Vars) -> Result<PmRequest, String> {
    let token = |t: &Option<NumOrVar>| t.as_ref().map(|t| small::<u32>(t, vars, "token")).transpose();
    Ok(match cmd {
        PmCommand::Add { addr, id, flags, port, dev } => PmRequest::AddAddr(endpoint(h, *addr, id, flags, port, dev, vars)?),
        PmCommand::Del { id, addr } => PmRequest::DelAddr { id: small(id, vars, "id")?, addr: *addr },
        PmCommand::Get { id, token: t } => PmRequest::GetAddr { id: small(id, vars, "id")?, token: token(t)? },
        PmCommand::Dump { token: t } => PmRequest::DumpAddrs { token: token(t)? },
        PmCommand::Flush => PmRequest::FlushAddrs,
        PmCommand::SetLimits { add_addr_accepted, subflows } => PmRequest::SetLimits { rcv_add_addrs: *add_addr_accepted, subflows: *subflows },
        PmCommand::GetLimits => PmRequest::GetLimits,
        PmCommand::SetFlags { id, addr, port, flags: fl, token: t, remote } => {
            let target = match (id, addr) {
                (Some(id), _) => AddrTarget::Id(small(id, vars, "id")?),
                (None, Some(a)) => AddrTarget::Addr(AddrPort { addr: *a, port: port.as_ref().map(|p| small(p, vars, "port")).transpose()? }),
                (None, None) => return Err("set_flags needs id or addr".into()),
            };
            PmRequest::SetFlags {
                target,
                flags: flags(fl)?,
                token: token(t)?,
                remote: remote.as_ref().map(|r| sockaddr(r, vars)).transpose()?.map(|r| AddrPort { addr: r.ip(), port: Some(r.port()) }),
            }
        }
        PmCommand::Announce { addr, id, flags, port, dev, token: t } => {
            PmRequest::Announce { endpoint: endpoint(h, *addr, id, flags, port, dev, vars)?, token: small(t, vars, "token")? }
        }
        PmCommand::Remove { token: t, loc_id } => PmRequest::Remove { token: small(t, vars, "token")?, loc_id: small(loc_id, vars, "loc_id")? },
        PmCommand::SubflowCreate { addr, id, flags, port, dev, remote, token: t } => PmRequest::SubflowCreate {
            local: endpoint(h, *addr, id, flags, port, dev, vars)?,
            remote: sockaddr(remote, vars)?,
            token: small(t, vars, "token")?,
        },
        PmCommand::SubflowDestroy { local, remote, token: t } => {
            PmRequest::SubflowDestroy { local: sockaddr(local, vars)?, remote: sockaddr(remote, vars)?, token: small(t, vars, "token")? }
        }
    })
}

fn check(client: &PmClient, h: &Host, req: &PmRequest, expect: &StepExpect) -> Result<(), String> {
    let answer = match req {
        PmRequest::DumpAddrs { token } => client.dump(*token).map(Answer::Endpoints),
        PmRequest::GetAddr { id, token } => client.get(*id, *token).map(Answer::Endpoint),
        PmRequest::GetLimits => client.limits().map(|l| Answer::Limits(l.rcv_add_addrs, l.subflows)),
        other => client.request(other).map(|_| Answer::Done),
    };
    match (&expect.error, answer) {
        (Some((want_errno, want_text)), Err(e)) => {
            let (got_errno, got_text) = (e.source.errno(), e.source.ext_ack_msg().map(str::to_owned));
            let errno_ok = want_errno.is_empty() || got_errno.is_some_and(|g| want_errno.contains(&g));
            let text_ok = want_text.as_ref().is_none_or(|w| got_text.as_ref().is_some_and(|g| g.contains(w.as_str())));
            if errno_ok && text_ok {
                Ok(())
            } else {
                Err(format!("expected refusal {}, observed: {}", expected_refusal(want_errno, want_text), e.source))
            }
        }
        (Some((want_errno, want_text)), Ok(_)) => Err(format!("expected refusal {}, but the kernel accepted it", expected_refusal(want_errno, want_text))),
        (None, Err(e)) => Err(format!("expected success, the kernel refused: {}", e.source)),
        (None, Ok(answer)) => compare(h, expect, answer),
    }
}

fn expected_refusal(errnos: &[i32], text: &Option<String>) -> String {
    let mut s = if errnos.is_empty() {
        "(any errno)".to_owned()
    } else {
        errnos.iter().map(|e| errno::describe(*e)).collect::<Vec<_>>().join(" or ")
    };
    if let Some(t) = text {
        s += &format!(" with extack containing \"{t}\"");
    }
    s
}

enum Answer {
    Done,
    Endpoints(Vec<Endpoint>),
    Endpoint(Endpoint),
    Limits(u32, u32),
}

fn show(e: &Endpoint, h: &Host) -> String {
    let mut s = format!("id {} flags [{}] {}", e.id.unwrap_or(0), e.flags, e.addr);
    if let Some(p) = e.port {
        s += &format!(" port {p}");
    }
    if let Some(i) = e.ifindex {
        let name = h.ifindex.iter().find(|(_, v)| **v as i32 == i).map_or_else(|| format!("ifindex {i}"), |(n, _)| n.clone());
        s += &format!(" dev {name}");
    }
    s
}

fn show_expect(e: &EndpointExpect) -> String {
    let mut s = format!("id {} flags [{}] {}", e.id, e.flags.join(" "), e.addr);
    if let Some(p) = e.port {
        s += &format!(" port {p}");
    }
    if let Some(d) = &e.dev {
        s += &format!(" dev {d}");
    }
    s
}

fn endpoint_matches(h: &Host, want: &EndpointExpect, got: &Endpoint) -> bool {
    let flags_ok = flags(&want.flags).is_ok_and(|f| f == got.flags);
    let dev_ok = match (&want.dev, got.ifindex) {
        (None, None) => true,
        (Some(d), Some(i)) => ifindex(h, d).is_ok_and(|w| w == i),
        _ => false,
    };
    got.id.unwrap_or(0) == want.id && got.addr.to_canonical() == want.addr.to_canonical() && flags_ok && want.port == got.port && dev_ok
}

fn compare(h: &Host, expect: &StepExpect, answer: Answer) -> Result<(), String> {
    match answer {
        Answer::Endpoints(list) => {
            if let Some(want) = &expect.endpoints {
                let ok = want.len() == list.len() && want.iter().zip(&list).all(|(w, g)| endpoint_matches(h, w, g));
                if !ok {
                    let w: Vec<String> = want.iter().map(show_expect).collect();
                    let g: Vec<String> = list.iter().map(|e| show(e, h)).collect();
                    return Err(format!("dump differs:\n      expected: [{}]\n      observed: [{}]", w.join("; "), g.join("; ")));
                }
            }
        }
        Answer::Endpoint(e) => {
            if let Some(w) = &expect.endpoint
                && !endpoint_matches(h, w, &e)
            {
                return Err(format!("expected {}, observed {}", show_expect(w), show(&e, h)));
            }
        }
        Answer::Limits(a, s) => {
            if let Some((wa, ws)) = expect.limits
                && (wa, ws) != (a, s)
            {
                return Err(format!("expected add_addr_accepted {wa} subflows {ws}, observed add_addr_accepted {a} subflows {s}"));
            }
        }
        Answer::Done => {}
    }
    Ok(())
}

