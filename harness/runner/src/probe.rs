//! What this machine can run, found out at run time (never from the kernel version).
//!
//! [`capabilities`] probes once per process, in one scratch namespace, by *doing* each thing
//! and reading it back: an MPTCP socket and a loopback connection (socket options and their
//! lengths, inet_diag, the listener event), the `mptcp_pm` family and its policy dump, one
//! endpoint per flag added and read back, qdiscs, tc actions and a classifier added over
//! rtnetlink and dumped, an nftables rule with an MPTCP option match loaded with `nft`. Every
//! capability has a stable name, and the probe lists each as present or missing with the
//! reason (`mptcp-conformance probe`):
//!
//! | name | present when |
//! |---|---|
//! | `root`, `netns`, `mptcp` | running as root; a namespace can be created; `socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)` works in it |
//! | `ipv6` | an IPv6 MPTCP socket can be created |
//! | `sysctl:net.mptcp.<name>` | `/proc/sys/net/mptcp/<name>` exists in a fresh namespace |
//! | `pm`, `pm:cmd:<command>` | the `mptcp_pm` generic-netlink family resolves and lists the command (`add_addr` ... `subflow_destroy`) |
//! | `pm:attr:<attr>` | an operation's policy (`CTRL_CMD_GETPOLICY`) has the attribute (`token`, `addr.port`, ...); `addr.addr4`, which the dump omits, when an IPv4 endpoint was accepted |
//! | `pm:<flag>` | an endpoint added with the flag reads back with it (`signal` ... `laminar`); `implicit`: the kernel refuses to create one as reserved ("can't create IMPLICIT endpoint") |
//! | `events`, `events:listener` | the `mptcp_pm_events` group exists; a `listen()` produces `listener_created` |
//! | `counter:<MPTcpExt...>` | the counter is in the namespace's `/proc/net/netstat` |
//! | `mptcp_info`, `mptcp_info:<field>` | `MPTCP_INFO` answers; the field lies inside the length it returns |
//! | `tcpinfo`, `subflow_addrs`, `full_info` | `MPTCP_TCPINFO`, `MPTCP_SUBFLOW_ADDRS`, `MPTCP_FULL_INFO` answer on a connected socket |
//! | `diag` | a `SOCK_DIAG_BY_FAMILY` dump with `INET_DIAG_REQ_PROTOCOL` = IPPROTO_MPTCP answers (not ENOENT) |
//! | `qdisc:<kind>` | `netem`, `tbf`, `htb`, `clsact` added on `lo` and dumped back |
//! | `nft`, `nft:mptcp` | `nft` runs; a rule `tcp option mptcp subtype 3 drop` loads and lists back |
//! | `tc:pedit`, `tc:csum`, `tc:fw` | the action (RTM_NEWACTION) or the classifier (RTM_NEWTFILTER on clsact) is accepted and dumped back |
//!
//! [`needs`] says which capabilities a case uses (its `requires` plus what it names: counters,
//! flags, `pm_type`, `mptcp_info` fields, event types, checks, nft rules);
//! [`Capabilities::missing`] which of them this machine lacks. [`Strictness`] turns skips
//! into failures (`MPTCP_CT_STRICT`, `--strict`, with an allow-list; `MPTCP_CT_REQUIRE`).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mptcp_spec::Case;
use mptcp_spec::steps::{PmCommand, Step};
use mptcp_wire::event::EventKind;
use mptcp_wire::genl::{PolicyDump, get_policy_request};
use mptcp_wire::mptcp_info::{MPTCP_FULL_INFO, MPTCP_INFO, MPTCP_SUBFLOW_ADDRS, MPTCP_TCPINFO, MptcpInfo, SOL_MPTCP};
use mptcp_wire::nl::{self, AttrWriter, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NlMessage, NlMsgHdr};
use mptcp_wire::pm::{self as wpm, Endpoint, EndpointFlags, MPTCP_PM_EV_GRP_NAME, MPTCP_PM_NAME};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::case::CaseResult;
use crate::case::Verdict;
use crate::events::EventRecorder;
use crate::genl::NlSocket;
use crate::mib::MibReader;
use crate::netns::Netns;
use crate::pm::PmClient;
use crate::wait::Deadline;

/// One probed capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Stable name (`qdisc:netem`, `counter:MPTcpExtMPJoinSynRx`).
    pub name: String,
    /// Whether this machine has it.
    pub present: bool,
    /// What was found (present) or why it is missing.
    pub detail: String,
}

/// The probe's findings.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// Why cases cannot run at all here (no root, no MPTCP), if so.
    pub blocker: Option<String>,
    /// MIB counter names the kernel exposes (nstat-style: `MPTcpExt*`, `TcpExt*`, `Tcp*`).
    pub counters: BTreeSet<String>,
    /// Every probed capability, in probe order.
    pub list: Vec<Capability>,
    /// How long probing took.
    pub elapsed: Duration,
}

/// Endpoint flag words, as `ip mptcp` spells them, in bit order.
pub const FLAG_WORDS: [&str; 6] = ["signal", "subflow", "backup", "fullmesh", "implicit", "laminar"];

/// `mptcp_pm` commands (`MPTCP_PM_CMD_*`), lower-case, by number.
pub const PM_COMMAND_NAMES: [(u8, &str); 11] = [
    (wpm::MPTCP_PM_CMD_ADD_ADDR, "add_addr"),
    (wpm::MPTCP_PM_CMD_DEL_ADDR, "del_addr"),
    (wpm::MPTCP_PM_CMD_GET_ADDR, "get_addr"),
    (wpm::MPTCP_PM_CMD_FLUSH_ADDRS, "flush_addrs"),
    (wpm::MPTCP_PM_CMD_SET_LIMITS, "set_limits"),
    (wpm::MPTCP_PM_CMD_GET_LIMITS, "get_limits"),
    (wpm::MPTCP_PM_CMD_SET_FLAGS, "set_flags"),
    (wpm::MPTCP_PM_CMD_ANNOUNCE, "announce"),
    (wpm::MPTCP_PM_CMD_REMOVE, "remove"),
    (wpm::MPTCP_PM_CMD_SUBFLOW_CREATE, "subflow_create"),
    (wpm::MPTCP_PM_CMD_SUBFLOW_DESTROY, "subflow_destroy"),
];

/// `net.mptcp.*` sysctls a 6.18 kernel has; the probe lists these (present or missing) plus
/// any other the kernel exposes.
pub const KNOWN_SYSCTLS: &[&str] = &[
    "add_addr_timeout",
    "allow_join_initial_addr_port",
    "available_path_managers",
    "available_schedulers",
    "blackhole_timeout",
    "checksum_enabled",
    "close_timeout",
    "enabled",
    "path_manager",
    "pm_type",
    "scheduler",
    "stale_loss_cnt",
    "syn_retrans_before_tcp_fallback",
];

const TOP_ATTRS: [(u16, &str); 6] = [
    (wpm::MPTCP_PM_ATTR_ADDR, "addr"),
    (wpm::MPTCP_PM_ATTR_RCV_ADD_ADDRS, "rcv_add_addrs"),
    (wpm::MPTCP_PM_ATTR_SUBFLOWS, "subflows"),
    (wpm::MPTCP_PM_ATTR_TOKEN, "token"),
    (wpm::MPTCP_PM_ATTR_LOC_ID, "loc_id"),
    (wpm::MPTCP_PM_ATTR_ADDR_REMOTE, "addr_remote"),
];

const ADDR_ATTRS: [(u16, &str); 7] = [
    (wpm::MPTCP_PM_ADDR_ATTR_FAMILY, "family"),
    (wpm::MPTCP_PM_ADDR_ATTR_ID, "id"),
    (wpm::MPTCP_PM_ADDR_ATTR_ADDR4, "addr4"),
    (wpm::MPTCP_PM_ADDR_ATTR_ADDR6, "addr6"),
    (wpm::MPTCP_PM_ADDR_ATTR_PORT, "port"),
    (wpm::MPTCP_PM_ADDR_ATTR_FLAGS, "flags"),
    (wpm::MPTCP_PM_ADDR_ATTR_IF_IDX, "if_idx"),
];

