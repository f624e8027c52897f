//! Case files (`cases/<area>/<name>.toml`): one conformance test each.
//!
//! The raw schema (`raw` module) mirrors the TOML with `deny_unknown_fields`; [`Case`] is the
//! validated model the runner executes. `cases/README.md` documents every field.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::counters;
use crate::errno;
use crate::source::{KeyPath, Source, SpecError, SpecErrors};
use crate::topology::{SysctlValue, Topology, check_sysctl_name, list};
use crate::units::{IntOrString, parse_duration, parse_size};

mod raw {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Case {
        pub summary: String,
        pub topology: String,
        #[serde(default)]
        pub tags: Vec<String>,
        pub timeout: Option<IntOrString>,
        #[serde(default)]
        pub requires: Vec<String>,
        #[serde(default)]
        pub serial: bool,
        pub xfail: Option<XFail>,
        pub flaky: Option<XFail>,
        #[serde(default)]
        pub hosts: BTreeMap<String, Host>,
        #[serde(default)]
        pub connections: Vec<Connection>,
        #[serde(default)]
        pub expect: BTreeMap<String, Expect>,
        #[serde(default)]
        pub steps: Vec<crate::steps::raw::Step>,
        #[serde(default)]
        pub expect_sum: Vec<ExpectSum>,
        #[serde(default)]
        pub expect_diff: Vec<crate::observe::raw::ExpectDiff>,
        #[serde(default)]
        pub rerun_if: Vec<RerunIf>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RerunIf {
        pub host: String,
        pub counter: String,
        #[serde(default)]
        pub above: i64,
        pub reason: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectSum {
        pub counter: String,
        pub hosts: Vec<String>,
        pub eq: Option<i64>,
        pub ge: Option<i64>,
        pub le: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct XFail {
        pub reason: String,
        pub link: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Host {
        #[serde(default)]
        pub sysctls: BTreeMap<String, SysctlValue>,
        pub pm_type: Option<String>,
        pub limits: Option<Limits>,
        #[serde(default)]
        pub endpoints: Vec<Endpoint>,
        pub nft: Option<String>,
        #[serde(default)]
        pub tc: Vec<String>,
        pub record_events: Option<bool>,
        #[serde(default)]
        pub listen: Vec<String>,
        #[serde(default)]
        pub routes: Vec<String>,
        #[serde(default)]
        pub rules: Vec<String>,
        #[serde(default)]
        pub offloads: Vec<Offload>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Offload {
        pub dev: String,
        pub tso: Option<bool>,
        pub gso: Option<bool>,
        pub gro: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct MaxDuration {
        pub rate: String,
        pub slack: IntOrString,
        pub single_path: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Limits {
        pub add_addr_accepted: Option<u32>,
        pub subflows: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Endpoint {
        pub addr: String,
        pub id: Option<u8>,
        #[serde(default)]
        pub flags: Vec<String>,
        pub port: Option<u16>,
        pub dev: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Connection {
        pub name: Option<String>,
        pub client: String,
        pub server: String,
        pub connect: String,
        pub port: Option<u16>,
        pub listen: Option<String>,
        pub client_proto: Option<String>,
        pub server_proto: Option<String>,
        pub upload: Option<IntOrString>,
        pub download: Option<IntOrString>,
        pub error: Option<ExpectedError>,
        pub transfer: Option<String>,
        pub close: Option<Close>,
        pub pace: Option<Pace>,
        pub io: Option<String>,
        pub peek: Option<String>,
        pub sndbuf: Option<IntOrString>,
        pub rcvbuf: Option<IntOrString>,
        pub fastopen: Option<bool>,
        pub transparent: Option<bool>,
        pub reconnect: Option<u32>,
        pub repeat: Option<u32>,
        pub mark: Option<u32>,
        pub max_duration: Option<MaxDuration>,
        pub pause: Option<Pause>,
        pub integrity: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Pause {
        pub by: String,
        pub after: Vec<IntOrString>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Close {
        pub by: String,
        pub after: Option<IntOrString>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Pace {
        pub chunk: IntOrString,
        pub interval: IntOrString,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectedError {
        pub at: String,
        pub errno: String,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Expect {
        #[serde(default)]
        pub counters: BTreeMap<String, RawCounter>,
        pub strict: Option<bool>,
        pub events: Option<Vec<toml::Value>>,
        pub events_order: Option<String>,
        #[serde(default)]
        pub event_counts: BTreeMap<String, RawCounter>,
        #[serde(default)]
        pub event_attr_counts: BTreeMap<String, BTreeMap<String, RawCounter>>,
        #[serde(default)]
        pub links: BTreeMap<String, BTreeMap<String, crate::observe::raw::RawAmount>>,
        #[serde(default)]
        pub nft_counters: BTreeMap<String, RawCounter>,
    }
}

/// A counter expectation as written: `3`, `"any"`, or `{ eq = 3 }` / `{ ge = 1, le = 4 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawCounter {
    /// A bare integer.
    Int(i64),
    /// A word (`"any"`).
    Word(String),
    /// A table with `eq`, `ge`, `le`, and `optional` (checked only where the kernel exposes
    /// the counter).
    Table { eq: Option<i64>, ge: Option<i64>, le: Option<i64>, unknown: Vec<String>, optional: bool },
}

impl<'de> Deserialize<'de> for RawCounter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawCounter;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer, \"any\", or a table like { ge = 1, le = 3 }")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawCounter, E> {
                Ok(RawCounter::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawCounter, E> {
                i64::try_from(v).map(RawCounter::Int).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawCounter, E> {
                Ok(RawCounter::Word(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<RawCounter, A::Error> {
                let (mut eq, mut ge, mut le, mut unknown, mut optional) = (None, None, None, Vec::new(), false);
                while let Some(k) = m.next_key::<String>()? {
                    if k == "optional" {
                        optional = m.next_value()?;
                        continue;
                    }
                    let v: i64 = m.next_value()?;
                    match k.as_str() {
                        "eq" => eq = Some(v),
                        "ge" => ge = Some(v),
                        "le" => le = Some(v),
                        _ => unknown.push(k),
                    }
                }
                Ok(RawCounter::Table { eq, ge, le, unknown, optional })
            }
        }
        d.deserialize_any(V)
    }
}

/// What a counter's delta must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterExpect {
    /// Exactly this value.
    Eq(i64),
    /// Within `[min, max]` (either bound optional).
    Range { min: Option<i64>, max: Option<i64> },
    /// Any value: names the counter (exempting it from the strict rule) without a bound.
    Any,
}

impl CounterExpect {
    /// The largest value that satisfies the expectation, if bounded: a counter that only grows
    /// and is already above it can never satisfy it.
    pub fn upper_bound(&self) -> Option<i64> {
        match *self {
            CounterExpect::Eq(e) => Some(e),
            CounterExpect::Range { max, .. } => max,
            CounterExpect::Any => None,
        }
    }

    /// Whether an observed delta satisfies the expectation.
    pub fn matches(&self, v: i64) -> bool {
        match *self {
            CounterExpect::Eq(e) => v == e,
            CounterExpect::Range { min, max } => min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m),
            CounterExpect::Any => true,
        }
    }
}

impl std::fmt::Display for CounterExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            CounterExpect::Eq(e) => write!(f, "{e}"),
            CounterExpect::Range { min: Some(a), max: Some(b) } => write!(f, "{a}..={b}"),
            CounterExpect::Range { min: Some(a), max: None } => write!(f, ">= {a}"),
            CounterExpect::Range { min: None, max: Some(b) } => write!(f, "<= {b}"),
            CounterExpect::Range { min: None, max: None } | CounterExpect::Any => f.write_str("any"),
        }
    }
}

/// Which path manager a host runs (`net.mptcp.pm_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmType {
    /// The in-kernel PM (0).
    Kernel,
    /// The userspace PM (1).
    Userspace,
}

/// PM limits (`ip mptcp limits set add_addr_accepted N subflows M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `add_addr_accepted` (the kernel's `rcv_add_addrs`).
    pub add_addr_accepted: Option<u32>,
    /// `subflows`.
    pub subflows: Option<u32>,
}

/// Endpoint flag words as `ip mptcp endpoint` writes them.
pub const ENDPOINT_FLAGS: &[&str] = &["signal", "subflow", "backup", "fullmesh", "implicit", "laminar"];

/// An endpoint to add (`ip mptcp endpoint add <addr> [id N] [port P] [dev D] <flags>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub addr: IpAddr,
    /// Explicit id.
    pub id: Option<u8>,
    /// Flag words, validated against [`ENDPOINT_FLAGS`].
    pub flags: Vec<String>,
    /// Port (signal endpoints: a PM listener).
    pub port: Option<u16>,
    /// Interface name in the host.
    pub dev: Option<String>,
    /// `addr = "$ll.<ifname>"`: the interface's link-local address, substituted by the runner
    /// (`addr` holds a placeholder until then).
    pub addr_ll: Option<crate::linklocal::LinkLocal>,
}

/// A listener opened at host setup (`hosts.<h>.listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupListener {
    /// Address and port (a placeholder address while `ll` is unresolved).
    pub addr: std::net::SocketAddr,
    /// Protocol.
    pub proto: Proto,
    /// A link-local address variable (`"[$ll.ns1eth2%ns1eth2]:10000"`).
    pub ll: Option<crate::linklocal::LinkLocal>,
}

/// Per-host setup, applied after the topology is built and before traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSetup {
    /// Sysctls (after the topology's).
    pub sysctls: Vec<(String, String)>,
    /// Path manager type.
    pub pm_type: Option<PmType>,
    /// PM limits.
    pub limits: Option<Limits>,
    /// Endpoints, added in order.
    pub endpoints: Vec<Endpoint>,
    /// An nftables ruleset loaded before traffic (`nft -f -`).
    pub nft: Option<String>,
    /// `tc` commands run before traffic (e.g. `qdisc add dev ns1eth1 root netem delay 1ms`),
    /// each verified by reading the qdiscs back.
    pub tc: Vec<String>,
    /// Whether the harness subscribes to the host's `mptcp_pm_events` (default true). The
    /// kernel treats any subscriber as a userspace path-manager daemon, so cases about a
    /// userspace PM *without* a daemon turn it off. The kernel's check
    /// (`genl_has_listeners`) looks at the netlink protocol's listener bitmap, which is
    /// machine-wide, not per namespace: see [`Case::without_pm_listeners`].
    pub record_events: bool,
    /// Listeners opened at host setup, before any connection and endpoint, open until the
    /// case ends (another application bound to an address, so MP_JOINs to it find a socket).
    pub listen: Vec<SetupListener>,
    /// Routes added at host setup (`ip route add ...`).
    pub routes: Vec<crate::route::HostRoute>,
    /// Routes added before traffic (`ip route add ...`, e.g. tproxy's `local` route).
    /// Policy-routing rules added before traffic (`ip rule add ...`).
    pub rules: Vec<crate::rule::Rule>,
    /// Offload settings (`ethtool -K <dev> tso off gso off gro off`), each read back.
    pub offloads: Vec<Offload>,
}

/// Offload features of one interface (`ethtool -K DEV tso off ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offload {
    /// Interface in the host.
    pub dev: String,
    /// `(feature, on)` by ethtool's short name: `tso`, `gso`, `gro`.
    pub features: Vec<(&'static str, bool)>,
}

/// Socket protocol of one side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// IPPROTO_MPTCP.
    Mptcp,
    /// Plain TCP.
    Tcp,
}

/// Where a connection is expected to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `socket()` on the client.
    Socket,
    /// `socket()`/`bind()`/`listen()` on the server.
    Listen,
    /// `connect()` on the client.
    Connect,
}

/// The expected failure of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedError {
    /// Which call fails.
    pub at: Stage,
    /// With which errno.
    pub errno: i32,
}

/// One MPTCP (or TCP) connection with a bidirectional, integrity-checked transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Name for reports (`conn0` ...).
    pub name: String,
    /// Host that connects.
    pub client: String,
    /// Host that listens.
    pub server: String,
    /// Address the client connects to.
    pub connect: IpAddr,
    /// Port.
    pub port: u16,
    /// Address the listener binds.
    pub listen: IpAddr,
    /// Client socket protocol.
    pub client_proto: Proto,
    /// Server socket protocol.
    pub server_proto: Proto,
    /// Bytes client -> server.
    pub upload: u64,
    /// Bytes server -> client.
    pub download: u64,
    /// Expected failure instead of a transfer.
    pub error: Option<ExpectedError>,
    /// The bulk transfer runs while the steps run (true) or after them (false, default).
    pub with_steps: bool,
    /// An abortive close (SO_LINGER 0: MP_FASTCLOSE) by one side instead of a clean one.
    pub fastclose: Option<FastClose>,
    /// Paced sending: `chunk` bytes every `interval`, on both sides.
    pub pace: Option<(u64, Duration)>,
    /// How both sides send (and, for splice, receive) the stream.
    pub io: IoMode,
    /// Receive with MSG_PEEK first (both sides), checking the peeked bytes against the read ones.
    pub peek: Option<PeekMode>,
    /// `SO_SNDBUF` on the client socket and the listener, before connect()/listen().
    pub sndbuf: Option<u32>,
    /// `SO_RCVBUF` on the client socket and the listener, before connect()/listen().
    pub rcvbuf: Option<u32>,
    /// TCP Fast Open: `TCP_FASTOPEN` on the listener, `sendto(MSG_FASTOPEN)` on the client
    /// (`mptcp_connect -o MPTFO`).
    pub fastopen: bool,
    /// `IP_TRANSPARENT` / `IPV6_TRANSPARENT` on the listener (`mptcp_connect -o TRANSPARENT`):
    /// the connect address may belong to another host, a tproxy rule diverts it.
    pub transparent: bool,
    /// Disconnect (`connect(AF_UNSPEC)`) and reconnect the same client socket this many times
    /// after the first transfer, transferring each time (`mptcp_connect -I <reconnect + 1>`).
    pub reconnect: u32,
    /// Run the whole connection this many times in sequence, each with a new client socket,
    /// against the same listener (a TFO cookie obtained by one run is used by the next).
    pub repeat: u32,
    /// `SO_MARK` on the client socket and the listener.
    pub mark: Option<u32>,
    /// `connect = "$ll.<ifname>%<scope>"`: a link-local address resolved by the runner
    /// (`connect` holds a placeholder until then).
    pub connect_ll: Option<crate::linklocal::LinkLocal>,
    /// `listen = "$ll.<ifname>%<scope>"`, likewise.
    pub listen_ll: Option<crate::linklocal::LinkLocal>,
    /// The longest the bulk transfer may take (`mptcp_connect -T`), computed from the
    /// shaped link rates.
    pub max_duration: Option<crate::throughput::MaxDuration>,
    /// One side stops sending at each `after` offset until a `resume` step (or the end of the
    /// steps) lets it go on; reads go on meanwhile. Needs `transfer = "with_steps"`.
    pub pause: Option<Pause>,
    /// Received bytes that are the bitwise inverse of the sent ones are tolerated (and
    /// counted): the DSS-checksum corruption cases invert one payload byte on the wire.
    pub allow_inverted: bool,
}

/// Pauses in one side's sending (see [`Connection::pause`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// The sides that pause (`by = "client"`, `"server"` or `"both"`), each at the offsets of
    /// its own stream.
    pub by: Vec<Side>,
    /// Stream offsets (increasing) where it stops until a `resume` step (or the end of the
    /// steps) lets it go on.
    pub after: Vec<u64>,
}

