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
//! | `pm:limits_max=N`, `pm:endpoints_max=N` (N = 8, 64) | the largest limit SET_LIMITS accepts (binary search), the number of endpoints the table holds (added until refused), is N |
//! | `pm:endp_fullmesh_max` | with a fullmesh endpoint in the namespace, a connection's `mptcp_info` reports a non-zero `endp_fullmesh_max` (the in-kernel PM counts fullmesh endpoints, and caps fullmesh subflows by them) |
//! | `!<name>` (in `requires`) | satisfied when `<name>` is missing: the variant of a case for kernels without it |
//! | `pm:family_match` | with an IPv6 and then an IPv4 signal endpoint, an IPv4 loopback connection's first ADD_ADDR carries the IPv4 address (the in-kernel PM skips endpoints of the other family) |
//! | `pm:extack` | a refusal carries an extended-ACK message (set_flags on a missing endpoint says why) |
//! | `pm:dump_by_token`, `pm:get_by_token` | a dump / get carrying an unknown token is refused: the kernel answers from that connection's address list (userspace PM), not from the namespace's endpoint table |
//! | `pm:<flag>` | an endpoint added with the flag reads back with it (`signal` ... `laminar`); `implicit`: the kernel refuses to create one as reserved ("can't create IMPLICIT endpoint") |
//! | `events`, `events:listener` | the `mptcp_pm_events` group exists; a `listen()` produces `listener_created` |
//! | `counter:<MPTcpExt...>` | the counter is in the namespace's `/proc/net/netstat` |
//! | `mptcp_info`, `mptcp_info:<field>` | `MPTCP_INFO` answers; the field lies inside the length it returns |
//! | `tcpinfo`, `subflow_addrs`, `full_info` | `MPTCP_TCPINFO`, `MPTCP_SUBFLOW_ADDRS`, `MPTCP_FULL_INFO` answer on a connected socket |
//! | `protocols:mptcp_inuse` | `/proc/net/protocols` counts MPTCP sockets (non-zero with a listener and a connection open) |
//! | `mptfo` | an MPTCP listener accepts `setsockopt(TCP_FASTOPEN)` (MPTFO's server side) |
//! | `diag` | a `SOCK_DIAG_BY_FAMILY` dump with `INET_DIAG_REQ_PROTOCOL` = IPPROTO_MPTCP answers (not ENOENT) |
//! | `qdisc:<kind>` | `netem`, `tbf`, `htb`, `clsact` added on `lo` and dumped back |
//! | `tc` | the `tc` tool runs inside a namespace (host `tc` commands use it) |
//! | `nft`, `nft:mptcp` | `nft` runs; a rule `tcp option mptcp subtype 3 drop` loads and lists back |
//! | `nft:tproxy` | a `socket transparent` + `tproxy to` ruleset loads and lists back (host `nft` using `tproxy`) |
//! | `sockopt:transparent` | `IP_TRANSPARENT` / `IPV6_TRANSPARENT` are accepted on MPTCP sockets (connections with `transparent`) |
//! | `ethtool` | `ethtool -k lo` runs inside a namespace (host `offloads`) |
//! | `ip_rule` | `fwmark 1 lookup 100` rules and `local` routes in table 100 (v4, v6) are accepted over rtnetlink (host `rules`) |
//! | `nft:tcp_option_raw` | a raw TCP option match (`tcp option @30,16,8 & 0xf1 == 0x31`, the ADD_ADDR echo) with a named counter loads, lists back, and the counter reads back as 0 |
//! | `tc:pedit`, `tc:csum`, `tc:fw` | the action (RTM_NEWACTION) or the classifier (RTM_NEWTFILTER on clsact) is accepted and dumped back |
//!
//! [`needs`] says which capabilities a case uses (its `requires` plus what it names: counters,
//! flags, `pm_type`, `mptcp_info` fields, event types, checks, nft rules);
//! [`Capabilities::missing`] which of them this machine lacks. [`Strictness`] turns skips
//! into failures (`MPTCP_CT_STRICT`, `--strict`, with an allow-list; `MPTCP_CT_REQUIRE`).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mptcp_wire::event::EventKind;
use mptcp_wire::genl::{PolicyDump, get_policy_request};
use mptcp_wire::mptcp_info::{MPTCP_FULL_INFO, MPTCP_INFO, MPTCP_SUBFLOW_ADDRS, MPTCP_TCPINFO, MptcpInfo, SOL_MPTCP};
use mptcp_wire::nl::{AttrWriter, NLM_F_DUMP};
use mptcp_wire::pm::{self as wpm, Endpoint, EndpointFlags, MPTCP_PM_EV_GRP_NAME, MPTCP_PM_NAME};