impl Capabilities {
    /// Whether the kernel exposes a counter.
    pub fn has_counter(&self, name: &str) -> bool {
        self.counters.contains(name)
    }

    /// A probed capability by name.
    pub fn get(&self, name: &str) -> Option<&Capability> {
        self.list.iter().find(|c| c.name == name)
    }

    /// Whether a capability is present (unknown names are not).
    pub fn has(&self, name: &str) -> bool {
        self.missing_reason(name).is_none()
    }

    /// Why a capability is missing here, `None` if present. `lang:<feature>` is always
    /// missing; a name the probe does not know is missing with that reason.
    pub fn missing_reason(&self, name: &str) -> Option<String> {
        if let Some(feature) = name.strip_prefix("lang:") {
            return Some(format!("the case language cannot express {feature} yet"));
        }
        if let Some(c) = self.get(name) {
            return (!c.present).then(|| c.detail.clone());
        }
        if let Some(counter) = name.strip_prefix("counter:") {
            return (!self.has_counter(counter)).then(|| "the kernel does not expose this counter".to_owned());
        }
        if let Some(sysctl) = name.strip_prefix("sysctl:") {
            return Some(format!("{} is not a net.mptcp sysctl the probe looked for", sysctl));
        }
        Some("not a capability this harness probes (see `mptcp-conformance probe`)".to_owned())
    }

    /// Which of `needs` (name -> where the case uses it) are missing: `(name, reason)`.
    pub fn missing(&self, needs: &BTreeMap<String, String>) -> Vec<(String, String)> {
        needs.keys().filter_map(|n| self.missing_reason(n).map(|r| (n.clone(), r))).collect()
    }

    /// The capability a blocker is about (`root`, `netns` or `mptcp`), if cases cannot run.
    pub fn blocking_capability(&self) -> Option<&str> {
        self.blocker.as_ref()?;
        ["root", "netns", "mptcp"]
            .into_iter()
            .find(|n| self.get(n).is_none_or(|c| !c.present))
            .or(Some("mptcp"))
    }

    fn push(&mut self, name: impl Into<String>, present: bool, detail: impl Into<String>) {
        self.list.push(Capability { name: name.into(), present, detail: detail.into() });
    }
}

static CAPS: OnceLock<Capabilities> = OnceLock::new();

/// The capabilities of this machine (probed on first use, once per process).
pub fn capabilities() -> &'static Capabilities {
    CAPS.get_or_init(probe)
}

/// Probes now (uncached; [`capabilities`] caches this).
pub fn probe() -> Capabilities {
    let t0 = Instant::now();
    let mut caps = Capabilities::default();
    probe_into(&mut caps);
    caps.elapsed = t0.elapsed();
    caps
}

fn probe_into(caps: &mut Capabilities) {
    if !nix::unistd::geteuid().is_root() {
        let why = "needs root: run as root (e.g. `sudo -E cargo test`) in a VM or disposable machine";
        caps.push("root", false, why);
        caps.blocker = Some(why.into());
        return;
    }
    caps.push("root", true, "euid 0");
    let ns = match Netns::new("probe") {
        Ok(ns) => ns,
        Err(e) => {
            let why = format!("cannot create a network namespace: {e}");
            caps.push("netns", false, why.clone());
            caps.blocker = Some(why);
            return;
        }
    };
    caps.push("netns", true, "unshare(CLONE_NEWNET) works");

    // nft is a process (tens of ms): run it beside the netlink probes.
    std::thread::scope(|s| {
        let nft = s.spawn(|| probe_nft(&ns));
        probe_in_namespace(caps, &ns);
        match nft.join() {
            Ok(found) => {
                for (n, p, d) in found {
                    caps.push(n, p, d);
                }
            }
            Err(p) => caps.push("nft", false, format!("the nft probe panicked: {}", crate::netns::panic_text(&p))),
        }
    });
}

fn probe_in_namespace(caps: &mut Capabilities, ns: &Netns) {
    // Basics, sysctls and an rtnetlink socket, from one thread inside.
    let basics = ns.run(|| {
        let enabled = std::path::Path::new("/proc/sys/net/mptcp/enabled").exists();
        let v4 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::MPTCP)).map(drop);
        let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, Some(socket2::Protocol::MPTCP)).map(drop);
        let sysctls: BTreeSet<String> = std::fs::read_dir("/proc/sys/net/mptcp")
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let rt = nl_socket(libc::NETLINK_ROUTE);
        (enabled, v4, v6, sysctls, rt)
    });
    let (enabled, v4, v6, sysctls, rt) = match basics {
        Ok(b) => b,
        Err(e) => {
            caps.blocker = Some(e.to_string());
            caps.push("mptcp", false, e.to_string());
            return;
        }
    };
    match (enabled, v4) {
        (false, _) => {
            let why = "the kernel has no MPTCP (/proc/sys/net/mptcp/enabled is missing; CONFIG_MPTCP=y needed)";
            caps.push("mptcp", false, why);
            caps.blocker = Some(why.into());
        }
        (true, Err(e)) => {
            let why = format!("socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP) fails in a fresh namespace: {e}");
            caps.push("mptcp", false, why.clone());
            caps.blocker = Some(why);
        }
        (true, Ok(())) => caps.push("mptcp", true, "IPPROTO_MPTCP sockets in a fresh namespace"),
    }
    match v6 {
        Ok(()) => caps.push("ipv6", true, "AF_INET6 MPTCP sockets"),
        Err(e) => caps.push("ipv6", false, format!("socket(AF_INET6, SOCK_STREAM, IPPROTO_MPTCP): {e}")),
    }
    for name in KNOWN_SYSCTLS.iter().map(|s| (*s).to_owned()).chain(sysctls.iter().cloned()).collect::<BTreeSet<_>>() {
        let present = sysctls.contains(&name);
        let detail = if present { String::new() } else { format!("/proc/sys/net/mptcp/{name} does not exist") };
        caps.push(format!("sysctl:net.mptcp.{name}"), present, detail);
    }

    // Counters.
    match MibReader::open(ns).and_then(|m| m.snapshot()) {
        Ok(snap) => caps.counters = snap.names().map(str::to_owned).collect(),
        Err(e) => caps.push("counters", false, e.to_string()),
    }
    let exposed: BTreeSet<&str> = caps.counters.iter().map(String::as_str).filter(|c| c.starts_with("MPTcpExt")).collect();
    let known: BTreeSet<&str> = mptcp_spec::counters::MPTCP_COUNTERS.iter().map(|(n, _)| *n).collect();
    let counter_caps: Vec<Capability> = known
        .union(&exposed)
        .map(|n| {
            let present = exposed.contains(n);
            let detail = match (present, known.contains(n)) {
                (true, true) => "",
                (true, false) => "exposed; not in the harness's catalogue (spec/src/counters.rs)",
                (false, _) => "not in this kernel's MPTcpExt row of /proc/net/netstat",
            };
            Capability { name: format!("counter:{n}"), present, detail: detail.to_owned() }
        })
        .collect();

    let mut rt = match rt {
        Ok(fd) => Some(RawNl::new(fd)),
        Err(e) => {
            caps.push("rtnetlink", false, format!("open a NETLINK_ROUTE socket: {e}"));
            None
        }
    };
    if let Some(rt) = &mut rt
        && let Err(e) = rt.request(RTM_NEWLINK, 0, &ifinfomsg(LO, IFF_UP, IFF_UP))
    {
        caps.push("rtnetlink", false, format!("ip link set lo up: {e}"));
    }

    if caps.blocker.is_none() {
        probe_pm(caps, ns);
        probe_sockets(caps, ns);
    }
    caps.list.extend(counter_caps);
    if let Some(rt) = &mut rt {
        probe_tc(caps, rt);
    }
}