impl Connection {
    /// How many connections the client establishes in total (each one an MP_CAPABLE handshake
    /// between MPTCP sockets).
    pub fn connects(&self) -> u32 {
        self.repeat * (self.reconnect + 1)
    }
}

/// How a sender hands its bytes to the socket (`mptcp_connect -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// poll(2) + write(2) from a buffer, interleaved with reads (`-m poll`, the default).
    #[default]
    Poll,
    /// sendfile(2) from a memfd holding the whole stream (`-m sendfile`).
    Sendfile,
    /// splice(2) from a memfd through a pipe into the socket; the receiver splices from the
    /// socket into a pipe and reads that (`-m splice`).
    Splice,
    /// write(2) from a read-only shared mapping of a memfd holding the stream (`-m mmap`).
    Mmap,
}

impl IoMode {
    /// The name a case file uses.
    pub fn name(self) -> &'static str {
        match self {
            IoMode::Poll => "poll",
            IoMode::Sendfile => "sendfile",
            IoMode::Splice => "splice",
            IoMode::Mmap => "mmap",
        }
    }
}

/// Receiving with `MSG_PEEK` first (`mptcp_connect -P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeekMode {
    /// `recv(MSG_PEEK)` then `read()` of exactly the peeked length (`saveWithPeek`).
    WithPeek,
    /// `recv(MSG_PEEK)` then `read()` of the full buffer, which may return more (`saveAfterPeek`).
    AfterPeek,
}

/// Which end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The connecting end.
    Client,
    /// The accepted end.
    Server,
}

/// An abortive close of one side after it has received `after` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastClose {
    /// The side that closes.
    pub by: Side,
    /// Bytes that side receives before closing (it sends all it has until then).
    pub after: u64,
}

/// Expectations on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostExpect {
    /// Counter deltas by nstat name.
    pub counters: BTreeMap<String, CounterExpect>,
    /// Whether the strict-counter rule applies (default true).
    pub strict: bool,
    /// Expectations on the host's path-manager events.
    pub events: crate::events::EventExpect,
}

/// A known-broken case: reported as xfail, never deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XFail {
    /// What is broken.
    pub reason: String,
    /// A link to the report or fix.
    pub link: Option<String>,
}

/// A validated case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Trial name from the path: `connect::v4_basic`.
    pub id: String,
    /// One line on what it checks (and the upstream subtest name).
    pub summary: String,
    /// Its topology.
    pub topology: Topology,
    /// Tags for filtering.
    pub tags: Vec<String>,
    /// Deadline for the whole case before slowness scaling.
    pub timeout: Duration,
    /// Capabilities the case needs (besides those inferred).
    pub requires: Vec<String>,
    /// Must not run beside other cases.
    pub serial: bool,
    /// Known-broken.
    pub xfail: Option<XFail>,
    /// Known to fail intermittently (upstream marks the subtest flaky): a failure is reported
    /// as an xfail with the reason, a pass as a pass; never deleted, never a red run.
    pub flaky: Option<XFail>,
    /// Setup per host.
    pub hosts: BTreeMap<String, HostSetup>,
    /// Connections.
    pub connections: Vec<Connection>,
    /// Expectations per host; every topology host is present (default: strict, no counters).
    pub expect: BTreeMap<String, HostExpect>,
    /// Steps (path-manager commands with expected answers), run after the connections are
    /// established, or alone in an API case.
    pub steps: Vec<crate::steps::Step>,
    /// Expectations on the sum of one counter over several hosts (e.g. subflows removed by
    /// either side of a simultaneous flush).
    pub expect_sums: Vec<ExpectSum>,
    /// Growth of interface statistics over the case (`[expect.<host>.links.<dev>]`).
    pub expect_links: Vec<crate::observe::LinkExpect>,
    /// Packet counts of nftables named counters after the case (`[expect.<host>.nft_counters]`).
    pub expect_nft: Vec<crate::observe::NftCounterExpect>,
    /// A counter minus another, on one host (`[[expect_diff]]`).
    pub expect_diffs: Vec<crate::observe::ExpectDiff>,
    /// (host, counter) pairs written with `optional = true`: judged only where the running
    /// kernel exposes the counter (upstream skips that one check on older kernels); the case
    /// does not need the counter to run.
    pub optional_counters: Vec<(String, String)>,
    /// Conditions under which a failed attempt says nothing about the kernel under test
    /// (`[[rerun_if]]`): the case runs again on a fresh topology.
    pub rerun_if: Vec<RerunIf>,
}