use crate::events::EventRecorder;
use crate::genl::NlSocket;
use crate::mib::MibReader;
use crate::netns::Netns;
use crate::pm::PmClient;
use crate::wait::Deadline;
use netlink::{RawNl, nl_socket};

mod needs;
pub(crate) mod netlink;
mod strict;
mod tc;

pub use needs::{info_field, needs, pm_command_name, skip_reason, unchecked_counters};
pub use strict::{Strictness, parse_allow_list};

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
    /// missing; a name the probe does not know is missing with that reason; `!name` is
    /// "missing" exactly when `name` is present (a case written for kernels without it).
    pub fn missing_reason(&self, name: &str) -> Option<String> {
        // `!name`: the case is the variant for kernels without that capability.
        if let Some(inner) = name.strip_prefix('!') {
            let detail = self.get(inner).map(|c| format!(" ({})", c.detail)).unwrap_or_default();
            return self.has(inner).then(|| format!("{inner} is present{detail}: this case is the variant for kernels without it"));
        }
        if let Some(feature) = name.strip_prefix("lang:") {
            return Some(format!("the case language cannot express {feature} yet"));
        }
        if let Some(c) = self.get(name) {
            return (!c.present).then(|| c.detail.clone());
        }
        if let Some(counter) = name.strip_prefix("counter:") {
            return (!self.has_counter(counter)).then(|| "the kernel does not expose this counter".to_owned());
        }
        // A capability the probe could not get to: its missing parent says why (`pm:cmd:x`
        // when `pm` is missing, `mptcp_info:x` when `mptcp_info` is).
        let mut parent = name;
        while let Some((p, _)) = parent.rsplit_once(':') {
            parent = p;
            if let Some(c) = self.get(parent).filter(|c| !c.present) {
                return Some(format!("needs {parent}, which is missing: {}", c.detail));
            }
        }
        if let Some(sysctl) = name.strip_prefix("sysctl:") {
            return Some(format!("{sysctl} is not a net.mptcp sysctl the probe looked for"));
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

    // tc and nft are processes (tens of ms): run them beside the netlink probes, in a
    // namespace of their own (their rules drop MPTCP options: ADD_ADDR, for one).
    let tools_ns = Netns::new("probe-tools");
    std::thread::scope(|s| {
        let nft = s.spawn(|| match &tools_ns {
            Ok(ns) => probe_tools(ns),
            Err(e) => vec![("nft".to_owned(), false, format!("cannot create a namespace for the tool probes: {e}"))],
        });
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
        && let Err(e) = rt.request(tc::RTM_NEWLINK, 0, &tc::ifinfomsg(tc::LO, tc::IFF_UP, tc::IFF_UP))
    {
        caps.push("rtnetlink", false, format!("ip link set lo up: {e}"));
    }

    if caps.blocker.is_none() {
        probe_pm(caps, ns);
        probe_sockets(caps, ns);
    }
    caps.list.extend(counter_caps);
    match &mut rt {
        Some(rt) => {
            tc::probe_tc(caps, rt);
            probe_ip_rule(caps, rt);
        }
        None => {
            caps.push("ip_rule", false, "no rtnetlink socket to probe it with");
            for n in tc::CAPABILITIES {
                caps.push(n, false, "no rtnetlink socket to probe it with");
            }
        }
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
    let mut extack: Option<(bool, String)> = None;
    let mut by_token: Vec<(&str, bool, String)> = Vec::new();
    let mut sizes: Vec<(&str, Result<u32, String>)> = Vec::new();
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
            sizes.push(("limits_max", pm_limits_max(&pm)));
            sizes.push(("endpoints_max", pm_endpoints_max(&pm)));
            let _ = pm.request(&wpm::PmRequest::FlushAddrs);
            // Whether refusals say why: changing the flags of an endpoint that does not exist.
            let refusal = pm.request(&wpm::PmRequest::SetFlags {
                target: wpm::AddrTarget::Id(200),
                flags: EndpointFlags::BACKUP,
                token: None,
                remote: None,
            });
            extack = Some(match refusal {
                Err(e) => match e.source.ext_ack_msg() {
                    Some(m) => (true, format!("set_flags on a missing endpoint is refused with \"{m}\"")),
                    None => (false, format!("set_flags on a missing endpoint is refused without an extended-ACK message ({})", e.source)),
                },
                Ok(_) => (false, "set_flags on a missing endpoint was accepted".to_owned()),
            });
            // A connection's own address list (userspace PM): a get or dump carrying a token
            // is answered from that connection, so an unknown token is refused. Kernels
            // without it ignore the token and answer from the namespace's endpoint table.
            const UNKNOWN_TOKEN: u32 = 1;
            let table = pm.add(Endpoint::new(IpAddr::from([10, 255, 2, 1])).with_id(1).with_flags(EndpointFlags::SIGNAL));
            for (cap, req, what) in [
                ("dump_by_token", wpm::PmRequest::DumpAddrs { token: Some(UNKNOWN_TOKEN) }, "a dump"),
                ("get_by_token", wpm::PmRequest::GetAddr { id: 1, token: Some(UNKNOWN_TOKEN) }, "a get of endpoint 1"),
            ] {
                let found = match (&table, pm.request(&req)) {
                    (_, Err(e)) => (true, format!("{what} with an unknown token is refused ({})", e.source)),
                    (Ok(()), Ok(_)) => (false, format!("{what} with an unknown token is answered from the namespace's endpoint table: this kernel ignores the token (no per-connection address list)")),
                    (Err(e), Ok(_)) => (false, format!("{what} with an unknown token is answered (and endpoint 1 could not be added: {})", e.source)),
                };
                by_token.push((cap, found.0, found.1));
            }
            let _ = pm.request(&wpm::PmRequest::FlushAddrs);
        }
    }
    if let Some((p, d)) = extack {
        caps.push("pm:extack", p, d);
    }
    for (name, p, d) in by_token {
        caps.push(format!("pm:{name}"), p, d);
    }
    for (name, found) in sizes {
        let (value, detail) = match found {
            Ok(v) => (Some(v), String::new()),
            Err(e) => (None, e),
        };
        for want in PM_SIZES {
            let cap = format!("pm:{name}={want}");
            match value {
                Some(v) if v == want => caps.push(cap, true, format!("{name} is {v}")),
                Some(v) => caps.push(cap, false, format!("this kernel's {name} is {v}, not {want}")),
                None => caps.push(cap, false, detail.clone()),
            }
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

/// The sizes `pm:limits_max=N` / `pm:endpoints_max=N` are probed against (the in-kernel
/// PM's historical maximum is 8; newer kernels may raise it).
const PM_SIZES: [u32; 2] = [8, 64];

/// The largest `add_addr_accepted` (and `subflows`) limit the kernel accepts: binary search
/// over SET_LIMITS, which refuses values above the maximum; the limits are put back to 0.
fn pm_limits_max(pm: &PmClient) -> Result<u32, String> {
    let set = |n: u32| pm.request(&wpm::PmRequest::SetLimits { rcv_add_addrs: Some(n), subflows: Some(n) }).is_ok();
    if !set(0) {
        return Err("SET_LIMITS 0 0 is refused".into());
    }
    let (mut ok, mut bad) = (0u32, 1025u32);
    while bad - ok > 1 {
        let mid = ok + (bad - ok) / 2;
        if set(mid) { ok = mid } else { bad = mid }
    }
    set(0);
    if bad == 1025 { Err("SET_LIMITS accepts 1024: no maximum found".into()) } else { Ok(ok) }
}

/// How many endpoints the in-kernel PM's table holds: add distinct ones until refused.
fn pm_endpoints_max(pm: &PmClient) -> Result<u32, String> {
    let _ = pm.request(&wpm::PmRequest::FlushAddrs);
    for n in 0..300u32 {
        let addr = IpAddr::from([10, 254, (n / 250) as u8, (n % 250 + 1) as u8]);
        if let Err(e) = pm.add(Endpoint::new(addr)) {
            let _ = pm.request(&wpm::PmRequest::FlushAddrs);
            return if n == 0 { Err(format!("the first endpoint is refused: {}", e.source)) } else { Ok(n) };
        }
    }
    let _ = pm.request(&wpm::PmRequest::FlushAddrs);
    Err("300 endpoints accepted: no maximum found".into())
}

/// A loopback MPTCP connection: socket options, inet_diag and the listener event.
fn probe_sockets(caps: &mut Capabilities, ns: &Netns) {
    probe_transparent(caps, ns);
    let recording = crate::daemon_lock::recording();
    let recorder = EventRecorder::start(ns, "probe");
    // A fullmesh endpoint during the connection: kernels that count them report it in
    // mptcp_info's endp_fullmesh_max (older ones have a reserved 0 byte there).
    let pm = PmClient::open(ns, "probe").ok();
    let fullmesh = pm.as_ref().map(|pm| {
        let ep = Endpoint::new(IpAddr::from([10, 255, 9, 9])).with_flags(EndpointFlags::SUBFLOW | EndpointFlags::FULLMESH);
        pm.add(ep).map_err(|e| e.source.to_string())
    });
    let found = ns.run(loopback_probe);
    if let Some(pm) = &pm {
        let _ = pm.request(&wpm::PmRequest::FlushAddrs);
    }
    let fullmesh_max = match (&fullmesh, &found) {
        (Some(Ok(())), Ok(Ok(f))) => match &f.info {
            Ok(bytes) => match MptcpInfo::from_bytes(bytes).get("endp_fullmesh_max") {
                Some(0) => (false, "with one fullmesh endpoint, mptcp_info's endp_fullmesh_max reads 0: this kernel does not count fullmesh endpoints".to_owned()),
                Some(n) => (true, format!("with one fullmesh endpoint, mptcp_info's endp_fullmesh_max reads {n}")),
                None => (false, format!("mptcp_info ({} bytes) has no endp_fullmesh_max", bytes.len())),
            },
            Err(e) => (false, format!("getsockopt(MPTCP_INFO): {e}")),
        },
        (Some(Err(e)), _) => (false, format!("adding a fullmesh endpoint is refused: {e}")),
        (None, _) => (false, "cannot open a PM client".to_owned()),
        (_, _) => (false, "the loopback MPTCP connection failed".to_owned()),
    };
    caps.push("pm:endp_fullmesh_max", fullmesh_max.0, fullmesh_max.1);
    let (present, detail) = match (&pm, &recorder) {
        (Some(pm), Ok(r)) => probe_family_match(ns, pm, r),
        (None, _) => (false, "cannot open a PM client".to_owned()),
        (_, Err(e)) => (false, format!("no event recorder: {e}")),
    };
    caps.push("pm:family_match", present, detail);
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
    drop(recording);
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
    match &found.inuse {
        Ok(0) => caps.push("protocols:mptcp_inuse", false, "/proc/net/protocols counts 0 MPTCP sockets with a listener and a connection open: this kernel does not account msk in use"),
        Ok(n) => caps.push("protocols:mptcp_inuse", true, format!("/proc/net/protocols counted {n} MPTCP sockets (a listener and a connection)")),
        Err(e) => caps.push("protocols:mptcp_inuse", false, e.clone()),
    }
    match &found.fastopen {
        Ok(()) => caps.push("mptfo", true, "an MPTCP listener accepts TCP_FASTOPEN"),
        Err(e) => caps.push("mptfo", false, format!("setsockopt(TCP_FASTOPEN) on an MPTCP listener: {e}")),
    }
}

#[derive(Debug)]
struct SocketFindings {
    info: Result<Vec<u8>, io::Error>,
    tcpinfo: Result<(u32, u32), io::Error>,
    subflow_addrs: Result<(u32, u32), io::Error>,
    full_info: Result<usize, io::Error>,
    diag: Result<usize, String>,
    /// `/proc/net/protocols`' MPTCP `sockets` column with a listener and an established
    /// connection open (3 msk when the kernel accounts them).
    inuse: Result<u64, String>,
    /// `setsockopt(TCP_FASTOPEN)` on an MPTCP listener.
    fastopen: io::Result<()>,
}

fn protocols_inuse() -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/protocols").map_err(|e| format!("read /proc/net/protocols: {e}"))?;
    crate::checks::protocols_sockets(&text, "MPTCP")?.ok_or_else(|| "/proc/net/protocols has no MPTCP row".into())
}

/// MPTFO's server side: an MPTCP listener accepts `TCP_FASTOPEN` (a queue length).
fn fastopen_listener() -> io::Result<()> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let lst = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::MPTCP))?;
    lst.bind(&SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], 0))))?;
    let qlen: libc::c_int = 16;
    // SAFETY: `qlen` outlives the call; the length is its size.
    let r = unsafe {
        libc::setsockopt(lst.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_FASTOPEN, (&raw const qlen).cast(), size_of::<libc::c_int>() as libc::socklen_t)
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Runs inside the scratch namespace: listen, connect, accept over 127.0.0.1, then read the
/// socket options of the client socket and dump the MPTCP sockets over inet_diag.
/// Whether the in-kernel PM keeps to the connection's address family when it acts on an
/// ADD_ADDR (as since 6.3): both ends of an IPv4 loopback connection announce an IPv6 signal
/// endpoint (id 1), then an IPv4 one (id 2); with one accepted ADD_ADDR and one subflow, a PM
/// that keeps to the family skips the IPv6 address and joins the IPv4 one, a PM that does not
/// joins the IPv6 one (from the IPv4 socket) and has no room left for the IPv4 one. The first
/// `sub_established` event decides. (Only the client's joins reach a listener.)
fn probe_family_match(ns: &Netns, pm: &PmClient, recorder: &EventRecorder) -> (bool, String) {
    let v6 = IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
    let v4 = IpAddr::from([127, 0, 0, 2]);
    let reset = || {
        let _ = pm.request(&wpm::PmRequest::FlushAddrs);
        let _ = pm.request(&wpm::PmRequest::SetLimits { rcv_add_addrs: Some(0), subflows: Some(0) });
    };
    reset();
    if let Err(e) = pm.request(&wpm::PmRequest::SetLimits { rcv_add_addrs: Some(1), subflows: Some(1) }) {
        return (false, format!("SET_LIMITS 1 1 is refused: {}", e.source));
    }
    for (id, addr) in [(1, v6), (2, v4)] {
        if let Err(e) = pm.add(Endpoint::new(addr).with_id(id).with_flags(EndpointFlags::SIGNAL)) {
            reset();
            return (false, format!("adding signal endpoint {addr} is refused: {}", e.source));
        }
    }
    let joined = |l: &crate::events::EventLog| l.events.iter().find(|e| e.event.kind == EventKind::SubEstablished).and_then(|e| e.event.daddr);
    let conn = ns.run(|| -> io::Result<_> {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let lst = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::MPTCP))?;
        lst.bind(&SockAddr::from(std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))))?;
        lst.listen(4)?;
        let port = lst.local_addr()?.as_socket().map_or(0, |a| a.port());
        let cli = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::MPTCP))?;
        cli.connect_timeout(&SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], port))), Duration::from_secs(1))?;
        lst.set_read_timeout(Some(Duration::from_secs(1)))?;
        let (srv, _) = lst.accept()?;
        // Data both ways: each side is fully established, and its PM announces.
        cli.send(b"p")?;
        srv.send(b"p")?;
        Ok((lst, cli, srv))
    });
    let deadline = Deadline::after(crate::env::scaled(Duration::from_secs(3), 1));
    let found = match conn {
        Ok(Ok(_sockets)) => {
            recorder.wait_for(deadline, |l| joined(l).is_some());
            match joined(&recorder.snapshot()) {
                Some(a) if a.is_ipv4() => (true, format!("an IPv4 connection offered [::1] then 127.0.0.2 joined {a}: the IPv6 address was skipped")),
                Some(a) => (false, format!("an IPv4 connection offered [::1] then 127.0.0.2 joined {a}: this PM pairs an IPv4 socket with IPv6 addresses")),
                None => (false, "no join within the deadline on a loopback connection offered two signal addresses".to_owned()),
            }
        }
        Ok(Err(e)) => (false, format!("the loopback MPTCP connection failed: {e}")),
        Err(e) => (false, e.to_string()),
    };
    reset();
    found
}

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
    let inuse = protocols_inuse();
    drop((srv, cli, lst));
    let fastopen = fastopen_listener();
    Ok(SocketFindings { info, tcpinfo, subflow_addrs, full_info, diag, inuse, fastopen })
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