/// The `mptcp_pm` family, its policy, endpoint flags and the listener event.
fn probe_pm(caps: &mut Capabilities, ns: &Netns) {
    let timeout = Duration::from_secs(2);
    let sock = match NlSocket::open(ns) {
        Ok(s) => s,
        Err(e) => {
            caps.push("pm", false, format!("open a generic netlink socket: {e}"));
            return;
        }
    };
    let fam = match sock.family(MPTCP_PM_NAME, timeout) {
        Ok(f) => f,
        Err(e) => {
            caps.push("pm", false, format!("resolve generic netlink family {MPTCP_PM_NAME}: {e}"));
            return;
        }
    };
    caps.push("pm", true, format!("family {MPTCP_PM_NAME} id {} version {}", fam.id, fam.version));
    for (cmd, name) in PM_COMMAND_NAMES {
        match fam.op(u32::from(cmd)) {
            Some(op) => caps.push(
                format!("pm:cmd:{name}"),
                true,
                format!("{}{}{}", if op.can_do() { "do" } else { "" }, if op.can_dump() { "+dump" } else { "" }, if op.needs_admin() { ", admin" } else { "" }),
            ),
            None => caps.push(format!("pm:cmd:{name}"), false, format!("family {MPTCP_PM_NAME} does not list command {cmd}")),
        }
    }
    for op in fam.ops.iter().filter(|o| !PM_COMMAND_NAMES.iter().any(|(c, _)| u32::from(*c) == o.id)) {
        caps.push(format!("pm:cmd:{}", op.id), true, "a command this harness does not know");
    }
    match fam.mcast_group(MPTCP_PM_EV_GRP_NAME) {
        Some(g) => caps.push("events", true, format!("group {MPTCP_PM_EV_GRP_NAME} id {g}")),
        None => caps.push("events", false, format!("family {MPTCP_PM_NAME} has no {MPTCP_PM_EV_GRP_NAME} group")),
    }

    // Attributes from the policy dump.
    let seq = sock.next_seq();
    let policy = sock
        .request(&get_policy_request(fam.id, None, seq), seq, timeout)
        .map_err(|e| e.to_string())
        .and_then(|msgs| PolicyDump::from_replies(msgs.iter().map(|m| m.payload.as_slice())).map_err(|e| e.to_string()));
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    match &policy {
        Ok(dump) => {
            for op in dump.ops.values() {
                let Some(idx) = op.do_policy.or(op.dump_policy) else { continue };
                for (t, name) in TOP_ATTRS {
                    let Some(p) = dump.attr(idx, t) else { continue };
                    attrs.entry(name.to_owned()).or_insert_with(|| p.attr_type.to_string());
                    if let Some(nidx) = p.policy_idx {
                        for (at, aname) in ADDR_ATTRS {
                            if let Some(ap) = dump.attr(nidx, at) {
                                let mut d = ap.attr_type.to_string();
                                if let Some(m) = ap.mask {
                                    d += &format!(", mask {m:#x}");
                                }
                                attrs.entry(format!("addr.{aname}")).or_insert(d);
                            }
                        }
                    }
                }
            }
        }
        Err(e) => caps.push("pm:policy", false, format!("CTRL_CMD_GETPOLICY for {MPTCP_PM_NAME}: {e}")),
    }

    // Endpoint flags: add one endpoint per flag and read it back.
    let mut flags: Vec<(String, bool, String)> = Vec::new();
    let mut addr4_accepted = None;
    match PmClient::open(ns, "probe") {
        Err(e) => {
            for f in FLAG_WORDS {
                flags.push((f.to_owned(), false, format!("cannot open a PM client: {e}")));
            }
        }
        Ok(pm) => {
            // Control: does the kernel drop a flag bit it does not know? (6.18 masks flags; a
            // kernel that keeps unknown bits would read back any flag, proving nothing.)
            let unknown_bit = EndpointFlags(0x80) | EndpointFlags::SUBFLOW;
            let keeps_unknown = pm.add(Endpoint::new(IpAddr::from([10, 255, 1, 1])).with_id(99).with_flags(unknown_bit)).is_ok()
                && pm.get(99, None).is_ok_and(|ep| ep.flags.bits() & 0x80 != 0);
            for (i, word) in FLAG_WORDS.iter().enumerate() {
                let id = 100 + i as u8;
                let addr: IpAddr = format!("10.255.0.{}", i + 1).parse().unwrap_or(IpAddr::from([10, 255, 0, 1]));
                let flag: EndpointFlags = word.parse().unwrap_or(EndpointFlags::EMPTY);
                let with = if *word == "fullmesh" { flag | EndpointFlags::SUBFLOW } else { flag };
                let r = pm.add(Endpoint::new(addr).with_id(id).with_flags(with));
                if addr4_accepted.is_none() {
                    addr4_accepted = Some(r.is_ok());
                }
                let found = match r {
                    Ok(()) => match pm.get(id, None) {
                        Ok(ep) if ep.flags.contains(flag) => (true, format!("endpoint added with `{with}` reads back as `{}`", ep.flags)),
                        Ok(ep) => (false, format!("endpoint added with `{with}` reads back as `{}`: the kernel dropped the flag", ep.flags)),
                        Err(e) => (false, format!("reading the endpoint back failed: {e}")),
                    },
                    Err(e) if *word == "implicit" && e.source.ext_ack_msg().is_some_and(|m| m.contains("IMPLICIT")) => {
                        (true, format!("reserved to the kernel: adding one is refused ({})", e.source))
                    }
                    Err(e) => (false, format!("adding an endpoint with `{with}` is refused: {}", e.source)),
                };
                let found = match found {
                    (true, d) if keeps_unknown && *word == "laminar" => {
                        (false, format!("{d}, but the kernel also keeps unknown flag bits (0x80 read back), so that proves nothing; kernels that know laminar drop unknown bits"))
                    }
                    f => f,
                };
                flags.push(((*word).to_owned(), found.0, found.1));
            }
            let _ = pm.request(&wpm::PmRequest::FlushAddrs);
        }
    }
    if addr4_accepted == Some(true) && !attrs.contains_key("addr.addr4") {
        attrs.insert("addr.addr4".into(), "accepted by ADD_ADDR (the policy dump omits it)".into());
    }
    if policy.is_ok() {
        for (_, name) in TOP_ATTRS {
            let d = attrs.get(name).cloned();
            caps.push(format!("pm:attr:{name}"), d.is_some(), d.unwrap_or_else(|| "in no operation's policy".into()));
        }
        for (_, name) in ADDR_ATTRS {
            let key = format!("addr.{name}");
            let d = attrs.get(&key).cloned();
            caps.push(format!("pm:attr:{key}"), d.is_some(), d.unwrap_or_else(|| "in no operation's address policy".into()));
        }
    }
    for (f, p, d) in flags {
        caps.push(format!("pm:{f}"), p, d);
    }
}