/// `[[rerun_if]]`: when an attempt fails and this counter grew by more than `above` on
/// `host`, the failure comes from something the case does not control (e.g. a SYN
/// retransmitted after a stall, where the kernel's state is documented as best effort), so
/// the attempt is set aside and the case runs again. An attempt that fails without the
/// condition is a failure; so is the last attempt, condition or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerunIf {
    /// Host whose counter is read.
    pub host: String,
    /// Counter name (its delta over the attempt).
    pub counter: String,
    /// The condition holds when the delta is greater than this.
    pub above: i64,
    /// Why such an attempt is inconclusive (printed with the rerun).
    pub reason: String,
}

/// A counter summed over hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectSum {
    /// Counter name.
    pub counter: String,
    /// Hosts whose deltas are added.
    pub hosts: Vec<String>,
    /// What the sum must be.
    pub want: CounterExpect,
}

impl Case {
    /// The interfaces whose link-local address the case uses (`$ll.<ifname>`).
    pub fn link_local_interfaces(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for h in self.hosts.values() {
            out.extend(h.endpoints.iter().filter_map(|e| e.addr_ll.as_ref()).map(|l| l.of.clone()));
            out.extend(h.listen.iter().filter_map(|l| l.ll.as_ref()).map(|l| l.of.clone()));
        }
        for c in &self.connections {
            out.extend(c.connect_ll.iter().chain(&c.listen_ll).map(|l| l.of.clone()));
        }
        out
    }

    /// Whether the case runs with nothing subscribed to `mptcp_pm_events` (some host has
    /// `record_events = false`: a userspace PM without a daemon). The kernel asks
    /// `genl_has_listeners()`, whose answer comes from the netlink protocol's listener bitmap,
    /// shared by every namespace of the machine: so no host of the case records events and
    /// the runner runs the case alone (no other case's recorder may be open meanwhile).
    pub fn without_pm_listeners(&self) -> bool {
        self.hosts.values().any(|h| !h.record_events)
    }
}

/// The trial name of a case file: its path below `cases/` with `::` separators.
pub fn case_id(cases_dir: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(cases_dir).unwrap_or(file);
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.last_mut()
        && let Some(stem) = last.strip_suffix(".toml")
    {
        *last = stem.to_owned();
    }
    parts.join("::")
}

impl Case {
    /// The same case without some counter expectations (`(host, counter)`): what runs on a
    /// kernel that does not expose those counters.
    pub fn without_counters(&self, drop: &[(String, String)]) -> Case {
        let mut c = self.clone();
        for (host, counter) in drop {
            if let Some(e) = c.expect.get_mut(host) {
                e.counters.remove(counter);
            }
        }
        c
    }

    /// Loads and validates a case file, resolving its topology in `topo_dir`.
    pub fn load(cases_dir: &Path, file: &Path, topo_dir: &Path) -> Result<Case, SpecErrors> {
        let src = Source::read(file)?;
        let id = case_id(cases_dir, file);
        Case::from_source(id, &src, &|name| Topology::load(topo_dir, name))
    }

    /// Validates a case from its source; `topo` resolves a topology name.
    pub fn from_source(
        id: String,
        src: &Source,
        topo: &dyn Fn(&str) -> Result<Topology, SpecErrors>,
    ) -> Result<Case, SpecErrors> {
        let raw: raw::Case = src.deserialize()?;
        let root = KeyPath::root();
        let topology = match topo(&raw.topology) {
            Ok(t) => t,
            Err(e) => {
                let msg = match e.0.first() {
                    Some(first) if first.message.starts_with("cannot read") => {
                        format!("unknown topology {:?} ({})", raw.topology, first.message)
                    }
                    _ => format!("topology {:?} is invalid:\n{e}", raw.topology),
                };
                return Err(SpecErrors(vec![src.error(root.key("topology"), msg)]));
            }
        };
        let mut errs = Vec::new();
        let case = validate(id, raw, topology, src, &mut errs);
        if errs.is_empty() { Ok(case) } else { Err(SpecErrors(errs)) }
    }
}