/// The processes the harness runs inside hosts: `tc` (host `tc` commands) and nftables with
/// the MPTCP option match, in the scratch namespace.
fn probe_tools(ns: &Netns) -> Vec<(String, bool, String)> {
    let mut v = match crate::nft::run_in(ns, "tc", &["qdisc", "show", "dev", "lo"], None) {
        Ok(o) if o.status.success() => vec![("tc".to_owned(), true, "`tc qdisc show` runs inside a namespace".to_owned())],
        Ok(o) => vec![("tc".to_owned(), false, format!("`tc qdisc show dev lo` fails: {}", String::from_utf8_lossy(&o.stderr).trim()))],
        Err(e) => vec![("tc".to_owned(), false, format!("cannot run `tc` (install iproute2): {e}"))],
    };
    v.extend(probe_nft(ns));
    v.push(probe_ethtool(ns));
    v.push(probe_nft_tproxy(ns));
    v.push(probe_nft_raw_option(ns));
    v
}

/// `sockopt:transparent`: `IP_TRANSPARENT` and `IPV6_TRANSPARENT` on MPTCP sockets (the
/// kernel's MPTCP socket-option code accepts them; listeners of tproxy cases set them).
fn probe_transparent(caps: &mut Capabilities, ns: &Netns) {
    let try_one = |domain: socket2::Domain, level: i32, name: i32, what: &str| -> Result<(), String> {
        let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::MPTCP)).map_err(|e| format!("socket: {e}"))?;
        let one: libc::c_int = 1;
        // SAFETY: `one` outlives the call and its size is passed.
        let r = unsafe { libc::setsockopt(sock.as_raw_fd(), level, name, (&raw const one).cast(), 4) };
        if r < 0 { Err(format!("setsockopt({what}, 1) on an MPTCP socket: {}", io::Error::last_os_error())) } else { Ok(()) }
    };
    let found = ns.run(|| {
        try_one(socket2::Domain::IPV4, libc::SOL_IP, libc::IP_TRANSPARENT, "IP_TRANSPARENT")
            .and_then(|()| try_one(socket2::Domain::IPV6, libc::SOL_IPV6, libc::IPV6_TRANSPARENT, "IPV6_TRANSPARENT"))
    });
    match found {
        Ok(Ok(())) => caps.push("sockopt:transparent", true, "IP_TRANSPARENT and IPV6_TRANSPARENT are accepted on MPTCP sockets"),
        Ok(Err(e)) => caps.push("sockopt:transparent", false, e),
        Err(e) => caps.push("sockopt:transparent", false, e.to_string()),
    }
}