/// A loopback MPTCP connection: socket options, inet_diag and the listener event.
fn probe_sockets(caps: &mut Capabilities, ns: &Netns) {
    let recorder = EventRecorder::start(ns, "probe");
    let found = ns.run(loopback_probe);
    match &recorder {
        Ok(r) => {
            let seen = r.wait_for(Deadline::after(Duration::from_millis(300)), |l| {
                l.events.iter().any(|e| e.event.kind == EventKind::ListenerCreated)
            });
            if seen {
                caps.push("events:listener", true, "listen() produced listener_created");
            } else {
                caps.push("events:listener", false, "no listener_created event within 300 ms of listen()");
            }
        }
        Err(e) => caps.push("events:listener", false, e.to_string()),
    }
    drop(recorder);
    let found = match found {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            for n in ["mptcp_info", "tcpinfo", "subflow_addrs", "full_info", "diag"] {
                caps.push(n, false, format!("the loopback MPTCP connection failed: {e}"));
            }
            return;
        }
        Err(e) => {
            caps.push("mptcp_info", false, e.to_string());
            return;
        }
    };
    match &found.info {
        Ok(bytes) => {
            caps.push("mptcp_info", true, format!("{} bytes", bytes.len()));
            let info = MptcpInfo::from_bytes(bytes);
            for f in MptcpInfo::field_names() {
                let present = info.get(f).is_some();
                let detail = if present { String::new() } else { format!("beyond the {} bytes MPTCP_INFO returns", bytes.len()) };
                caps.push(format!("mptcp_info:{f}"), present, detail);
            }
        }
        Err(e) => {
            caps.push("mptcp_info", false, format!("getsockopt(SOL_MPTCP, MPTCP_INFO): {e}"));
            for f in MptcpInfo::field_names() {
                caps.push(format!("mptcp_info:{f}"), false, "MPTCP_INFO does not answer");
            }
        }
    }
    let arr = |r: &Result<(u32, u32), io::Error>, what: &str| match r {
        Ok((size, n)) => (true, format!("{size}-byte entries ({n} subflow(s) on a loopback connection)")),
        Err(e) => (false, format!("getsockopt(SOL_MPTCP, {what}): {e}")),
    };
    let (p, d) = arr(&found.tcpinfo, "MPTCP_TCPINFO");
    caps.push("tcpinfo", p, d);
    let (p, d) = arr(&found.subflow_addrs, "MPTCP_SUBFLOW_ADDRS");
    caps.push("subflow_addrs", p, d);
    match &found.full_info {
        Ok(len) => caps.push("full_info", true, format!("{len} bytes")),
        Err(e) => caps.push("full_info", false, format!("getsockopt(SOL_MPTCP, MPTCP_FULL_INFO): {e}")),
    }
    match &found.diag {
        Ok(n) => caps.push("diag", true, format!("SOCK_DIAG dump for IPPROTO_MPTCP listed {n} socket(s)")),
        Err(e) => caps.push("diag", false, e.clone()),
    }
}

#[derive(Debug)]
struct SocketFindings {
    info: Result<Vec<u8>, io::Error>,
    tcpinfo: Result<(u32, u32), io::Error>,
    subflow_addrs: Result<(u32, u32), io::Error>,
    full_info: Result<usize, io::Error>,
    diag: Result<usize, String>,
}

/// Runs inside the scratch namespace: listen, connect, accept over 127.0.0.1, then read the
/// socket options of the client socket and dump the MPTCP sockets over inet_diag.
fn loopback_probe() -> io::Result<SocketFindings> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let lst = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::MPTCP))?;
    lst.bind(&SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], 0))))?;
    lst.listen(4)?;
    let addr = lst.local_addr()?;
    let cli = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::MPTCP))?;
    cli.set_read_timeout(Some(Duration::from_secs(1)))?;
    cli.set_write_timeout(Some(Duration::from_secs(1)))?;
    cli.connect_timeout(&addr, Duration::from_secs(1))?;
    lst.set_nonblocking(false)?;
    lst.set_read_timeout(Some(Duration::from_secs(1)))?;
    let (srv, _) = lst.accept()?;
    let fd = cli.as_raw_fd();

    let mut buf = [0u8; 512];
    let info = getsockopt_buf(fd, MPTCP_INFO, &mut buf).map(|n| buf[..n].to_vec());
    let tcpinfo = subflow_array(fd, MPTCP_TCPINFO);
    let subflow_addrs = subflow_array(fd, MPTCP_SUBFLOW_ADDRS);
    let mut full = [0u8; 512];
    let full_info = getsockopt_buf(fd, MPTCP_FULL_INFO, &mut full);
    let diag = diag_dump();
    drop((srv, cli, lst));
    Ok(SocketFindings { info, tcpinfo, subflow_addrs, full_info, diag })
}