fn validate(id: String, raw: raw::Case, topology: Topology, src: &Source, errs: &mut Vec<SpecError>) -> Case {
    let root = KeyPath::root();
    let host_check = |name: &str, at: KeyPath, errs: &mut Vec<SpecError>| {
        if !topology.hosts.contains_key(name) {
            errs.push(src.error(at, format!(
                "unknown host {name:?}; topology {:?} has: {}", topology.name, list(topology.hosts.keys())
            )));
        }
    };

    let timeout = match &raw.timeout {
        None => Duration::from_secs(30),
        Some(t) => parse_duration(&t.0).unwrap_or_else(|e| {
            errs.push(src.error(root.key("timeout"), e));
            Duration::from_secs(30)
        }),
    };
    if raw.summary.trim().is_empty() {
        errs.push(src.error(root.key("summary"), "a case needs a one-line summary"));
    }

    let mut hosts = BTreeMap::new();
    for (name, h) in &raw.hosts {
        let hp = root.key("hosts").key(name);
        host_check(name, hp.clone(), errs);
        let mut setup = HostSetup {
            sysctls: Vec::new(),
            pm_type: None,
            limits: None,
            endpoints: Vec::new(),
            nft: None,
            tc: Vec::new(),
            record_events: true,
            listen: Vec::new(),
            routes: Vec::new(),
            rules: Vec::new(),
            offloads: Vec::new(),
        };
        for (k, v) in &h.sysctls {
            check_sysctl_name(k, &hp.key("sysctls").key(k), src, errs);
            setup.sysctls.push((k.clone(), v.0.clone()));
        }
        setup.pm_type = match h.pm_type.as_deref() {
            None => None,
            Some("kernel") | Some("in-kernel") => Some(PmType::Kernel),
            Some("userspace") => Some(PmType::Userspace),
            Some(other) => {
                errs.push(src.error(hp.key("pm_type"), format!("expected \"kernel\" or \"userspace\", found {other:?}")));
                None
            }
        };
        setup.limits = h.limits.as_ref().map(|l| Limits { add_addr_accepted: l.add_addr_accepted, subflows: l.subflows });
        for (i, e) in h.endpoints.iter().enumerate() {
            let ep = hp.key("endpoints").index(i);
            let mut addr_ll = None;
            let addr = match (crate::linklocal::LinkLocal::parse(&e.addr), e.addr.parse::<IpAddr>()) {
                (Some(Ok(ll)), _) => {
                    if ll.scope.is_some() {
                        errs.push(src.error(ep.key("addr"), "an endpoint address takes no %scope (use `dev`)"));
                    } else if let Err(m) = ll.check(&topology, name) {
                        errs.push(src.error(ep.key("addr"), m));
                    }
                    addr_ll = Some(ll);
                    crate::linklocal::PLACEHOLDER
                }
                (Some(Err(m)), _) => {
                    errs.push(src.error(ep.key("addr"), m));
                    continue;
                }
                (None, Ok(a)) => a,
                (None, Err(_)) => {
                    errs.push(src.error(ep.key("addr"), format!("{:?} is not an IPv4 or IPv6 address or a $ll.<ifname> variable", e.addr)));
                    continue;
                }
            };
            for (j, f) in e.flags.iter().enumerate() {
                if !ENDPOINT_FLAGS.contains(&f.as_str()) {
                    errs.push(src.error(ep.key("flags").index(j), format!(
                        "unknown endpoint flag {f:?}; expected one of {}", ENDPOINT_FLAGS.join(", ")
                    )));
                }
            }
            if let Some(dev) = &e.dev
                && !topology.interfaces(name).any(|i| &i.ifname == dev)
                && dev != "lo"
            {
                errs.push(src.error(ep.key("dev"), format!("host {name:?} has no interface {dev:?}")));
            }
            setup.endpoints.push(Endpoint { addr, id: e.id, flags: e.flags.clone(), port: e.port, dev: e.dev.clone(), addr_ll });
        }
        setup.nft = h.nft.clone();
        setup.record_events = h.record_events.unwrap_or(true);
        for (i, l) in h.listen.iter().enumerate() {
            let at = hp.key("listen").index(i);
            let bad = || format!("{l:?} is not an address:port (\"10.0.2.1:10000\", \"[dead:beef:2::1]:10000\", \"[$ll.ns1eth2%ns1eth2]:10000\")");
            let Some((a, port)) = crate::linklocal::split_host_port(l) else {
                errs.push(src.error(at, bad()));
                continue;
            };
            match (crate::linklocal::LinkLocal::parse(a), a.parse::<IpAddr>()) {
                (Some(Ok(ll)), _) => {
                    if let Err(m) = ll.check(&topology, name) {
                        errs.push(src.error(at, m));
                    }
                    setup.listen.push(SetupListener { addr: std::net::SocketAddr::new(crate::linklocal::PLACEHOLDER, port), proto: Proto::Mptcp, ll: Some(ll) });
                }
                (Some(Err(m)), _) => errs.push(src.error(at, m)),
                (None, Ok(ip)) => setup.listen.push(SetupListener { addr: std::net::SocketAddr::new(ip, port), proto: Proto::Mptcp, ll: None }),
                (None, Err(_)) => errs.push(src.error(at, bad())),
            }
        }
        for (i, cmd) in h.tc.iter().enumerate() {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            if !matches!(words.first(), Some(&"qdisc") | Some(&"filter") | Some(&"action")) {
                errs.push(src.error(hp.key("tc").index(i), format!("expected a tc command starting with qdisc, filter or action, found {cmd:?}")));
            }
            if let Some(d) = words.iter().position(|w| *w == "dev").and_then(|p| words.get(p + 1))
                && !topology.interfaces(name).any(|i| i.ifname == *d)
                && *d != "lo"
            {
                errs.push(src.error(hp.key("tc").index(i), format!("host {name:?} has no interface {d:?}")));
            }
            setup.tc.push(cmd.clone());
        }
        let has_dev = |d: &str| d == "lo" || topology.interfaces(name).any(|i| i.ifname == d);
        for (i, text) in h.routes.iter().enumerate() {
            match crate::route::HostRoute::parse(text) {
                Ok(r) if r.dev.as_deref().is_some_and(|d| !has_dev(d)) => {
                    errs.push(src.error(hp.key("routes").index(i), format!("host {name:?} has no interface {:?}", r.dev.unwrap_or_default())));
                }
                Ok(r) => setup.routes.push(r),
                Err(e) => errs.push(src.error(hp.key("routes").index(i), e)),
            }
        }
        for (i, text) in h.rules.iter().enumerate() {
            match crate::rule::Rule::parse(text) {
                Ok(r) if r.iif.as_deref().is_some_and(|d| !has_dev(d)) => {
                    errs.push(src.error(hp.key("rules").index(i), format!("host {name:?} has no interface {:?}", r.iif.unwrap_or_default())));
                }
                Ok(r) => setup.rules.push(r),
                Err(e) => errs.push(src.error(hp.key("rules").index(i), e)),
            }
        }
        for (i, o) in h.offloads.iter().enumerate() {
            let op = hp.key("offloads").index(i);
            if !has_dev(&o.dev) {
                errs.push(src.error(op.key("dev"), format!("host {name:?} has no interface {:?}", o.dev)));
            }
            let features: Vec<(&'static str, bool)> =
                [("tso", o.tso), ("gso", o.gso), ("gro", o.gro)].into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
            if features.is_empty() {
                errs.push(src.error(op.clone(), "name at least one feature: tso, gso, gro (true = on, false = off)"));
            }
            setup.offloads.push(Offload { dev: o.dev.clone(), features });
        }
        hosts.insert(name.clone(), setup);
    }

    let mut connections = Vec::new();
    for (i, c) in raw.connections.iter().enumerate() {
        let cp = root.key("connections").index(i);
        host_check(&c.client, cp.key("client"), errs);
        host_check(&c.server, cp.key("server"), errs);
        let mut connect_ll = None;
        let connect = match (crate::linklocal::LinkLocal::parse(&c.connect), c.connect.parse::<IpAddr>()) {
            (Some(Ok(ll)), _) => {
                if let Err(m) = ll.check(&topology, &c.client) {
                    errs.push(src.error(cp.key("connect"), m));
                }
                connect_ll = Some(ll);
                crate::linklocal::PLACEHOLDER
            }
            (Some(Err(m)), _) => {
                errs.push(src.error(cp.key("connect"), m));
                continue;
            }
            (None, Ok(a)) => a,
            (None, Err(_)) => {
                errs.push(src.error(cp.key("connect"), format!("{:?} is not an IPv4 or IPv6 address", c.connect)));
                continue;
            }
        };
        let plain = match connect {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(connect),
            v4 => v4,
        };
        // With `transparent`, the client connects to an address the server does not own and
        // a tproxy rule on the server's path diverts the connection to the listener.
        let transparent = c.transparent.unwrap_or(false);
        if !transparent && !plain.is_loopback() && topology.owner_of(plain).is_some_and(|o| o != c.server) {
            errs.push(src.error(cp.key("connect"), format!(
                "{connect} belongs to host {:?}, not to the server {:?}", topology.owner_of(plain).unwrap_or_default(), c.server
            )));
        }
        let mut listen_ll = None;
        let listen = match c.listen.as_deref() {
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            Some(l) if l.starts_with(crate::linklocal::PREFIX) => match crate::linklocal::LinkLocal::parse(l) {
                Some(Ok(ll)) => {
                    if let Err(m) = ll.check(&topology, &c.server) {
                        errs.push(src.error(cp.key("listen"), m));
                    }
                    listen_ll = Some(ll);
                    crate::linklocal::PLACEHOLDER
                }
                _ => {
                    errs.push(src.error(cp.key("listen"), format!("{l:?}: expected `$ll.<ifname>` or `$ll.<ifname>%<scope ifname>`")));
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                }
            },
            Some(l) => l.parse().unwrap_or_else(|_| {
                errs.push(src.error(cp.key("listen"), format!("{l:?} is not an IPv4 or IPv6 address")));
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            }),
        };
        let mut proto = |v: &Option<String>, key: &str| match v.as_deref() {
            None | Some("mptcp") => Proto::Mptcp,
            Some("tcp") => Proto::Tcp,
            Some(o) => {
                errs.push(src.error(cp.key(key), format!("expected \"mptcp\" or \"tcp\", found {o:?}")));
                Proto::Mptcp
            }
        };
        let client_proto = proto(&c.client_proto, "client_proto");
        let server_proto = proto(&c.server_proto, "server_proto");
        let mut size = |v: &Option<IntOrString>, key: &str| match v {
            None => 1024,
            Some(s) => parse_size(&s.0).unwrap_or_else(|e| {
                errs.push(src.error(cp.key(key), e));
                0
            }),
        };
        let upload = size(&c.upload, "upload");
        let download = size(&c.download, "download");
        let error = c.error.as_ref().and_then(|e| {
            let at = match e.at.as_str() {
                "socket" => Some(Stage::Socket),
                "listen" => Some(Stage::Listen),
                "connect" => Some(Stage::Connect),
                o => {
                    errs.push(src.error(cp.key("error").key("at"), format!("expected \"socket\", \"listen\" or \"connect\", found {o:?}")));
                    None
                }
            };
            let n = errno::by_name(&e.errno);
            if n.is_none() {
                errs.push(src.error(cp.key("error").key("errno"), format!("unknown errno name {:?} (e.g. \"ECONNREFUSED\")", e.errno)));
            }
            Some(ExpectedError { at: at?, errno: n? })
        });
        let with_steps = match c.transfer.as_deref() {
            None | Some("after_steps") => false,
            Some("with_steps") => true,
            Some(o) => {
                errs.push(src.error(cp.key("transfer"), format!("expected \"after_steps\" or \"with_steps\", found {o:?}")));
                false
            }
        };
        let fastclose = c.close.as_ref().and_then(|cl| {
            let by = match cl.by.as_str() {
                "client" => Side::Client,
                "server" => Side::Server,
                o => {
                    errs.push(src.error(cp.key("close").key("by"), format!("expected \"client\" or \"server\", found {o:?}")));
                    return None;
                }
            };
            let after = cl.after.as_ref().map_or(Ok(0), |a| parse_size(&a.0)).unwrap_or_else(|e| {
                errs.push(src.error(cp.key("close").key("after"), e));
                0
            });
            Some(FastClose { by, after })
        });
        let pace = c.pace.as_ref().and_then(|p| {
            let chunk = parse_size(&p.chunk.0).map_err(|e| errs.push(src.error(cp.key("pace").key("chunk"), e))).ok()?;
            let interval = parse_duration(&p.interval.0).map_err(|e| errs.push(src.error(cp.key("pace").key("interval"), e))).ok()?;
            if chunk == 0 {
                errs.push(src.error(cp.key("pace").key("chunk"), "a paced chunk must be at least 1 byte"));
                return None;
            }
            Some((chunk, interval))
        });
        let io = match c.io.as_deref() {
            None | Some("poll") => IoMode::Poll,
            Some("sendfile") => IoMode::Sendfile,
            Some("splice") => IoMode::Splice,
            Some("mmap") => IoMode::Mmap,
            Some(o) => {
                errs.push(src.error(cp.key("io"), format!("expected \"poll\", \"sendfile\", \"splice\" or \"mmap\", found {o:?}")));
                IoMode::Poll
            }
        };
        let peek = match c.peek.as_deref() {
            None => None,
            Some("with_peek") => Some(PeekMode::WithPeek),
            Some("after_peek") => Some(PeekMode::AfterPeek),
            Some(o) => {
                errs.push(src.error(cp.key("peek"), format!("expected \"with_peek\" or \"after_peek\", found {o:?}")));
                None
            }
        };
        if peek.is_some() && io == IoMode::Splice {
            errs.push(src.error(cp.key("peek"), "peek modes receive with recv(2); io = \"splice\" receives with splice(2): use one or the other"));
        }
        let mut buf_size = |v: &Option<IntOrString>, key: &str| {
            let v = v.as_ref()?;
            match parse_size(&v.0) {
                Ok(n) if (1..=i32::MAX as u64).contains(&n) => u32::try_from(n).ok(),
                Ok(n) => {
                    errs.push(src.error(cp.key(key), format!("{key} must be between 1 byte and 2 GiB - 1 (an int for setsockopt), found {n}")));
                    None
                }
                Err(e) => {
                    errs.push(src.error(cp.key(key), e));
                    None
                }
            }
        };
        let sndbuf = buf_size(&c.sndbuf, "sndbuf");
        let rcvbuf = buf_size(&c.rcvbuf, "rcvbuf");
        let reconnect = c.reconnect.unwrap_or(0);
        let repeat = c.repeat.unwrap_or(1);
        if repeat == 0 {
            errs.push(src.error(cp.key("repeat"), "repeat = 0 would run nothing; the default is 1"));
        }
        if reconnect > 0 && repeat > 1 {
            errs.push(src.error(cp.key("reconnect"), "use either `reconnect` (one socket, several connections) or `repeat` (several sockets), not both"));
        }
        if reconnect > 0 || repeat > 1 {
            let key = if reconnect > 0 { "reconnect" } else { "repeat" };
            if with_steps {
                errs.push(src.error(cp.key(key), format!("`{key}` runs its further transfers after the steps: `transfer = \"with_steps\"` cannot be combined with it")));
            }
            if fastclose.is_some() {
                errs.push(src.error(cp.key(key), format!("`{key}` needs clean closes between transfers: `close` cannot be combined with it")));
            }
        }
        let max_duration = c.max_duration.as_ref().and_then(|m| {
            let mp = cp.key("max_duration");
            let rate = crate::throughput::parse_rate(&m.rate).map_err(|e| errs.push(src.error(mp.key("rate"), e))).ok();
            let slack = parse_duration(&m.slack.0).map_err(|e| errs.push(src.error(mp.key("slack"), e))).ok();
            // A timing bound is judged only where nothing else competes for the CPUs or
            // the links, and over one plain transfer.
            if !raw.serial {
                errs.push(src.error(mp.clone(), "a duration bound needs the case to be `serial = true`"));
            }
            if c.pace.is_some() || c.close.is_some() || c.error.is_some() || reconnect > 0 || repeat > 1 {
                errs.push(src.error(mp.clone(), "a duration bound applies to one plain bulk transfer: not with pace, close, error, reconnect or repeat"));
            }
            let single = match &m.single_path {
                None => Some(None),
                Some(t) => crate::throughput::parse_rate(t).map(Some).map_err(|e| errs.push(src.error(mp.key("single_path"), e))).ok(),
            };
            if let (Some(r), Some(Some(one))) = (rate, single)
                && one >= r
            {
                errs.push(src.error(mp.key("single_path"), "the single path's rate must be below the aggregate `rate`"));
            }
            Some(crate::throughput::MaxDuration { rate_bps: rate?, slack: slack?, single_path_bps: single? })
        });
        let pause = c.pause.as_ref().and_then(|p| {
            let by = match p.by.as_str() {
                "client" => vec![Side::Client],
                "server" => vec![Side::Server],
                "both" => vec![Side::Client, Side::Server],
                o => {
                    errs.push(src.error(cp.key("pause").key("by"), format!("expected \"client\", \"server\" or \"both\", found {o:?}")));
                    return None;
                }
            };
            let mut after = Vec::new();
            for (j, a) in p.after.iter().enumerate() {
                let n = parse_size(&a.0).map_err(|e| errs.push(src.error(cp.key("pause").key("after").index(j), e))).ok()?;
                if after.last().is_some_and(|l| *l >= n) {
                    errs.push(src.error(cp.key("pause").key("after").index(j), "pause offsets must increase"));
                }
                after.push(n);
            }
            if after.is_empty() {
                errs.push(src.error(cp.key("pause").key("after"), "a pause needs at least one offset"));
            }
            if !with_steps {
                errs.push(src.error(cp.key("pause"), "a pause lasts until the steps are done: it needs `transfer = \"with_steps\"`"));
            }
            Some(Pause { by, after })
        });
        let allow_inverted = match c.integrity.as_deref() {
            None | Some("exact") => false,
            Some("allow_inverted") => true,
            Some(o) => {
                errs.push(src.error(cp.key("integrity"), format!("expected \"exact\" or \"allow_inverted\", found {o:?}")));
                false
            }
        };
        let port = c.port.unwrap_or(10000 + u16::try_from(i).unwrap_or(0));
        if port == 0 {
            errs.push(src.error(cp.key("port"), "port 0 is not a port"));
        }
        connections.push(Connection {
            name: c.name.clone().unwrap_or_else(|| format!("conn{i}")),
            client: c.client.clone(),
            server: c.server.clone(),
            connect,
            port,
            listen,
            client_proto,
            server_proto,
            upload,
            download,
            error,
            with_steps,
            fastclose,
            pace,
            io,
            peek,
            sndbuf,
            rcvbuf,
            fastopen: c.fastopen.unwrap_or(false),
            transparent,
            reconnect,
            repeat: repeat.max(1),
            mark: c.mark,
            connect_ll,
            listen_ll,
            max_duration,
            pause,
            allow_inverted,
        });
    }

    let mut expect_links = Vec::new();
    let mut optional_counters = Vec::new();
    let mut expect_nft = Vec::new();
    let mut expect: BTreeMap<String, HostExpect> = topology
        .hosts
        .keys()
        .map(|h| (h.clone(), HostExpect { counters: BTreeMap::new(), strict: true, events: Default::default() }))
        .collect();
    for (name, e) in &raw.expect {
        let ep = root.key("expect").key(name);
        host_check(name, ep.clone(), errs);
        let mut counters = BTreeMap::new();
        for (cname, v) in &e.counters {
            let at = ep.key("counters").key(cname);
            if !counters::is_known(cname) {
                let hint = counters::suggest(cname).map(|s| format!("; did you mean {s:?}?")).unwrap_or_default();
                errs.push(src.error(at.clone(), format!("unknown counter {cname:?} (expected an MPTcpExt*, TcpExt* or Tcp* name as nstat prints it){hint}")));
                continue;
            }
            let Some(ce) = counter_expect(v, &at, src, errs) else { continue };
            if matches!(v, RawCounter::Table { optional: true, .. }) {
                optional_counters.push((name.clone(), cname.clone()));
            }
            counters.insert(cname.clone(), ce);
        }
        let mut events = crate::events::EventExpect::default();
        if let Some(seq) = &e.events {
            events.seq = crate::events::parse_seq(seq, &ep.key("events"), src, errs);
        }
        events.exact = match e.events_order.as_deref() {
            None | Some("subsequence") => false,
            Some("exact") => true,
            Some(o) => {
                errs.push(src.error(ep.key("events_order"), format!("expected \"subsequence\" or \"exact\", found {o:?}")));
                false
            }
        };
        for (k, v) in &e.event_counts {
            if let Some(c) = counter_expect(v, &ep.key("event_counts").key(k), src, errs) {
                events.counts.insert(k.clone(), c);
            }
        }
        crate::events::check_count_names(&events.counts, &ep.key("event_counts"), src, errs);
        events.attr_counts = crate::events::parse_attr_counts(&e.event_attr_counts, &ep.key("event_attr_counts"), src, errs);
        expect_links.extend(crate::observe::links(name, &e.links, &ep.key("links"), &topology, src, errs));
        expect_nft.extend(crate::observe::nft_counters(name, &e.nft_counters, &ep.key("nft_counters"), src, errs));
        if let Some(slot) = expect.get_mut(name) {
            slot.counters = counters;
            slot.strict = e.strict.unwrap_or(true);
            slot.events = events;
        }
    }

    // The kernel sees a path-manager daemon if any socket of the machine listens to the
    // events group: with one silent host, no host records events (and the case runs alone).
    if let Some(silent) = hosts.iter().find(|(_, h)| !h.record_events).map(|(n, _)| n.clone()) {
        for (name, e) in &expect {
            if !e.events.is_empty() {
                errs.push(src.error(root.key("expect").key(name), format!(
                    "host {silent:?} has record_events = false: the kernel's daemon check is machine-wide, so no host of this case records events and {name:?} has no event log to check"
                )));
            }
        }
    }
    let mut expect_sums = Vec::new();
    for (i, e) in raw.expect_sum.iter().enumerate() {
        let ep = root.key("expect_sum").index(i);
        if !counters::is_known(&e.counter) {
            errs.push(src.error(ep.key("counter"), format!("unknown counter {:?}", e.counter)));
        }
        for (j, h) in e.hosts.iter().enumerate() {
            host_check(h, ep.key("hosts").index(j), errs);
        }
        let raw_c = RawCounter::Table { eq: e.eq, ge: e.ge, le: e.le, unknown: Vec::new(), optional: false };
        if let Some(want) = counter_expect(&raw_c, &ep, src, errs) {
            expect_sums.push(ExpectSum { counter: e.counter.clone(), hosts: e.hosts.clone(), want });
        }
    }
    let mut rerun_if = Vec::new();
    for (i, r) in raw.rerun_if.iter().enumerate() {
        let rp = root.key("rerun_if").index(i);
        if !counters::is_known(&r.counter) {
            errs.push(src.error(rp.key("counter"), format!("unknown counter {:?}", r.counter)));
        }
        host_check(&r.host, rp.key("host"), errs);
        if r.reason.trim().is_empty() {
            errs.push(src.error(rp.key("reason"), "expected why such an attempt says nothing about the kernel"));
        }
        rerun_if.push(RerunIf { host: r.host.clone(), counter: r.counter.clone(), above: r.above, reason: r.reason.clone() });
    }
    let expect_diffs = raw
        .expect_diff
        .iter()
        .enumerate()
        .filter_map(|(i, d)| crate::observe::diff(d, &root.key("expect_diff").index(i), &topology, src, errs))
        .collect();
    let steps = crate::steps::validate_steps(&raw.steps, &root.key("steps"), &topology, &[], src, errs);
    if hosts.values().any(|h| !h.record_events) {
        fn waits(st: &crate::steps::Step) -> bool {
            match st {
                crate::steps::Step::WaitEvent { .. } => true,
                crate::steps::Step::Repeat { steps, .. } => steps.iter().any(waits),
                _ => false,
            }
        }
        for (i, st) in steps.iter().enumerate() {
            if waits(st) {
                errs.push(src.error(root.key("steps").index(i), "wait_event needs an event log, but a host has record_events = false (then no host records events)"));
            }
        }
    }
    if raw.connections.is_empty() && raw.steps.is_empty() {
        errs.push(src.error(root.clone(), "a case needs `connections`, `steps`, or both"));
    }

    Case {
        id,
        steps,
        expect_sums,
        expect_links,
        expect_nft,
        expect_diffs,
        optional_counters,
        rerun_if,
        summary: raw.summary,
        topology,
        tags: raw.tags,
        timeout,
        requires: raw.requires,
        serial: raw.serial,
        xfail: raw.xfail.map(|x| XFail { reason: x.reason, link: x.link }),
        flaky: raw.flaky.map(|x| XFail { reason: x.reason, link: x.link }),
        hosts,
        connections,
        expect,
    }
}

/// Converts a written counter expectation (`3`, `"any"`, `{ ge = 1 }`) to its model.
pub(crate) fn counter_expect(v: &RawCounter, at: &KeyPath, src: &Source, errs: &mut Vec<SpecError>) -> Option<CounterExpect> {
    Some(match v {
        RawCounter::Int(n) => CounterExpect::Eq(*n),
        RawCounter::Word(w) if w == "any" => CounterExpect::Any,
        RawCounter::Word(w) => {
            errs.push(src.error(at.clone(), format!("expected an integer, \"any\" or a table, found {w:?}")));
            return None;
        }
        RawCounter::Table { eq, ge, le, unknown, .. } => {
            if !unknown.is_empty() {
                errs.push(src.error(at.clone(), format!("unknown key(s) {} (expected eq, ge, le, optional)", unknown.join(", "))));
            }
            match (eq, ge, le) {
                (Some(e), None, None) => CounterExpect::Eq(*e),
                (None, min, max) if min.is_some() || max.is_some() => {
                    if let (Some(a), Some(b)) = (min, max)
                        && a > b
                    {
                        errs.push(src.error(at.clone(), format!("empty range: ge = {a} > le = {b}")));
                    }
                    CounterExpect::Range { min: *min, max: *max }
                }
                _ => {
                    errs.push(src.error(at.clone(), "expected either `eq`, or `ge` and/or `le`"));
                    return None;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    const TOPO: &str = r#"
summary = "pair"
[hosts.server]
[hosts.client]
[[links]]
a = { host = "server", ifname = "eth1", addrs = ["10.0.1.1/24", "dead:beef:1::1/64"] }
b = { host = "client", ifname = "eth1", addrs = ["10.0.1.2/24", "dead:beef:1::2/64"] }
"#;

    fn topo(name: &str) -> Result<Topology, SpecErrors> {
        if name == "pair" {
            Topology::from_source("pair", &Source::new("topologies/pair.toml", TOPO))
        } else {
            Err(SpecErrors(vec![SpecError {
                file: format!("topologies/{name}.toml").into(),
                line: None,
                key: KeyPath::root(),
                message: "cannot read the file: No such file or directory (os error 2)".into(),
            }]))
        }
    }

    fn load(text: &str) -> Result<Case, SpecErrors> {
        Case::from_source("t::case".into(), &Source::new("cases/t/case.toml", text), &topo)
    }

    const GOOD: &str = r#"
summary = "one MPTCP connection"
topology = "pair"
[hosts.client]
limits = { subflows = 1 }
endpoints = [{ addr = "10.0.1.2", flags = ["subflow"], dev = "eth1" }]
[[connections]]
client = "client"
server = "server"
connect = "10.0.1.1"
upload = "4KiB"
[expect.server.counters]
MPTcpExtMPCapableSYNRX = 1
MPTcpExtMPCapableACKRX = { ge = 1, le = 2 }
[expect.client]
counters = { MPTcpExtMPTCPRetrans = "any" }
strict = false
"#;

    #[test]
    fn a_valid_case() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.connections[0].upload, 4096);
        assert_eq!(c.connections[0].download, 1024);
        assert_eq!(c.connections[0].port, 10000);
        assert_eq!(c.connections[0].listen, "::".parse::<IpAddr>().unwrap());
        assert_eq!(c.expect["server"].counters["MPTcpExtMPCapableSYNRX"], CounterExpect::Eq(1));
        assert_eq!(
            c.expect["server"].counters["MPTcpExtMPCapableACKRX"],
            CounterExpect::Range { min: Some(1), max: Some(2) }
        );
        assert!(c.expect["server"].strict && !c.expect["client"].strict);
        assert_eq!(c.hosts["client"].limits.unwrap().subflows, Some(1));
    }

    fn one_error(text: &str) -> String {
        let e = load(text).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        e.to_string()
    }

    #[test]
    fn unknown_key_is_located() {
        let e = one_error(&GOOD.replace("upload = \"4KiB\"", "uplaod = \"4KiB\""));
        assert!(e.starts_with("cases/t/case.toml:11: connections[0].uplaod: unknown field `uplaod`"), "{e}");
    }

    #[test]
    fn wrong_type_is_located() {
        let e = one_error(&GOOD.replace("subflows = 1", "subflows = \"one\""));
        assert!(e.starts_with("cases/t/case.toml:5: hosts.client.limits.subflows: "), "{e}");
    }

    #[test]
    fn missing_topology_is_located() {
        let e = one_error(&GOOD.replace("\"pair\"", "\"nowhere\""));
        assert!(e.starts_with("cases/t/case.toml:3: topology: unknown topology \"nowhere\""), "{e}");
    }

    #[test]
    fn unknown_counter_is_located_with_a_hint() {
        let e = one_error(&GOOD.replace("MPTcpExtMPCapableSYNRX = 1", "MPTcpExtMPCapableSynRx = 1"));
        assert!(e.starts_with("cases/t/case.toml:13: expect.server.counters.MPTcpExtMPCapableSynRx: unknown counter"), "{e}");
        assert!(e.contains("did you mean \"MPTcpExtMPCapableSYNRX\""), "{e}");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let bad = GOOD
            .replace("client = \"client\"", "client = \"cleint\"")
            .replace("flags = [\"subflow\"]", "flags = [\"subflw\"]")
            .replace("connect = \"10.0.1.1\"", "connect = \"10.0.1.2\"");
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains(":8: connections[0].client: unknown host \"cleint\""), "{e}");
        assert!(e.contains(":6: hosts.client.endpoints[0].flags[0]: unknown endpoint flag \"subflw\""), "{e}");
        assert!(e.contains(":10: connections[0].connect: 10.0.1.2 belongs to host \"client\""), "{e}");
    }

    #[test]
    fn expected_errors() {
        let c = load(&GOOD.replace("upload = \"4KiB\"", "error = { at = \"socket\", errno = \"ENOPROTOOPT\" }")).unwrap();
        assert_eq!(c.connections[0].error, Some(ExpectedError { at: Stage::Socket, errno: 92 }));
        let e = one_error(&GOOD.replace("upload = \"4KiB\"", "error = { at = \"socket\", errno = \"ENOPROTO\" }"));
        assert!(e.contains("connections[0].error.errno: unknown errno name"), "{e}");
    }

    fn with_conn_keys(keys: &str) -> String {
        GOOD.replace("upload = \"4KiB\"", &format!("upload = \"4KiB\"\n{keys}"))
    }

    #[test]
    fn connection_features_default_to_mptcp_connect_defaults() {
        let c = &load(GOOD).unwrap().connections[0];
        assert_eq!((c.io, c.peek, c.sndbuf, c.rcvbuf, c.mark), (IoMode::Poll, None, None, None, None));
        assert!(!c.fastopen && !c.transparent);
        assert_eq!((c.reconnect, c.repeat, c.connects()), (0, 1, 1));
    }

    #[test]
    fn connection_features_are_parsed() {
        let text = with_conn_keys(
            "io = \"splice\"\nsndbuf = \"16KiB\"\nrcvbuf = 8192\nfastopen = true\nmark = 42\nreconnect = 2",
        );
        let c = &load(&text).unwrap().connections[0];
        assert_eq!(c.io, IoMode::Splice);
        assert_eq!((c.sndbuf, c.rcvbuf, c.mark), (Some(16384), Some(8192), Some(42)));
        assert!(c.fastopen);
        assert_eq!((c.reconnect, c.repeat, c.connects()), (2, 1, 3));
        let c = &load(&with_conn_keys("peek = \"after_peek\"\nio = \"mmap\"\nrepeat = 2")).unwrap().connections[0];
        assert_eq!((c.peek, c.io, c.connects()), (Some(PeekMode::AfterPeek), IoMode::Mmap, 2));
        assert_eq!(IoMode::Sendfile.name(), "sendfile");
    }

    #[test]
    fn bad_connection_features_are_located() {
        let e = one_error(&with_conn_keys("io = \"sendfil\""));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].io: expected \"poll\", \"sendfile\", \"splice\" or \"mmap\", found \"sendfil\""), "{e}");
        let e = one_error(&with_conn_keys("peek = \"saveWithPeek\""));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].peek: expected \"with_peek\" or \"after_peek\""), "{e}");
        let e = one_error(&with_conn_keys("io = \"splice\"\npeek = \"with_peek\""));
        assert!(e.starts_with("cases/t/case.toml:13: connections[0].peek: peek modes receive with recv(2)"), "{e}");
        let e = one_error(&with_conn_keys("sndbuf = 0"));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].sndbuf: sndbuf must be between 1 byte"), "{e}");
        let e = one_error(&with_conn_keys("rcvbuf = \"4GiB\""));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].rcvbuf: rcvbuf must be between"), "{e}");
        let e = one_error(&with_conn_keys("rcvbuf = \"lots\""));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].rcvbuf: expected a size"), "{e}");
        let e = one_error(&with_conn_keys("fastopen = \"yes\""));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].fastopen: "), "{e}");
        let e = one_error(&with_conn_keys("repeat = 0"));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].repeat: repeat = 0 would run nothing"), "{e}");
        let e = one_error(&with_conn_keys("mark = -1"));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].mark: "), "{e}");
    }

    #[test]
    fn repeated_transfers_exclude_what_needs_a_single_one() {
        let e = one_error(&with_conn_keys("reconnect = 1\nrepeat = 2"));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].reconnect: use either `reconnect`"), "{e}");
        let e = one_error(&with_conn_keys("repeat = 2\nclose = { by = \"client\" }"));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].repeat: `repeat` needs clean closes"), "{e}");
        let e = one_error(&with_conn_keys("reconnect = 3\ntransfer = \"with_steps\""));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].reconnect: `reconnect` runs its further transfers after the steps"), "{e}");
    }

    #[test]
    fn a_transparent_listener_takes_another_hosts_address() {
        // Without `transparent` the connect address must be the server's ...
        let foreign = GOOD.replace("connect = \"10.0.1.1\"", "connect = \"10.0.1.2\"");
        let e = one_error(&foreign);
        assert!(e.contains("connections[0].connect: 10.0.1.2 belongs to host \"client\""), "{e}");
        // ... with it, a tproxy rule diverts the connection and any address goes.
        let c = &load(&foreign.replace("upload = \"4KiB\"", "upload = \"4KiB\"\ntransparent = true")).unwrap().connections[0];
        assert!(c.transparent);
    }

    const PM_STEP: &str = "summary = \"s\"\ntopology = \"pair\"\n\n[[steps]]\nhost = \"server\"\npm = \"add\"\naddr = \"10.0.1.1\"\n";

    #[test]
    fn a_refusal_names_one_errno_or_any_of_several() {
        let errors = |c: &Case| match &c.steps[0] {
            crate::steps::Step::Pm { expect, .. } => expect.error.clone().unwrap(),
            other => panic!("{other:?}"),
        };
        let c = load(&format!("{PM_STEP}error = {{ errno = \"EEXIST\" }}\n")).unwrap();
        assert_eq!(errors(&c), (vec![17], None));
        let c = load(&format!("{PM_STEP}error = {{ errno = [\"EEXIST\", \"EINVAL\"], extack = \"dup\" }}\n")).unwrap();
        assert_eq!(errors(&c), (vec![17, 22], Some("dup".into())));
        let e = one_error(&format!("{PM_STEP}error = {{ errno = [\"EEXIST\", \"EWHAT\"] }}\n"));
        assert!(e.starts_with("cases/t/case.toml:8: steps[0].error.errno[1]: unknown errno name \"EWHAT\""), "{e}");
        let e = one_error(&format!("{PM_STEP}error = {{ errno = [] }}\n"));
        assert!(e.contains("steps[0].error.errno: an empty errno list"), "{e}");
    }

    #[test]
    fn setup_listeners_routes_and_link_local_variables() {
        let text = GOOD.replace("[hosts.client]\n", "[hosts.server]\nlisten = [\"10.0.1.1:9000\", \"[$ll.eth1%eth1]:9001\"]\n[hosts.client]\nroutes = [\"10.0.9.0/24 via 10.0.1.1 dev eth1\"]\n")
            .replace("connect = \"10.0.1.1\"", "connect = \"$ll.eth1%eth1\"\nlisten = \"$ll.eth1%eth1\"");
        let c = load(&text).unwrap();
        let srv = &c.hosts["server"];
        assert_eq!(srv.listen[0].addr, "10.0.1.1:9000".parse().unwrap());
        let ll = srv.listen[1].ll.as_ref().unwrap();
        assert_eq!((ll.of.as_str(), ll.scope.as_deref(), srv.listen[1].addr.port()), ("eth1", Some("eth1"), 9001));
        assert_eq!(c.hosts["client"].routes[0].to_string(), "10.0.9.0/24 via 10.0.1.1 dev eth1");
        let conn = &c.connections[0];
        assert_eq!(conn.connect, crate::linklocal::PLACEHOLDER);
        assert_eq!(conn.connect_ll.as_ref().map(ToString::to_string).as_deref(), Some("$ll.eth1%eth1"));
        assert_eq!(c.link_local_interfaces().into_iter().collect::<Vec<_>>(), vec!["eth1".to_owned()]);
    }

    #[test]
    fn bad_setup_keys_are_located() {
        let e = one_error(&GOOD.replace("[hosts.client]\n", "[hosts.client]\nroutes = [\"10.0.9.0/24 via 10.0.1\"]\n"));
        assert!(e.starts_with("cases/t/case.toml:5: hosts.client.routes[0]: via \"10.0.1\" is not an address"), "{e}");
        let e = one_error(&GOOD.replace("[hosts.client]\n", "[hosts.client]\nroutes = [\"0.0.0.0/0 dev eth9\"]\n"));
        assert!(e.contains("hosts.client.routes[0]: host \"client\" has no interface \"eth9\""), "{e}");
        let e = one_error(&GOOD.replace("[hosts.client]\n", "[hosts.client]\nlisten = [\"10.0.1.2\"]\n"));
        assert!(e.starts_with("cases/t/case.toml:5: hosts.client.listen[0]: \"10.0.1.2\" is not an address:port"), "{e}");
        let e = one_error(&GOOD.replace("connect = \"10.0.1.1\"", "connect = \"$ll.eth1%eth7\""));
        assert!(e.contains("connections[0].connect: scope: host \"client\" has no interface \"eth7\""), "{e}");
        let e = one_error(&GOOD.replace("addr = \"10.0.1.2\"", "addr = \"$ll.eth1%eth1\""));
        assert!(e.contains("hosts.client.endpoints[0].addr: an endpoint address takes no %scope"), "{e}");
    }

    #[test]
    fn a_host_without_recorder_silences_every_host() {
        let text = GOOD.replace("[hosts.client]\n", "[hosts.server]\nrecord_events = false\n[hosts.client]\n") + "event_counts = { created = 1 }\n";
        let e = one_error(&text);
        assert!(e.contains("expect.client: host \"server\" has record_events = false: the kernel's daemon check is machine-wide"), "{e}");
        let c = load(&GOOD.replace("[hosts.client]\n", "[hosts.server]\nrecord_events = false\n[hosts.client]\n")).unwrap();
        assert!(c.without_pm_listeners());
        assert!(!load(GOOD).unwrap().without_pm_listeners());
    }

    #[test]
    fn event_attr_counts_are_validated() {
        let c = load(&(GOOD.to_owned() + "event_attr_counts = { sub_closed = { error = 2 } }\n")).unwrap();
        assert_eq!(c.expect["client"].events.attr_counts[&("sub_closed".to_owned(), "error".to_owned())], CounterExpect::Eq(2));
        let e = one_error(&(GOOD.to_owned() + "event_attr_counts = { sub_closed = { eror = 2 } }\n"));
        assert!(e.contains("expect.client.event_attr_counts.sub_closed.eror: unknown event attribute \"eror\""), "{e}");
    }

    #[test]
    fn host_routes_rules_and_offloads() {
        let text = GOOD.replace(
            "limits = { subflows = 1 }",
            "limits = { subflows = 1 }\nroutes = [\"0.0.0.0/0 dev lo table 100 type local\"]\nrules = [\"fwmark 1 lookup 100\"]\noffloads = [{ dev = \"eth1\", tso = false, gro = false }]",
        );
        let c = load(&text).unwrap();
        let h = &c.hosts["client"];
        assert!(h.routes[0].local && h.routes[0].table == Some(100));
        assert_eq!(h.rules[0].fwmark, Some((1, None)));
        assert_eq!(h.offloads, vec![Offload { dev: "eth1".into(), features: vec![("tso", false), ("gro", false)] }]);
        let e = one_error(&text.replace("dev lo table", "dev eth9 table"));
        assert!(e.starts_with("cases/t/case.toml:6: hosts.client.routes[0]: host \"client\" has no interface \"eth9\""), "{e}");
        let e = one_error(&text.replace("fwmark 1 lookup 100", "fwmark 1"));
        assert!(e.starts_with("cases/t/case.toml:7: hosts.client.rules[0]: a rule needs `lookup <table>`"), "{e}");
        let e = one_error(&text.replace("tso = false, gro = false", "lro = false"));
        assert!(e.starts_with("cases/t/case.toml:8: hosts.client.offloads[0].lro: unknown field `lro`"), "{e}");
        let e = one_error(&text.replace(", tso = false, gro = false", ""));
        assert!(e.starts_with("cases/t/case.toml:8: hosts.client.offloads[0]: name at least one feature"), "{e}");
    }

    #[test]
    fn a_duration_bound_needs_a_serial_plain_transfer() {
        let bound = "max_duration = { rate = \"20mbit\", slack = \"450ms\" }";
        let c = load(&format!("serial = true\n{}", with_conn_keys(bound))).unwrap();
        let m = c.connections[0].max_duration.unwrap();
        assert_eq!((m.rate_bps, m.slack), (20_000_000, Duration::from_millis(450)));
        let e = one_error(&with_conn_keys(bound));
        assert!(e.starts_with("cases/t/case.toml:12: connections[0].max_duration: a duration bound needs the case to be `serial = true`"), "{e}");
        let e = one_error(&format!("serial = true\n{}", with_conn_keys(&format!("{bound}\nrepeat = 2"))));
        assert!(e.contains("connections[0].max_duration: a duration bound applies to one plain bulk transfer"), "{e}");
        let e = one_error(&format!("serial = true\n{}", with_conn_keys(&bound.replace("20mbit", "20mbps"))));
        assert!(e.starts_with("cases/t/case.toml:13: connections[0].max_duration.rate: unknown rate unit \"mbps\""), "{e}");
        let capped = bound.replace(" }", ", single_path = \"10mbit\" }");
        let c = load(&format!("serial = true\n{}", with_conn_keys(&capped))).unwrap();
        assert_eq!(c.connections[0].max_duration.unwrap().single_path_bps, Some(10_000_000));
        let e = one_error(&format!("serial = true\n{}", with_conn_keys(&capped.replace("10mbit", "20mbit"))));
        assert!(e.contains("connections[0].max_duration.single_path: the single path's rate must be below the aggregate `rate`"), "{e}");
    }

    #[test]
    fn wait_counter_keys_may_add_counters_up() {
        let with = |w: &str| GOOD.replace("[expect.server.counters]", &format!("[[steps]]\nhost = \"server\"\nwait_counter = {{ {w} }}\n\n[expect.server.counters]"));
        let c = load(&with("\"MPTcpExtMPJoinSynTxBindErr + MPTcpExtMPJoinSynTxCreatSkErr\" = 1")).unwrap();
        match &c.steps[0] {
            crate::steps::Step::WaitCounter { counters, .. } => assert_eq!(counters[0].0, "MPTcpExtMPJoinSynTxBindErr + MPTcpExtMPJoinSynTxCreatSkErr"),
            other => panic!("{other:?}"),
        }
        let e = one_error(&with("\"MPTcpExtMPJoinSynTxBindErr + MPTcpExtNoSuch\" = 1"));
        assert!(e.contains("unknown counter \"MPTcpExtNoSuch\""), "{e}");
        assert_eq!(crate::counters::sum_parts("A + B"), ["A", "B"]);
        assert_eq!(crate::counters::sum_parts("A"), ["A"]);
    }

    #[test]
    fn rerun_if_is_parsed_and_checked() {
        let with = |t: &str| GOOD.replace("topology = \"pair\"\n", &format!("topology = \"pair\"\n{t}\n"));
        let c = load(&with("[[rerun_if]]\nhost = \"client\"\ncounter = \"TcpExtTCPSynRetrans\"\nreason = \"r\"")).unwrap();
        assert_eq!(c.rerun_if, [RerunIf { host: "client".into(), counter: "TcpExtTCPSynRetrans".into(), above: 0, reason: "r".into() }]);
        let e = one_error(&with("[[rerun_if]]\nhost = \"nobody\"\ncounter = \"TcpExtTCPSynRetrans\"\nreason = \"r\""));
        assert!(e.contains("rerun_if[0].host"), "{e}");
        let e = one_error(&with("[[rerun_if]]\nhost = \"client\"\ncounter = \"TcpExtNoSuchThing\"\nreason = \"r\""));
        assert!(e.contains("rerun_if[0].counter") && e.contains("unknown counter"), "{e}");
        let e = one_error(&with("[[rerun_if]]\nhost = \"client\"\ncounter = \"TcpExtTCPSynRetrans\""));
        assert!(e.contains("reason"), "{e}");
    }

    #[test]
    fn flaky_and_xfail_markers_are_parsed() {
        let c = load(&GOOD.replace("topology = \"pair\"\n", "topology = \"pair\"\nflaky = { reason = \"upstream marks it flaky\" }\n")).unwrap();
        assert_eq!(c.flaky.as_ref().map(|f| f.reason.as_str()), Some("upstream marks it flaky"));
        assert!(c.xfail.is_none());
        let e = one_error(&GOOD.replace("topology = \"pair\"\n", "topology = \"pair\"\nflaky = { why = \"x\" }\n"));
        assert!(e.contains("flaky"), "{e}");
    }

    #[test]
    fn case_ids_come_from_paths() {
        assert_eq!(case_id(Path::new("cases"), Path::new("cases/join/subflows/one.toml")), "join::subflows::one");
    }

    #[test]
    fn counter_expect_matching() {
        assert!(CounterExpect::Eq(2).matches(2) && !CounterExpect::Eq(2).matches(3));
        let r = CounterExpect::Range { min: Some(1), max: None };
        assert!(r.matches(5) && !r.matches(0));
        assert_eq!(r.to_string(), ">= 1");
        assert!(CounterExpect::Any.matches(-4));
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A minimal valid case on a one-link topology, for engine tests.
    pub fn minimal_case() -> Case {
        let topo = Topology::from_source(
            "pair",
            &Source::new(
                "pair.toml",
                "summary = \"p\"\n[hosts.server]\n[hosts.client]\n[[links]]\n\
                 a = { host = \"server\", ifname = \"eth1\", addrs = [\"10.0.1.1/24\"] }\n\
                 b = { host = \"client\", ifname = \"eth1\", addrs = [\"10.0.1.2/24\"] }\n",
            ),
        )
        .expect("fixture topology");
        Case::from_source(
            "t::min".into(),
            &Source::new("min.toml", "summary = \"m\"\ntopology = \"pair\"\n[[steps]]\nhost = \"server\"\npm = \"flush\"\n"),
            &|_| Ok(topo.clone()),
        )
        .expect("fixture case")
    }
}