/// `ethtool` (host `offloads`): `ethtool -k lo` runs inside a namespace.
fn probe_ethtool(ns: &Netns) -> (String, bool, String) {
    match crate::nft::run_in(ns, "ethtool", &["-k", "lo"], None) {
        Ok(o) if o.status.success() => ("ethtool".into(), true, "`ethtool -k lo` runs inside a namespace".into()),
        Ok(o) => ("ethtool".into(), false, format!("`ethtool -k lo` fails: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => ("ethtool".into(), false, format!("cannot run `ethtool` (install ethtool): {e}")),
    }
}

/// `nft:tproxy`: upstream's transparent-proxy ruleset (`socket transparent`, `tproxy to`)
/// loads and lists back (nft_tproxy, nft_socket).
fn probe_nft_tproxy(ns: &Netns) -> (String, bool, String) {
    let rules = "table inet mptcpct_tproxy {\n  chain divert {\n    type filter hook prerouting priority -150;\n    meta l4proto tcp socket transparent 1 meta mark set 1 accept\n    tcp dport 20000 tproxy to :20000 meta mark set 1 accept\n  }\n}\n";
    match crate::nft::run_in(ns, "nft", &["-f", "-"], Some(rules)) {
        Err(e) => ("nft:tproxy".into(), false, format!("cannot run `nft` (install nftables): {e}")),
        Ok(o) if o.status.success() => {
            let listed = crate::nft::list(ns).unwrap_or_default();
            if listed.contains("tproxy to") && listed.contains("socket transparent") {
                ("nft:tproxy".into(), true, "a `socket transparent` + `tproxy to :20000` ruleset loads and lists back".into())
            } else {
                ("nft:tproxy".into(), false, format!("the tproxy ruleset loaded but does not list back: {}", listed.trim()))
            }
        }
        Ok(o) => ("nft:tproxy".into(), false, format!("the tproxy ruleset does not load: {}", String::from_utf8_lossy(&o.stderr).trim())),
    }
}

/// `ip_rule`: policy routing (`ip rule add fwmark 1 lookup 100`, IPv4 and IPv6) over
/// rtnetlink, and a `local` route in that table (tproxy's set-up).
fn probe_ip_rule(caps: &mut Capabilities, rt: &mut RawNl) {
    use mptcp_spec::route::HostRoute;
    use mptcp_spec::rule::Rule;
    use mptcp_wire::nl::{NLM_F_CREATE, NLM_F_EXCL};
    let mut why = Vec::new();
    for text in ["-4 fwmark 1 lookup 100", "-6 fwmark 1 lookup 100"] {
        let r = Rule::parse(text).unwrap_or_else(|e| panic!("probe rule {text:?}: {e}"));
        if let Err(e) = rt.request(32, NLM_F_CREATE | NLM_F_EXCL, &crate::rule::encode(&r)) {
            why.push(format!("ip rule add {text}: {e}"));
        }
    }
    for text in ["0.0.0.0/0 dev lo table 100 type local", "::/0 dev lo table 100 type local"] {
        let r = HostRoute::parse(text).unwrap_or_else(|e| panic!("probe route {text:?}: {e}"));
        if let Err(e) = rt.request(24, NLM_F_CREATE | NLM_F_EXCL, &crate::route::encode(&r, Some(tc::LO as u32))) {
            why.push(format!("ip route add {text}: {e}"));
        }
    }
    if why.is_empty() {
        caps.push("ip_rule", true, "fwmark rules and local routes in table 100 (v4, v6) are accepted");
    } else {
        caps.push("ip_rule", false, why.join("; "));
    }
}

/// A raw TCP option match with a named counter, as the ADD_ADDR-echo drop uses it: loads,
/// lists back with the match, and its counter object reads back (0 packets).
fn probe_nft_raw_option(ns: &Netns) -> (String, bool, String) {
    let name = "nft:tcp_option_raw".to_owned();
    let rules = "table inet mptcpct_probe_raw {\n  counter probe_raw { }\n  chain c {\n    type filter hook output priority 0;\n    tcp option @30,16,8 & 0xf1 == 0x31 counter name \"probe_raw\" drop\n  }\n}\n";
    match crate::nft::run_in(ns, "nft", &["-f", "-"], Some(rules)) {
        Err(e) => (name, false, format!("cannot run `nft`: {e}")),
        Ok(out) if !out.status.success() => {
            (name, false, format!("`tcp option @30,16,8 & 0xf1 == 0x31` does not load: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
        Ok(_) => {
            let listed = crate::nft::list(ns).unwrap_or_default();
            // nft 1.0.6 lists the raw match as `tcp option mptcp unknown & 241 == 49`.
            let rule = listed.lines().find(|l| l.contains("counter name \"probe_raw\""));
            match (rule, crate::nft::counter_packets(ns, "probe_raw")) {
                (Some(r), Ok(Some(0))) if r.contains("tcp option") && (r.contains("241") || r.contains("0xf1")) => {
                    (name, true, "a raw TCP option match with a named counter loads, lists back and counts".into())
                }
                (r, c) => (name, false, format!("loaded, but reads back wrong: rule {r:?}, counter {c:?}")),
            }
        }
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

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use mptcp_spec::Case;
    use mptcp_spec::source::Source;

    pub(crate) const TOPO: &str = r#"
summary = "pair"
[hosts.server]
[hosts.client]
[[links]]
a = { host = "server", ifname = "eth1", addrs = ["10.0.1.1/24"] }
b = { host = "client", ifname = "eth1", addrs = ["10.0.1.2/24"] }
"#;

    pub(crate) fn case(text: &str) -> Case {
        let topo = mptcp_spec::Topology::from_source("pair", &Source::new("pair.toml", TOPO)).unwrap();
        Case::from_source("t::c".into(), &Source::new("c.toml", text), &|_| Ok(topo.clone())).unwrap()
    }

    pub(crate) fn caps(present: &[&str], missing: &[&str]) -> Capabilities {
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

    pub(crate) const RICH: &str = r#"
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

}