fn getsockopt_buf(fd: RawFd, opt: i32, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` and `len` outlive the call; `len` is the buffer size.
    let r = unsafe { libc::getsockopt(fd, SOL_MPTCP, opt, buf.as_mut_ptr().cast(), &raw mut len) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok((len as usize).min(buf.len())) }
}

/// An array option (`struct mptcp_subflow_data` header, then entries): `(size_kernel,
/// num_subflows)`.
fn subflow_array(fd: RawFd, opt: i32) -> io::Result<(u32, u32)> {
    let mut buf = [0u8; 16 + 4 * 512];
    buf[0..4].copy_from_slice(&16u32.to_ne_bytes()); // size_subflow_data
    buf[12..16].copy_from_slice(&512u32.to_ne_bytes()); // size_user
    getsockopt_buf(fd, opt, &mut buf)?;
    let word = |o: usize| u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
    Ok((word(8), word(4)))
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_REQ_PROTOCOL: u16 = 3;

/// `ss -M`'s request: a SOCK_DIAG dump of AF_INET sockets whose real protocol (the u8 field
/// cannot hold 262) is IPPROTO_MPTCP, given as `INET_DIAG_REQ_PROTOCOL`.
fn diag_dump() -> Result<usize, String> {
    let fd = nl_socket(libc::NETLINK_SOCK_DIAG).map_err(|e| format!("open a NETLINK_SOCK_DIAG socket: {e}"))?;
    let mut hdr = [0u8; 56]; // struct inet_diag_req_v2
    hdr[0] = libc::AF_INET as u8;
    hdr[1] = libc::IPPROTO_TCP as u8;
    hdr[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    let mut req = AttrWriter::with_header(&hdr);
    req.put_u32(INET_DIAG_REQ_PROTOCOL, libc::IPPROTO_MPTCP as u32);
    let mut nl = RawNl::new(fd);
    match nl.request(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, req.as_bytes()) {
        Ok(msgs) => Ok(msgs.len()),
        Err(e) if e.errno == libc::ENOENT => Err(format!("inet_diag has no MPTCP handler (CONFIG_INET_MPTCP_DIAG): {e}")),
        Err(e) => Err(format!("SOCK_DIAG dump for IPPROTO_MPTCP: {e}")),
    }
}

/// nftables with the MPTCP option match, in the scratch namespace.
fn probe_nft(ns: &Netns) -> Vec<(String, bool, String)> {
    let rules = "table inet mptcpct_probe {\n  chain c {\n    type filter hook input priority 0;\n    tcp option mptcp subtype 3 drop\n  }\n}\n";
    match crate::nft::run_in(ns, "nft", &["-f", "-"], Some(rules)) {
        Err(e) => {
            let why = format!("cannot run `nft` (install nftables): {e}");
            vec![("nft".into(), false, why.clone()), ("nft:mptcp".into(), false, why)]
        }
        Ok(out) if out.status.success() => {
            let listed = crate::nft::list(ns).unwrap_or_default();
            let mut v = vec![("nft".to_owned(), true, "nft runs inside a namespace".to_owned())];
            if listed.contains("mptcp subtype") {
                v.push(("nft:mptcp".into(), true, "`tcp option mptcp subtype 3 drop` loads and lists back".into()));
            } else {
                v.push(("nft:mptcp".into(), false, format!("the rule loaded but `nft list ruleset` does not show it: {}", listed.trim())));
            }
            v
        }
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            // A table without the MPTCP match tells whether nft itself works.
            let plain = crate::nft::run_in(ns, "nft", &["-f", "-"], Some("table inet mptcpct_probe2 { }\n"));
            let nft_ok = plain.as_ref().is_ok_and(|o| o.status.success());
            vec![
                ("nft".into(), nft_ok, if nft_ok { "nft runs inside a namespace".into() } else { format!("`nft -f -` fails: {err}") }),
                ("nft:mptcp".into(), false, format!("`tcp option mptcp subtype 3 drop` does not load: {err}")),
            ]
        }
    }
}

// ---- rtnetlink: qdiscs, actions, classifier -------------------------------------------------

const RTM_NEWLINK: u16 = 16;
const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const RTM_NEWACTION: u16 = 48;
const RTM_GETACTION: u16 = 50;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_ACT_TAB: u16 = 1;
const TCA_ACT_KIND: u16 = 1;
const TCA_ACT_OPTIONS: u16 = 2;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const TC_H_INGRESS_OF_CLSACT: u32 = 0xFFFF_FFF2;
const TC_ACT_PIPE: i32 = 3;
const LO: i32 = 1;
const IFF_UP: u32 = 1;

fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// `struct tcmsg`.
fn tcmsg(ifindex: i32, handle: u32, parent: u32, info: u32) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    b[8..12].copy_from_slice(&handle.to_ne_bytes());
    b[12..16].copy_from_slice(&parent.to_ne_bytes());
    b[16..20].copy_from_slice(&info.to_ne_bytes());
    b
}

/// `TCA_KIND` values of the tc messages in a dump (after a `tcmsg` / `tcamsg` header).
fn kinds_in(msgs: &[nl::DataMessage], header: usize) -> Vec<String> {
    fn walk(attrs: nl::Attrs<'_>, out: &mut Vec<String>, depth: usize) {
        for a in attrs.flatten() {
            if a.attr_type == TCA_KIND
                && let Ok(s) = a.as_str()
            {
                out.push(s.to_owned());
            } else if depth < 3 {
                walk(a.nested(), out, depth + 1);
            }
        }
    }
    let mut out = Vec::new();
    for m in msgs {
        if let Some(rest) = m.payload.get(header..) {
            walk(nl::Attrs::new(rest), &mut out, 0);
        }
    }
    out
}

fn probe_tc(caps: &mut Capabilities, rt: &mut RawNl) {
    // Qdiscs on lo's root, each removed after it was read back (clsact stays for the filter).
    let qdisc = |rt: &mut RawNl, kind: &str, handle: u32, parent: u32, options: Option<Vec<u8>>| -> (bool, String) {
        let mut w = AttrWriter::with_header(&tcmsg(LO, handle, parent, 0));
        w.put_str(TCA_KIND, kind);
        if let Some(o) = &options {
            w.put(TCA_OPTIONS, o);
        }
        if let Err(e) = rt.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, w.as_bytes()) {
            return (false, format!("tc qdisc add dev lo ... {kind}: {e}"));
        }
        match rt.request(RTM_GETQDISC, NLM_F_DUMP, &tcmsg(LO, 0, 0, 0)) {
            Ok(msgs) if kinds_in(&msgs, 20).iter().any(|k| k == kind) => (true, "added on lo and dumped back".into()),
            Ok(_) => (false, format!("added, but `tc qdisc show dev lo` does not list {kind}")),
            Err(e) => (false, format!("dumping qdiscs failed: {e}")),
        }
    };
    let delete_root = |rt: &mut RawNl| {
        let _ = rt.request(RTM_DELQDISC, 0, &tcmsg(LO, 0x1_0000, TC_H_ROOT, 0));
    };
    // netem: struct tc_netem_qopt { latency, limit, loss, gap, duplicate, jitter }.
    let mut netem = vec![0u8; 24];
    netem[4..8].copy_from_slice(&1000u32.to_ne_bytes());
    let (p, d) = qdisc(rt, "netem", 0x1_0000, TC_H_ROOT, Some(netem));
    caps.push("qdisc:netem", p, d);
    delete_root(rt);
    // tbf: TCA_TBF_PARMS (struct tc_tbf_qopt: rate, peakrate, limit, buffer, mtu) and a burst
    // above lo's MTU (a smaller one makes the kernel warn in its log).
    let mut parms = [0u8; 36];
    parms[1] = 1; // rate.linklayer = TC_LINKLAYER_ETHERNET: no rate table needed
    parms[8..12].copy_from_slice(&125_000u32.to_ne_bytes()); // rate: 1 Mbit/s
    parms[24..28].copy_from_slice(&200_000u32.to_ne_bytes()); // limit
    let mut tbf = AttrWriter::new();
    tbf.put(1, &parms).put_u32(6, 200_000); // TCA_TBF_PARMS, TCA_TBF_BURST
    let (p, d) = qdisc(rt, "tbf", 0x1_0000, TC_H_ROOT, Some(tbf.as_bytes().to_vec()));
    caps.push("qdisc:tbf", p, d);
    delete_root(rt);
    // htb: TCA_HTB_INIT (struct tc_htb_glob: version 3, rate2quantum 10, defcls, debug, direct_pkts).
    let mut glob = [0u8; 20];
    glob[0..4].copy_from_slice(&3u32.to_ne_bytes());
    glob[4..8].copy_from_slice(&10u32.to_ne_bytes());
    let mut htb = AttrWriter::new();
    htb.put(2, &glob);
    let (p, d) = qdisc(rt, "htb", 0x1_0000, TC_H_ROOT, Some(htb.as_bytes().to_vec()));
    caps.push("qdisc:htb", p, d);
    delete_root(rt);
    let (clsact, d) = qdisc(rt, "clsact", 0xFFFF_0000, TC_H_CLSACT, None);
    caps.push("qdisc:clsact", clsact, d);

    // The fw classifier on clsact's ingress (no options: the kernel accepts an empty old-style
    // fw filter).
    if clsact {
        let info = (1u32 << 16) | u32::from((libc::ETH_P_ALL as u16).to_be());
        let mut w = AttrWriter::with_header(&tcmsg(LO, 0, TC_H_INGRESS_OF_CLSACT, info));
        w.put_str(TCA_KIND, "fw");
        let r = match rt.request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, w.as_bytes()) {
            Err(e) => (false, format!("tc filter add dev lo ingress ... fw: {e}")),
            Ok(_) => match rt.request(RTM_GETTFILTER, NLM_F_DUMP, &tcmsg(LO, 0, TC_H_INGRESS_OF_CLSACT, 0)) {
                Ok(msgs) if kinds_in(&msgs, 20).iter().any(|k| k == "fw") => (true, "added on clsact ingress and dumped back".into()),
                Ok(_) => (false, "added, but the filter dump does not list fw".into()),
                Err(e) => (false, format!("dumping filters failed: {e}")),
            },
        };
        caps.push("tc:fw", r.0, r.1);
    } else {
        caps.push("tc:fw", false, "no clsact qdisc to attach a filter to");
    }

    // Actions: struct tc_gen { index, capab, action, refcnt, bindcnt } first in each.
    let mut gen_ = [0u8; 20];
    gen_[8..12].copy_from_slice(&TC_ACT_PIPE.to_ne_bytes());
    // csum: TCA_CSUM_PARMS (struct tc_csum: tc_gen, update_flags = TCP).
    let mut csum = gen_.to_vec();
    csum.extend_from_slice(&8u32.to_ne_bytes());
    let r = action(rt, "csum", 1, &csum);
    caps.push("tc:csum", r.0, r.1);
    // pedit: TCA_PEDIT_PARMS (struct tc_pedit_sel: tc_gen, nkeys 1, flags, pad, then one
    // struct tc_pedit_key { mask, val, off, at, offmask, shift } that keeps every bit).
    let mut pedit = gen_.to_vec();
    pedit.extend_from_slice(&[1, 0, 0, 0]);
    let mut key = [0u8; 24];
    key[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
    pedit.extend_from_slice(&key);
    let r = action(rt, "pedit", 2, &pedit);
    caps.push("tc:pedit", r.0, r.1);
}

/// `tc actions add action <kind> ...` then `tc actions list action <kind>`.
fn action(rt: &mut RawNl, kind: &str, parms_attr: u16, parms: &[u8]) -> (bool, String) {
    let mut w = AttrWriter::with_header(&[0u8; 4]); // struct tcamsg
    let tab = w.begin_nested(TCA_ACT_TAB);
    let one = w.begin_nested(1);
    w.put_str(TCA_ACT_KIND, kind);
    let opts = w.begin_nested(TCA_ACT_OPTIONS);
    w.put(parms_attr, parms);
    w.end_nested(opts);
    w.end_nested(one);
    w.end_nested(tab);
    if let Err(e) = rt.request(RTM_NEWACTION, NLM_F_CREATE | NLM_F_EXCL, w.as_bytes()) {
        return (false, format!("tc actions add action {kind}: {e}"));
    }
    let mut q = AttrWriter::with_header(&[0u8; 4]);
    let tab = q.begin_nested(TCA_ACT_TAB);
    let one = q.begin_nested(1);
    q.put_str(TCA_ACT_KIND, kind);
    q.end_nested(one);
    q.end_nested(tab);
    match rt.request(RTM_GETACTION, NLM_F_DUMP, q.as_bytes()) {
        Ok(msgs) if kinds_in(&msgs, 4).iter().any(|k| k == kind) => (true, "added and listed back".into()),
        Ok(_) => (false, format!("added, but `tc actions list action {kind}` does not show it")),
        Err(e) => (false, format!("listing {kind} actions failed: {e}")),
    }
}

// ---- a minimal netlink request/response socket ---------------------------------------------

/// A netlink socket of any protocol, opened inside a namespace.
fn nl_socket(protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); checked below.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: zeroed sockaddr_nl is valid (nl_pid 0: the kernel).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    let len = size_of::<libc::sockaddr_nl>() as u32;
    // SAFETY: `sa` outlives the call; its size is passed.
    if unsafe { libc::connect(fd.as_raw_fd(), (&raw const sa).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    for opt in [nl::NETLINK_EXT_ACK, nl::NETLINK_CAP_ACK] {
        let one: i32 = 1;
        // SAFETY: `one` outlives the call; its size is passed.
        unsafe { libc::setsockopt(fd.as_raw_fd(), nl::SOL_NETLINK, opt, (&raw const one).cast(), 4) };
    }
    Ok(fd)
}

/// A refused netlink request: errno and the extended-ACK text.
#[derive(Debug)]
struct Refusal {
    errno: i32,
    msg: Option<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", mptcp_spec::errno::describe(self.errno))?;
        if let Some(m) = &self.msg {
            write!(f, ": \"{m}\"")?;
        }
        Ok(())
    }
}

struct RawNl {
    fd: OwnedFd,
    seq: u32,
}

impl RawNl {
    fn new(fd: OwnedFd) -> RawNl {
        RawNl { fd, seq: 1 }
    }

    /// Sends one request (`NLM_F_REQUEST`, plus `NLM_F_ACK` unless a dump) and collects the
    /// data messages of the answer until the ack or `NLMSG_DONE`; one second at most.
    fn request(&mut self, msg_type: u16, flags: u16, payload: &[u8]) -> Result<Vec<nl::DataMessage>, Refusal> {
        self.seq += 1;
        let seq = self.seq;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let flags = flags | NLM_F_REQUEST | if dump { 0 } else { NLM_F_ACK };
        let bytes = NlMsgHdr::new(msg_type, flags, seq).encode_message(payload);
        let io_err = |e: io::Error| Refusal { errno: e.raw_os_error().unwrap_or(libc::EIO), msg: Some(e.to_string()) };
        // SAFETY: `bytes` is valid for its length.
        if unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) } < 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        let deadline = Deadline::after(Duration::from_secs(1));
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(deadline.poll_timeout_ms(Duration::from_secs(1)))) {
                Ok(0) if deadline.passed() => return Err(Refusal { errno: libc::ETIMEDOUT, msg: Some("no answer within 1 s".into()) }),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io_err(e.into())),
            }
            // SAFETY: `buf` is valid for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                    continue;
                }
                return Err(io_err(e));
            }
            let msgs = nl::parse_messages(&buf[..n as usize]).map_err(|e| Refusal { errno: libc::EBADMSG, msg: Some(e.to_string()) })?;
            for m in msgs {
                if m.header().seq != seq {
                    continue;
                }
                match m {
                    NlMessage::Data(d) => out.push(d),
                    NlMessage::Ack(_) => return Ok(out),
                    NlMessage::Done(d) if d.errno == 0 => return Ok(out),
                    NlMessage::Done(d) => return Err(Refusal { errno: d.errno, msg: d.ext_ack.msg }),
                    NlMessage::Error(e) => return Err(Refusal { errno: e.errno, msg: e.ext_ack.msg }),
                }
            }
        }
    }
}