#[cfg(test)]
mod pause_tests {
    use super::tests_support::minimal_case;
    use super::*;

    fn load(conn_keys: &str) -> Result<Case, SpecErrors> {
        let topo = minimal_case().topology;
        let text = format!("summary = \"s\"\ntopology = \"pair\"\n[[connections]]\nclient = \"client\"\nserver = \"server\"\nconnect = \"10.0.1.1\"\n{conn_keys}\n");
        Case::from_source("t::p".into(), &Source::new("cases/t/p.toml", &text), &|_| Ok(topo.clone()))
    }

    #[test]
    fn pauses_and_integrity_are_parsed() {
        let c = load("transfer = \"with_steps\"\npause = { by = \"both\", after = [\"1\", \"16MiB\"] }\nintegrity = \"allow_inverted\"").unwrap();
        let c = &c.connections[0];
        assert_eq!(c.pause, Some(Pause { by: vec![Side::Client, Side::Server], after: vec![1, 16 << 20] }));
        assert!(c.allow_inverted);
        assert!(!load("").unwrap().connections[0].allow_inverted);
    }

    #[test]
    fn optional_counters_are_recorded() {
        let c = load("[expect.server.counters]\nMPTcpExtDssFallback = { eq = 1, optional = true }\nMPTcpExtMPJoinSynRx = 0").unwrap();
        assert_eq!(c.optional_counters, vec![("server".to_owned(), "MPTcpExtDssFallback".to_owned())]);
        assert_eq!(c.expect["server"].counters["MPTcpExtDssFallback"], CounterExpect::Eq(1));
        let e = load("[expect.server.counters]\nMPTcpExtDssFallback = { eq = 1, optional = 1 }").unwrap_err().to_string();
        assert!(e.contains("expect.server.counters.MPTcpExtDssFallback"), "{e}");
    }

    #[test]
    fn bad_pauses_and_integrity_are_located() {
        let e = load("pause = { by = \"client\", after = [\"1\"] }").unwrap_err().to_string();
        assert!(e.contains("cases/t/p.toml:7: connections[0].pause: a pause lasts until the steps are done"), "{e}");
        let e = load("transfer = \"with_steps\"\npause = { by = \"client\", after = [\"2\", \"1\"] }").unwrap_err().to_string();
        assert!(e.contains("connections[0].pause.after[1]: pause offsets must increase"), "{e}");
        let e = load("transfer = \"with_steps\"\npause = { by = \"peer\", after = [\"1\"] }").unwrap_err().to_string();
        assert!(e.contains("connections[0].pause.by: expected \"client\", \"server\" or \"both\""), "{e}");
        let e = load("integrity = \"loose\"").unwrap_err().to_string();
        assert!(e.contains("connections[0].integrity: expected \"exact\" or \"allow_inverted\""), "{e}");
    }
}