// ---- what a case needs ---------------------------------------------------------------------

/// The capabilities a case needs, each with where it uses it (first use): its `requires`,
/// every counter it names, the endpoint flags, PM commands and `pm_type` it uses, its
/// `net.mptcp` sysctls, `mptcp_info` fields of `wait_info` steps, event expectations
/// (`events`, and `events:listener` for listener events), checks (`diag`, `full_info`,
/// `tcpinfo`, `subflow_addrs` by name) and nft rules (`nft`, `nft:mptcp`), and `ipv6` when
/// an address is IPv6.
pub fn needs(case: &Case) -> BTreeMap<String, String> {
    let mut n = Needs::default();
    for r in &case.requires {
        n.add(r.clone(), "requires");
    }
    let topo_v6 = case.topology.links.iter().flat_map(|l| [&l.a, &l.b]).flat_map(|e| &e.addrs).any(|a| a.addr.is_ipv6())
        || case.topology.hosts.values().flat_map(|h| &h.lo_addrs).any(|a| a.addr.is_ipv6());
    if topo_v6 {
        n.add("ipv6".into(), format!("topology {}", case.topology.name));
    }
    for h in case.topology.hosts.values() {
        for (k, _) in &h.sysctls {
            n.sysctl(k, &format!("topology {}", case.topology.name));
        }
    }
    for (host, setup) in &case.hosts {
        let at = format!("hosts.{host}");
        for (k, _) in &setup.sysctls {
            n.sysctl(k, &format!("{at}.sysctls"));
        }
        if setup.pm_type.is_some() {
            n.add("sysctl:net.mptcp.pm_type".into(), format!("{at}.pm_type"));
        }
        if setup.limits.is_some() {
            n.add("pm:cmd:set_limits".into(), format!("{at}.limits"));
        }
        for (i, e) in setup.endpoints.iter().enumerate() {
            let ep = format!("{at}.endpoints[{i}]");
            n.add("pm:cmd:add_addr".into(), ep.clone());
            n.flags(&e.flags, &ep);
            if e.addr.is_ipv6() {
                n.add("ipv6".into(), ep.clone());
            }
            if e.port.is_some() {
                n.add("pm:attr:addr.port".into(), ep);
            }
        }
    }
    for (i, c) in case.connections.iter().enumerate() {
        let at = format!("connections[{i}]");
        // An IPv6 socket (v4-mapped addresses and the default `::` listener included).
        if c.connect.is_ipv6() || c.listen.is_ipv6() {
            n.add("ipv6".into(), at);
        }
    }
    for (host, e) in &case.expect {
        for (c, _) in &e.counters {
            n.add(format!("counter:{c}"), format!("expect.{host}.counters"));
        }
        let kinds = e.events.seq.iter().map(|m| m.kind.as_str()).chain(e.events.counts.keys().map(String::as_str));
        for k in kinds {
            n.event(k, &format!("expect.{host}.events"));
        }
    }
    n.steps(&case.steps);
    n.0
}

#[derive(Default)]
struct Needs(BTreeMap<String, String>);

impl Needs {
    fn add(&mut self, name: String, at: impl Into<String>) {
        self.0.entry(name).or_insert_with(|| at.into());
    }

    fn sysctl(&mut self, name: &str, at: &str) {
        if name.starts_with("net.mptcp.") {
            self.add(format!("sysctl:{name}"), at);
        }
    }

    fn flags(&mut self, flags: &[String], at: &str) {
        for f in flags {
            let word = f.strip_prefix("no").filter(|w| FLAG_WORDS.contains(w)).unwrap_or(f);
            if FLAG_WORDS.contains(&word) {
                self.add(format!("pm:{word}"), at);
            }
        }
    }

    fn event(&mut self, kind: &str, at: &str) {
        self.add("events".into(), at);
        if kind.starts_with("listener_") {
            self.add("events:listener".into(), at);
        }
    }

    fn steps(&mut self, steps: &[Step]) {
        for s in steps {
            match s {
                Step::Pm { at, cmd, expect, .. } => {
                    self.add("pm".into(), at.clone());
                    self.add(format!("pm:cmd:{}", pm_command_name(cmd)), at.clone());
                    match cmd {
                        PmCommand::Add { flags, port, .. }
                        | PmCommand::Announce { flags, port, .. }
                        | PmCommand::SubflowCreate { flags, port, .. } => {
                            self.flags(flags, at);
                            if port.is_some() {
                                self.add("pm:attr:addr.port".into(), at.clone());
                            }
                        }
                        PmCommand::SetFlags { flags, .. } => self.flags(flags, at),
                        _ => {}
                    }
                    for e in expect.endpoint.iter().chain(expect.endpoints.iter().flatten()) {
                        self.flags(&e.flags, at);
                    }
                }
                Step::WaitEvent { at, event, .. } => self.event(&event.kind, at),
                Step::WaitCounter { at, counters, .. } => {
                    for (c, _) in counters {
                        self.add(format!("counter:{c}"), at.clone());
                    }
                }
                Step::WaitInfo { at, fields, .. } => {
                    self.add("mptcp_info".into(), at.clone());
                    for (f, _) in fields {
                        self.add(format!("mptcp_info:{}", info_field(f)), at.clone());
                    }
                }
                Step::Sysctl { at, values, .. } => {
                    for (k, _) in values {
                        self.sysctl(k, at);
                    }
                }
                Step::Check { at, name, .. } => {
                    for (word, cap) in [("diag", "diag"), ("full_info", "full_info"), ("tcpinfo", "tcpinfo"), ("subflow_addrs", "subflow_addrs")] {
                        if name.contains(word) {
                            self.add(cap.into(), at.clone());
                        }
                    }
                }
                Step::Nft { at, rules, .. } => {
                    self.add("nft".into(), at.clone());
                    if rules.contains("option mptcp") {
                        self.add("nft:mptcp".into(), at.clone());
                    }
                }
                Step::Repeat { steps, .. } => self.steps(steps),
                _ => {}
            }
        }
    }
}

/// The kernel command a PM step sends (`MPTCP_PM_CMD_*`, lower-case).
pub fn pm_command_name(cmd: &PmCommand) -> &'static str {
    match cmd {
        PmCommand::Add { .. } => "add_addr",
        PmCommand::Del { .. } => "del_addr",
        PmCommand::Get { .. } | PmCommand::Dump { .. } => "get_addr",
        PmCommand::Flush => "flush_addrs",
        PmCommand::SetLimits { .. } => "set_limits",
        PmCommand::GetLimits => "get_limits",
        PmCommand::SetFlags { .. } => "set_flags",
        PmCommand::Announce { .. } => "announce",
        PmCommand::Remove { .. } => "remove",
        PmCommand::SubflowCreate { .. } => "subflow_create",
        PmCommand::SubflowDestroy { .. } => "subflow_destroy",
    }
}

/// The `mptcp_info` field behind a `wait_info` name (aliases resolved).
pub fn info_field(name: &str) -> &str {
    match name {
        "extra_subflows" => "subflows",
        "limit_extra_subflows" => "subflows_max",
        "endp_signal_max" => "add_addr_signal_max",
        "limit_add_addr_accepted" => "add_addr_accepted_max",
        "endp_subflow_max" => "local_addr_max",
        n => n,
    }
}

/// Why a case cannot run here: the blocker, or every missing capability it needs.
pub fn skip_reason(caps: &Capabilities, case: &Case) -> Option<String> {
    if let Some(b) = &caps.blocker {
        return Some(b.clone());
    }
    let needs = needs(case);
    let missing = caps.missing(&needs);
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing.iter().map(|(n, why)| format!("{n} ({why}; used by {})", needs[n])).collect();
    Some(format!("missing capabilit{} {}", if parts.len() == 1 { "y" } else { "ies" }, parts.join("; ")))
}

// ---- strict mode ---------------------------------------------------------------------------

/// Whether, and how, a case that cannot run here fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strictness {
    /// `MPTCP_CT_REQUIRE=1`: every skip fails, no allow-list.
    pub require: bool,
    /// `MPTCP_CT_STRICT=1` / `--strict`: a skip fails unless each missing capability is allowed.
    pub strict: bool,
    /// Capabilities this machine is known to lack (`MPTCP_CT_ALLOW_MISSING`,
    /// `MPTCP_CT_ALLOW_FILE`): an exact name, a prefix ending in `*` (`counter:*`), or a name
    /// without `:` matching a capability's last part (`netem` matches `qdisc:netem`).
    pub allow: Vec<String>,
}

impl Strictness {
    /// From the environment; `cli_strict` is `--strict`. Fails if the allow file is unreadable.
    pub fn from_env(cli_strict: bool) -> Result<Strictness, String> {
        let mut allow = Vec::new();
        if let Ok(list) = std::env::var("MPTCP_CT_ALLOW_MISSING") {
            allow.extend(parse_allow_list(&list.replace(',', "\n")));
        }
        if let Some(path) = std::env::var_os("MPTCP_CT_ALLOW_FILE") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("read the allow-list MPTCP_CT_ALLOW_FILE={}: {e}", std::path::Path::new(&path).display()))?;
            allow.extend(parse_allow_list(&text));
        }
        Ok(Strictness { require: crate::env::require(), strict: cli_strict || crate::env::strict(), allow })
    }

    /// Whether skips can become failures at all.
    pub fn active(&self) -> bool {
        self.require || self.strict
    }

    /// Whether a missing capability is allowed.
    pub fn allows(&self, cap: &str) -> bool {
        self.allow.iter().any(|a| allow_matches(a, cap))
    }

    /// Applies strict mode to a result: a skip becomes a failure unless every capability it
    /// misses is allowed (under `require`, always).
    pub fn apply(&self, caps: &Capabilities, case: Option<&Case>, result: CaseResult) -> CaseResult {
        let Verdict::Skip(reason) = &result.verdict else { return result };
        if !self.active() {
            return result;
        }
        if self.require {
            let report = format!("could not run here, and MPTCP_CT_REQUIRE=1 makes every skip a failure: {reason}\n");
            return CaseResult { verdict: Verdict::Fail, report, ..result };
        }
        let missing: Vec<String> = match (caps.blocking_capability(), case) {
            (Some(b), _) => vec![b.to_owned()],
            (None, Some(c)) => caps.missing(&needs(c)).into_iter().map(|(n, _)| n).collect(),
            (None, None) => Vec::new(),
        };
        let denied: Vec<&String> = missing.iter().filter(|m| !self.allows(m)).collect();
        if !missing.is_empty() && denied.is_empty() {
            let reason = format!("{reason} [allowed missing: {}]", missing.join(", "));
            return CaseResult { verdict: Verdict::Skip(reason), ..result };
        }
        let names = if denied.is_empty() { "(none named)".to_owned() } else { denied.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") };
        let report = format!(
            "could not run here, and strict mode (--strict, MPTCP_CT_STRICT=1) makes that a failure: {reason}\n\
             not in the allow-list (MPTCP_CT_ALLOW_MISSING / MPTCP_CT_ALLOW_FILE): {names}\n"
        );
        CaseResult { verdict: Verdict::Fail, report, ..result }
    }

    /// Allow-list entries that match no capability the probe knows (likely typos).
    pub fn unused<'a>(&'a self, caps: &Capabilities) -> Vec<&'a str> {
        self.allow
            .iter()
            .filter(|a| !caps.list.iter().any(|c| allow_matches(a, &c.name)) && !a.starts_with("lang:"))
            .map(String::as_str)
            .collect()
    }
}

/// Entries of an allow-list text: one per line, `#` starts a comment, blank lines ignored.
pub fn parse_allow_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn allow_matches(entry: &str, cap: &str) -> bool {
    if let Some(prefix) = entry.strip_suffix('*') {
        return cap.starts_with(prefix);
    }
    cap == entry || (!entry.contains(':') && cap.rsplit(':').next() == Some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_spec::source::Source;

    const TOPO: &str = r#"
summary = "pair"
[hosts.server]
[hosts.client]
[[links]]
a = { host = "server", ifname = "eth1", addrs = ["10.0.1.1/24"] }
b = { host = "client", ifname = "eth1", addrs = ["10.0.1.2/24"] }
"#;

    fn case(text: &str) -> Case {
        let topo = mptcp_spec::Topology::from_source("pair", &Source::new("pair.toml", TOPO)).unwrap();
        Case::from_source("t::c".into(), &Source::new("c.toml", text), &|_| Ok(topo.clone())).unwrap()
    }

    fn caps(present: &[&str], missing: &[&str]) -> Capabilities {
        let mut c = Capabilities::default();
        for p in present {
            c.push(*p, true, "");
        }
        for m in missing {
            c.push(*m, false, format!("{m} is not here"));
        }
        c.counters = ["MPTcpExtMPJoinSynRx".to_owned()].into();
        c
    }

    const RICH: &str = r#"
summary = "uses a bit of everything"
topology = "pair"
requires = ["qdisc:netem", "lang:packet loss"]
[hosts.server]
pm_type = "userspace"
sysctls = { "net.mptcp.checksum_enabled" = 1, "net.ipv4.tcp_syncookies" = 2 }
[hosts.client]
limits = { subflows = 2 }
endpoints = [{ addr = "10.0.1.2", flags = ["subflow", "fullmesh"] }]
[[connections]]
client = "client"
server = "server"
connect = "10.0.1.1"
listen = "0.0.0.0"
[[steps]]
host = "client"
pm = "set_flags"
id = 1
flags = ["nofullmesh"]
[[steps]]
wait_info = { side = "client", extra_subflows = 1, bytes_sent = { ge = 1 } }
[[steps]]
repeat = { var = "i", from = 1, to = 2 }
steps = [{ host = "client", wait_counter = { MPTcpExtMPJoinSynTx = 1 } }]
[expect.server]
events = ["listener_created", "created"]
[expect.server.counters]
MPTcpExtMPJoinSynRx = 1
"#;

    #[test]
    fn needs_are_inferred_from_what_a_case_uses() {
        let n = needs(&case(RICH));
        let names: Vec<&str> = n.keys().map(String::as_str).collect();
        assert_eq!(names, [
            "counter:MPTcpExtMPJoinSynRx",
            "counter:MPTcpExtMPJoinSynTx",
            "events",
            "events:listener",
            "lang:packet loss",
            "mptcp_info",
            "mptcp_info:bytes_sent",
            "mptcp_info:subflows",
            "pm",
            "pm:cmd:add_addr",
            "pm:cmd:set_flags",
            "pm:cmd:set_limits",
            "pm:fullmesh",
            "pm:subflow",
            "qdisc:netem",
            "sysctl:net.mptcp.checksum_enabled",
            "sysctl:net.mptcp.pm_type",
        ]);
        assert_eq!(n["pm:fullmesh"], "hosts.client.endpoints[0]");
        assert_eq!(n["counter:MPTcpExtMPJoinSynTx"], "steps[2].steps[0]");
        assert_eq!(n["qdisc:netem"], "requires");
    }

    #[test]
    fn default_listen_address_needs_ipv6() {
        let c = case(&RICH.replace("listen = \"0.0.0.0\"\n", ""));
        assert_eq!(needs(&c)["ipv6"], "connections[0]");
    }

    #[test]
    fn skip_reason_names_every_missing_capability() {
        let all: Vec<String> = needs(&case(RICH)).into_keys().collect();
        let present: Vec<&str> = all.iter().map(String::as_str).filter(|n| !n.starts_with("counter:") && *n != "qdisc:netem").collect();
        let c = caps(&present, &["qdisc:netem"]);
        let why = skip_reason(&c, &case(RICH)).unwrap();
        assert_eq!(
            why,
            "missing capabilities counter:MPTcpExtMPJoinSynTx (the kernel does not expose this counter; used by steps[2].steps[0]); \
             lang:packet loss (the case language cannot express packet loss yet; used by requires); \
             qdisc:netem (qdisc:netem is not here; used by requires)"
        );
        let mut blocked = c.clone();
        blocked.blocker = Some("needs root".into());
        assert_eq!(skip_reason(&blocked, &case(RICH)).unwrap(), "needs root");
    }

    #[test]
    fn unknown_capabilities_are_missing_with_a_reason() {
        let c = caps(&[], &[]);
        assert!(c.missing_reason("frobnicate").unwrap().contains("not a capability"));
        assert!(c.has("counter:MPTcpExtMPJoinSynRx"));
        assert!(!c.has("counter:MPTcpExtNope"));
    }

    fn skipped(reason: &str) -> CaseResult {
        CaseResult { id: "t::c".into(), verdict: Verdict::Skip(reason.into()), elapsed: Duration::ZERO, report: String::new(), artifacts: None }
    }

    #[test]
    fn strict_mode_honours_the_allow_list() {
        let c = case(RICH);
        let all: Vec<String> = needs(&c).into_keys().collect();
        let present: Vec<&str> = all.iter().map(String::as_str).filter(|n| !n.starts_with("lang:") && *n != "qdisc:netem").collect();
        let mut k = caps(&present, &["qdisc:netem"]);
        k.counters.insert("MPTcpExtMPJoinSynTx".into());
        let off = Strictness::default();
        assert_eq!(off.apply(&k, Some(&c), skipped("x")).verdict, Verdict::Skip("x".into()));

        let strict = Strictness { strict: true, allow: vec!["netem".into()], ..Strictness::default() };
        let r = strict.apply(&k, Some(&c), skipped("x"));
        assert_eq!(r.verdict, Verdict::Fail, "lang:packet loss is not allowed");
        assert!(r.report.contains("not in the allow-list (MPTCP_CT_ALLOW_MISSING / MPTCP_CT_ALLOW_FILE): lang:packet loss\n"), "{}", r.report);

        let lenient = Strictness { strict: true, allow: vec!["netem".into(), "lang:*".into()], ..Strictness::default() };
        assert_eq!(lenient.apply(&k, Some(&c), skipped("x")).verdict, Verdict::Skip("x [allowed missing: lang:packet loss, qdisc:netem]".into()));

        let require = Strictness { require: true, ..lenient.clone() };
        assert_eq!(require.apply(&k, Some(&c), skipped("x")).verdict, Verdict::Fail, "MPTCP_CT_REQUIRE ignores the allow-list");

        let mut root = k.clone();
        root.list.retain(|c| c.name != "root");
        root.push("root", false, "needs root");
        root.blocker = Some("needs root".into());
        assert_eq!(lenient.apply(&root, Some(&c), skipped("needs root")).verdict, Verdict::Fail);
        let root_ok = Strictness { allow: vec!["root".into()], ..lenient };
        assert!(matches!(root_ok.apply(&root, Some(&c), skipped("needs root")).verdict, Verdict::Skip(_)));
    }

    #[test]
    fn allow_lists_parse_and_match() {
        let list = parse_allow_list("# known gaps of this VM\nnetem\n  tc:pedit  # no NET_ACT_PEDIT\n\ncounter:*\n");
        assert_eq!(list, ["netem", "tc:pedit", "counter:*"]);
        assert!(allow_matches("netem", "qdisc:netem"));
        assert!(allow_matches("tc:pedit", "tc:pedit"));
        assert!(!allow_matches("pedit:x", "tc:pedit"));
        assert!(allow_matches("counter:*", "counter:MPTcpExtX"));
        assert!(!allow_matches("tbf", "qdisc:netem"));
        let s = Strictness { strict: true, allow: list, ..Strictness::default() };
        let k = caps(&["qdisc:netem", "tc:pedit"], &[]);
        assert_eq!(s.unused(&k), ["counter:*"]);
    }
}
