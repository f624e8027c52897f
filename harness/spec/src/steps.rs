//! Steps: path-manager commands run in order, each with what the kernel must answer.
//!
//! A case with steps and no connections is an *API case* (like `pm_netlink.sh`): a sequence
//! of commands, each expected to succeed or to be refused with an errno and/or an
//! extended-ACK text, and reads (`get`, `dump`, `get_limits`) compared with expected values.
//!
//! ```toml
//! [[steps]]
//! host = "local"
//! pm = "add"
//! addr = "10.0.1.1"
//! flags = ["signal", "fullmesh"]
//! error = { errno = "EINVAL", extack = "flags mustn't have both signal and fullmesh" }
//!
//! [[steps]]
//! repeat = { var = "i", from = 10, to = 255 }
//! steps = [ { host = "local", pm = "add", addr = "10.0.0.9", id = "$i" },
//!           { host = "local", pm = "del", id = "$i" } ]
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use crate::case::ENDPOINT_FLAGS;
use crate::errno;
use crate::source::{KeyPath, Source, SpecError};
use crate::topology::{Topology, list};

pub(crate) mod raw {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Step {
        pub host: Option<String>,
        pub pm: Option<String>,
        pub repeat: Option<Repeat>,
        pub steps: Option<Vec<Step>>,
        pub addr: Option<String>,
        pub id: Option<NumOrVar>,
        #[serde(default)]
        pub flags: Option<Vec<String>>,
        pub port: Option<NumOrVar>,
        pub dev: Option<String>,
        pub token: Option<NumOrVar>,
        pub loc_id: Option<NumOrVar>,
        pub local: Option<String>,
        pub remote: Option<String>,
        pub add_addr_accepted: Option<u32>,
        pub subflows: Option<u32>,
        pub error: Option<Error>,
        pub endpoints: Option<Vec<EndpointExpect>>,
        pub endpoint: Option<EndpointExpect>,
        pub limits: Option<LimitsExpect>,
        pub wait_event: Option<toml::Value>,
        #[serde(default)]
        pub unprivileged: bool,
        pub wait_counter: Option<BTreeMap<String, crate::case::RawCounter>>,
        pub wait_info: Option<BTreeMap<String, toml::Value>>,
        pub sysctl: Option<BTreeMap<String, crate::topology::SysctlValue>>,
        pub check: Option<String>,
        pub args: Option<toml::Table>,
        pub nft: Option<String>,
        pub link: Option<LinkChange>,
        pub listen: Option<String>,
        pub proto: Option<String>,
        pub capture: Option<BTreeMap<String, String>>,
        pub close_listener: Option<String>,
        pub tc: Option<String>,
        pub resume: Option<String>,
        pub timeout: Option<crate::units::IntOrString>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LinkChange {
        pub dev: String,
        pub state: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Repeat {
        pub var: String,
        pub from: u32,
        pub to: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Error {
        pub errno: Option<Errnos>,
        pub extack: Option<String>,
    }

    /// `errno = "EEXIST"` or `errno = ["EEXIST", "EINVAL"]` (any of them).
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum Errnos {
        One(String),
        Any(Vec<String>),
    }

    impl Errnos {
        pub fn names(&self) -> Vec<&str> {
            match self {
                Errnos::One(n) => vec![n.as_str()],
                Errnos::Any(v) => v.iter().map(String::as_str).collect(),
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct EndpointExpect {
        pub id: u8,
        pub addr: String,
        #[serde(default)]
        pub flags: Vec<String>,
        pub port: Option<u16>,
        pub dev: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LimitsExpect {
        pub add_addr_accepted: u32,
        pub subflows: u32,
    }
}

/// An integer or a `$variable` (a `repeat` variable, or a value captured from an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumOrVar {
    /// A literal.
    Num(u64),
    /// `$name`.
    Var(String),
}

impl<'de> Deserialize<'de> for NumOrVar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NumOrVar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a non-negative integer or a \"$variable\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumOrVar, E> {
                u64::try_from(v).map(NumOrVar::Num).map_err(|_| E::custom("expected a non-negative integer"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumOrVar, E> {
                Ok(NumOrVar::Num(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NumOrVar, E> {
                match v.strip_prefix('$') {
                    Some(n) if !n.is_empty() => Ok(NumOrVar::Var(n.to_owned())),
                    _ => Err(E::custom(format!("expected an integer or \"$variable\", found {v:?}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An address with a port that may be a `$variable`: `"10.0.2.2:10000"`,
/// `"10.0.2.2:$conn0.client_port"`, `"[dead:beef:2::2]:$sf_port"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrPortVar {
    /// Address.
    pub ip: IpAddr,
    /// Port or variable.
    pub port: NumOrVar,
}

impl AddrPortVar {
    /// Parses the forms above.
    pub fn parse(text: &str) -> Option<AddrPortVar> {
        if let Ok(sa) = text.parse::<SocketAddr>() {
            return Some(AddrPortVar { ip: sa.ip(), port: NumOrVar::Num(u64::from(sa.port())) });
        }
        let (host, port) = text.rsplit_once(':')?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let ip: IpAddr = host.parse().ok()?;
        let var = port.strip_prefix('$').filter(|v| !v.is_empty())?;
        Some(AddrPortVar { ip, port: NumOrVar::Var(var.to_owned()) })
    }
}

impl std::fmt::Display for AddrPortVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = match &self.port {
            NumOrVar::Num(n) => n.to_string(),
            NumOrVar::Var(v) => format!("${v}"),
        };
        if self.ip.is_ipv6() { write!(f, "[{}]:{port}", self.ip) } else { write!(f, "{}:{port}", self.ip) }
    }
}

/// A path-manager command, named like `ip mptcp` / `pm_nl_ctl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmCommand {
    /// `ip mptcp endpoint add ADDR [id N] [port P] [dev D] FLAGS`.
    Add { addr: IpAddr, id: Option<NumOrVar>, flags: Vec<String>, port: Option<NumOrVar>, dev: Option<String> },
    /// `ip mptcp endpoint delete id N [ADDR]` (id 0 needs the address).
    Del { id: NumOrVar, addr: Option<IpAddr> },
    /// `ip mptcp endpoint show id N [token T]`.
    Get { id: NumOrVar, token: Option<NumOrVar> },
    /// `ip mptcp endpoint show [token T]`.
    Dump { token: Option<NumOrVar> },
    /// `ip mptcp endpoint flush`.
    Flush,
    /// `ip mptcp limits set [add_addr_accepted N] [subflows M]`.
    SetLimits { add_addr_accepted: Option<u32>, subflows: Option<u32> },
    /// `ip mptcp limits show`.
    GetLimits,
    /// `ip mptcp endpoint change (id N | ADDR [port P]) FLAGS [token T remote R]`.
    SetFlags { id: Option<NumOrVar>, addr: Option<IpAddr>, port: Option<NumOrVar>, flags: Vec<String>, token: Option<NumOrVar>, remote: Option<AddrPortVar> },
    /// Userspace PM: announce ADDR (ADD_ADDR) on connection `token`.
    Announce { addr: IpAddr, id: Option<NumOrVar>, flags: Vec<String>, port: Option<NumOrVar>, dev: Option<String>, token: NumOrVar },
    /// Userspace PM: remove address id `loc_id` (RM_ADDR) on connection `token`.
    Remove { token: NumOrVar, loc_id: NumOrVar },
    /// Userspace PM: create a subflow from `addr` (id, flags, dev) to `remote`.
    SubflowCreate { addr: IpAddr, id: Option<NumOrVar>, flags: Vec<String>, port: Option<NumOrVar>, dev: Option<String>, remote: AddrPortVar, token: NumOrVar },
    /// Userspace PM: destroy the subflow `local` -> `remote`.
    SubflowDestroy { local: AddrPortVar, remote: AddrPortVar, token: NumOrVar },
}

/// An expected endpoint in a `get` or `dump` answer (compared exactly: id, address, flags,
/// and port / device, which must be absent when not written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointExpect {
    /// Id.
    pub id: u8,
    /// Address.
    pub addr: IpAddr,
    /// Flag words (as a set).
    pub flags: Vec<String>,
    /// Port.
    pub port: Option<u16>,
    /// Interface name.
    pub dev: Option<String>,
}

/// What a step's command must produce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepExpect {
    /// Expected refusal: one of these errnos (empty: any) and/or a substring of the extended
    /// ACK. `None`: success.
    pub error: Option<(Vec<i32>, Option<String>)>,
    /// Expected `dump` answer, in order.
    pub endpoints: Option<Vec<EndpointExpect>>,
    /// Expected `get` answer.
    pub endpoint: Option<EndpointExpect>,
    /// Expected `get_limits` answer: (add_addr_accepted, subflows).
    pub limits: Option<(u32, u32)>,
}

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A PM command on a host.
    Pm {
        /// Where it sits in the file (for reports): `steps[3]`.
        at: String,
        /// Host.
        host: String,
        /// Sent from a socket opened without capabilities (permission checks).
        unprivileged: bool,
        /// Command.
        cmd: PmCommand,
        /// Expected answer.
        expect: StepExpect,
    },
    /// Waits until `host` has seen an event matching `event` (after everything the step
    /// before it saw: each wait consumes the event it matched).
    WaitEvent {
        /// Where it sits in the file.
        at: String,
        /// Host whose event stream is watched.
        host: String,
        /// What to wait for.
        event: crate::events::EventMatch,
        /// Attributes of the matched event stored as variables: (attribute, variable).
        capture: Vec<(String, String)>,
        /// Deadline before slowness scaling.
        timeout: std::time::Duration,
    },
    /// Waits until counters of `host` (deltas since the case started) satisfy expectations.
    WaitCounter {
        /// Where it sits in the file.
        at: String,
        /// Host.
        host: String,
        /// Counter name -> expectation.
        counters: Vec<(String, crate::case::CounterExpect)>,
        /// Deadline before slowness scaling.
        timeout: std::time::Duration,
    },
    /// Waits until `mptcp_info` fields of a live connection's socket satisfy expectations.
    WaitInfo {
        /// Where it sits in the file.
        at: String,
        /// Connection name.
        conn: String,
        /// `client` or `server` side.
        side: String,
        /// Field name -> expectation.
        fields: Vec<(String, crate::case::CounterExpect)>,
        /// Deadline before slowness scaling.
        timeout: std::time::Duration,
    },
    /// Writes sysctls in a host.
    Sysctl {
        /// Where it sits in the file.
        at: String,
        /// Host.
        host: String,
        /// Name -> value.
        values: Vec<(String, String)>,
    },
    /// Runs a built-in check routine of the runner (socket-option and ioctl semantics that
    /// need code, e.g. `mptcp_sockopt.c`'s malformed-header cases) in a host.
    Check {
        /// Where it sits in the file.
        at: String,
        /// Host.
        host: String,
        /// Check name (see the runner's `checks` module).
        name: String,
        /// Its arguments.
        args: toml::Table,
    },
    /// Loads nftables rules in a host (`nft -f -` inside its namespace).
    Nft {
        /// Where it sits in the file.
        at: String,
        /// Host.
        host: String,
        /// The ruleset text.
        rules: String,
    },
    /// Lets a paused sender of a connection (`pause`) go on to its next pause point.
    Resume {
        /// Where it sits in the file.
        at: String,
        /// The connection's name.
        conn: String,
    },
    /// Sets an interface down or up (`ip link set DEV down|up`).
    Link {
        /// Where it sits in the file.
        at: String,
        /// Host.
        host: String,
        /// Interface.
        dev: String,
        /// Up (true) or down.
        up: bool,
    },
    /// Opens one more listener in a host, kept until the case ends.
    Listen {
        /// Where it sits in the file.
        at: String,
        /// Host.
        host: String,
        /// Address and port.
        addr: AddrPortVar,
        /// Protocol.
        proto: crate::case::Proto,
    },
    /// Runs a `tc` command in a host (impairments as timeline actions), verified by readback.
    Tc {
        /// Where it sits in the file.
        at: String,
        /// Host.
        host: String,
        /// The command after `tc`.
        cmd: String,
    },
    /// Closes a listener opened by a `listen` step.
    CloseListener {
        /// Where it sits in the file.
        at: String,
        /// Host.
        host: String,
        /// Address and port it listens on.
        addr: AddrPortVar,
    },
    /// Runs `steps` once for each `$var` in `from..=to`.
    Repeat {
        /// Variable name (without `$`).
        var: String,
        /// First value.
        from: u32,
        /// Last value (inclusive).
        to: u32,
        /// The body.
        steps: Vec<Step>,
    },
}

/// The PM command names a step may use.
pub const PM_COMMANDS: &[&str] = &[
    "add", "del", "get", "dump", "flush", "set_limits", "get_limits", "set_flags", "announce", "remove",
    "subflow_create", "subflow_destroy",
];

/// Flag words `set_flags` accepts besides the endpoint flags.
pub const NEGATED_FLAGS: &[&str] = &["nobackup", "nofullmesh"];

pub(crate) fn validate_steps(
    raw: &[raw::Step],
    at: &KeyPath,
    topo: &Topology,
    vars: &[String],
    src: &Source,
    errs: &mut Vec<SpecError>,
) -> Vec<Step> {
    raw.iter().enumerate().filter_map(|(i, s)| validate_step(s, &at.index(i), topo, vars, src, errs)).collect()
}

fn validate_step(
    s: &raw::Step,
    at: &KeyPath,
    topo: &Topology,
    vars: &[String],
    src: &Source,
    errs: &mut Vec<SpecError>,
) -> Option<Step> {
    if let Some(r) = &s.repeat {
        let Some(body) = &s.steps else {
            errs.push(src.error(at.key("repeat"), "a `repeat` step needs `steps = [...]`"));
            return None;
        };
        if s.pm.is_some() || s.host.is_some() {
            errs.push(src.error(at.key("repeat"), "a `repeat` step only has `repeat` and `steps`"));
        }
        if r.from > r.to {
            errs.push(src.error(at.key("repeat"), format!("empty range {}..={}", r.from, r.to)));
        }
        let mut inner = vars.to_vec();
        inner.push(r.var.clone());
        let steps = validate_steps(body, &at.key("steps"), topo, &inner, src, errs);
        return Some(Step::Repeat { var: r.var.clone(), from: r.from, to: r.to, steps });
    }
    let timeout = match &s.timeout {
        None => std::time::Duration::from_secs(10),
        Some(t) => crate::units::parse_duration(&t.0).unwrap_or_else(|e| {
            errs.push(src.error(at.key("timeout"), e));
            std::time::Duration::from_secs(10)
        }),
    };
    let host_of = |errs: &mut Vec<SpecError>| -> Option<String> {
        let Some(host) = s.host.clone() else {
            errs.push(src.error(at.clone(), "this step needs `host`"));
            return None;
        };
        if !topo.hosts.contains_key(&host) {
            errs.push(src.error(at.key("host"), format!("unknown host {host:?}; topology {:?} has: {}", topo.name, list(topo.hosts.keys()))));
        }
        Some(host)
    };
    let kinds = [
        s.pm.is_some(),
        s.wait_event.is_some(),
        s.wait_counter.is_some(),
        s.wait_info.is_some(),
        s.sysctl.is_some(),
        s.check.is_some(),
        s.nft.is_some(),
        s.link.is_some(),
        s.listen.is_some(),
        s.close_listener.is_some(),
        s.tc.is_some(),
        s.resume.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        errs.push(src.error(at.clone(), "a step does one thing: `pm`, `wait_event`, `wait_counter`, `wait_info`, `sysctl`, `check`, `nft`, `link` or `listen`"));
        return None;
    }
    if let Some(rules) = &s.nft {
        let host = host_of(errs)?;
        return Some(Step::Nft { at: at.to_string(), host, rules: rules.clone() });
    }
    if let Some(conn) = &s.resume {
        if s.host.is_some() {
            errs.push(src.error(at.key("host"), "a `resume` step names a connection, not a host"));
        }
        return Some(Step::Resume { at: at.to_string(), conn: conn.clone() });
    }
    if let Some(l) = &s.link {
        let host = host_of(errs)?;
        if !topo.interfaces(&host).any(|i| i.ifname == l.dev) {
            errs.push(src.error(at.key("link").key("dev"), format!("host {host:?} has no interface {:?}", l.dev)));
        }
        let up = match l.state.as_str() {
            "up" => true,
            "down" => false,
            o => {
                errs.push(src.error(at.key("link").key("state"), format!("expected \"up\" or \"down\", found {o:?}")));
                return None;
            }
        };
        return Some(Step::Link { at: at.to_string(), host, dev: l.dev.clone(), up });
    }
    if let Some(cmd) = &s.tc {
        let host = host_of(errs)?;
        return Some(Step::Tc { at: at.to_string(), host, cmd: cmd.clone() });
    }
    if let Some(l) = &s.close_listener {
        let host = host_of(errs)?;
        let Some(addr) = AddrPortVar::parse(l) else {
            errs.push(src.error(at.key("close_listener"), format!("{l:?} is not an address:port")));
            return None;
        };
        return Some(Step::CloseListener { at: at.to_string(), host, addr });
    }
    if let Some(l) = &s.listen {
        let host = host_of(errs)?;
        let addr = match AddrPortVar::parse(l) {
            Some(a) => a,
            None => {
                errs.push(src.error(at.key("listen"), format!("{l:?} is not an address:port (\"10.0.2.1:10000\", \"[::]:10000\")")));
                return None;
            }
        };
        let proto = match s.proto.as_deref() {
            None | Some("mptcp") => crate::case::Proto::Mptcp,
            Some("tcp") => crate::case::Proto::Tcp,
            Some(o) => {
                errs.push(src.error(at.key("proto"), format!("expected \"mptcp\" or \"tcp\", found {o:?}")));
                return None;
            }
        };
        return Some(Step::Listen { at: at.to_string(), host, addr, proto });
    }
    if let Some(w) = &s.wait_counter {
        let host = host_of(errs)?;
        let mut counters = Vec::new();
        for (name, v) in w {
            let ap = at.key("wait_counter").key(name);
            // A key may add counters up: "A + B".
            let unknown: Vec<&str> = crate::counters::sum_parts(name).into_iter().filter(|p| !crate::counters::is_known(p)).collect();
            if let Some(part) = unknown.first() {
                let hint = crate::counters::suggest(part).map(|x| format!("; did you mean {x:?}?")).unwrap_or_default();
                errs.push(src.error(ap, format!("unknown counter {part:?}{hint}")));
                continue;
            }
            if let Some(c) = crate::case::counter_expect(v, &ap, src, errs) {
                counters.push((name.clone(), c));
            }
        }
        return Some(Step::WaitCounter { at: at.to_string(), host, counters, timeout });
    }
    if let Some(w) = &s.wait_info {
        let mut conn = None;
        let mut side = None;
        let mut fields = Vec::new();
        for (k, v) in w {
            let ap = at.key("wait_info").key(k);
            match (k.as_str(), v) {
                ("conn", toml::Value::String(c)) => conn = Some(c.clone()),
                ("side", toml::Value::String(x)) if x == "client" || x == "server" => side = Some(x.clone()),
                ("side", _) => errs.push(src.error(ap, "expected \"client\" or \"server\"")),
                (f, v) if mptcp_wire::mptcp_info::MptcpInfo::is_field(f) || matches!(f, "extra_subflows" | "limit_extra_subflows" | "endp_signal_max" | "limit_add_addr_accepted" | "endp_subflow_max") => {
                    let raw: Result<crate::case::RawCounter, _> = v.clone().try_into();
                    match raw {
                        Ok(r) => {
                            if let Some(c) = crate::case::counter_expect(&r, &ap, src, errs) {
                                fields.push((f.to_owned(), c));
                            }
                        }
                        Err(e) => errs.push(src.error(ap, e.to_string())),
                    }
                }
                (f, _) => errs.push(src.error(ap, format!(
                    "unknown mptcp_info field {f:?}; expected conn, side or one of {}",
                    mptcp_wire::mptcp_info::MptcpInfo::field_names().collect::<Vec<_>>().join(", ")
                ))),
            }
        }
        let conn = conn.unwrap_or_else(|| "conn0".to_owned());
        let Some(side) = side else {
            errs.push(src.error(at.key("wait_info"), "`wait_info` needs `side = \"client\"` or `\"server\"`"));
            return None;
        };
        return Some(Step::WaitInfo { at: at.to_string(), conn, side, fields, timeout });
    }
    if let Some(v) = &s.sysctl {
        let host = host_of(errs)?;
        let mut values = Vec::new();
        for (k, val) in v {
            crate::topology::check_sysctl_name(k, &at.key("sysctl").key(k), src, errs);
            values.push((k.clone(), val.0.clone()));
        }
        return Some(Step::Sysctl { at: at.to_string(), host, values });
    }
    if let Some(name) = &s.check {
        let host = host_of(errs)?;
        return Some(Step::Check { at: at.to_string(), host, name: name.clone(), args: s.args.clone().unwrap_or_default() });
    }
    if let Some(ev) = &s.wait_event {
        let Some(host) = s.host.clone() else {
            errs.push(src.error(at.clone(), "a step needs `host`"));
            return None;
        };
        if !topo.hosts.contains_key(&host) {
            errs.push(src.error(at.key("host"), format!("unknown host {host:?}; topology {:?} has: {}", topo.name, list(topo.hosts.keys()))));
        }
        if s.pm.is_some() {
            errs.push(src.error(at.key("wait_event"), "a step is either `pm = ...` or `wait_event = ...`"));
        }
        let mut m = crate::events::parse_seq(std::slice::from_ref(ev), &at.key("wait_event"), src, errs);
        let mut capture = Vec::new();
        for (attr, var) in s.capture.iter().flatten() {
            if !mptcp_wire::event::Event::ATTR_NAMES.contains(&attr.as_str()) {
                errs.push(src.error(at.key("capture").key(attr), format!("unknown event attribute {attr:?}")));
            }
            capture.push((attr.clone(), var.trim_start_matches('$').to_owned()));
        }
        return m.pop().map(|event| Step::WaitEvent { at: at.to_string(), host, event, capture, timeout });
    }
    let Some(pm) = s.pm.as_deref() else {
        errs.push(src.error(at.clone(), format!("a step needs `pm = <command>` (one of {}), `wait_event` or `repeat`", PM_COMMANDS.join(", "))));
        return None;
    };
    let Some(host) = s.host.clone() else {
        errs.push(src.error(at.clone(), "a step needs `host`"));
        return None;
    };
    if !topo.hosts.contains_key(&host) {
        errs.push(src.error(at.key("host"), format!("unknown host {host:?}; topology {:?} has: {}", topo.name, list(topo.hosts.keys()))));
    }
    let ip = |key: &str, v: &Option<String>, errs: &mut Vec<SpecError>| -> Option<IpAddr> {
        let t = v.as_ref()?;
        t.parse().map_err(|_| errs.push(src.error(at.key(key), format!("{t:?} is not an IPv4 or IPv6 address")))).ok()
    };
    let sockaddr = |key: &str, v: &Option<String>, errs: &mut Vec<SpecError>| -> Option<AddrPortVar> {
        let t = v.as_ref()?;
        AddrPortVar::parse(t).or_else(|| {
            errs.push(src.error(at.key(key), format!("{t:?} is not an address:port (\"10.0.1.2:10000\", \"[dead:beef:1::2]:$var\")")));
            None
        })
    };
    let need = |key: &str, present: bool, errs: &mut Vec<SpecError>| {
        if !present {
            errs.push(src.error(at.clone(), format!("`pm = \"{pm}\"` needs `{key}`")));
        }
    };
    let check_var = |key: &str, v: &Option<NumOrVar>, max: u64, errs: &mut Vec<SpecError>| match v {
        Some(NumOrVar::Num(n)) if *n > max => errs.push(src.error(at.key(key), format!("{n} is above {max}"))),
        _ => {}
    };
    check_var("id", &s.id, 255, errs);
    check_var("loc_id", &s.loc_id, 255, errs);
    check_var("token", &s.token, u64::from(u32::MAX), errs);
    check_var("port", &s.port, u64::from(u16::MAX), errs);
    let flags = s.flags.clone().unwrap_or_default();
    for (j, f) in flags.iter().enumerate() {
        let ok = ENDPOINT_FLAGS.contains(&f.as_str()) || (pm == "set_flags" && NEGATED_FLAGS.contains(&f.as_str()));
        if !ok {
            errs.push(src.error(at.key("flags").index(j), format!("unknown flag {f:?}; expected one of {}{}", ENDPOINT_FLAGS.join(", "), if pm == "set_flags" { ", nobackup, nofullmesh" } else { "" })));
        }
    }
    if let Some(dev) = &s.dev
        && dev != "lo"
        && !topo.interfaces(&host).any(|i| &i.ifname == dev)
    {
        errs.push(src.error(at.key("dev"), format!("host {host:?} has no interface {dev:?}")));
    }
    let addr = ip("addr", &s.addr, errs);
    let token = s.token.clone();
    let cmd = match pm {
        "add" => {
            need("addr", addr.is_some(), errs);
            PmCommand::Add { addr: addr?, id: s.id.clone(), flags, port: s.port.clone(), dev: s.dev.clone() }
        }
        "del" => {
            need("id", s.id.is_some(), errs);
            PmCommand::Del { id: s.id.clone()?, addr }
        }
        "get" => {
            need("id", s.id.is_some(), errs);
            PmCommand::Get { id: s.id.clone()?, token }
        }
        "dump" => PmCommand::Dump { token },
        "flush" => PmCommand::Flush,
        "set_limits" => {
            need("add_addr_accepted` or `subflows", s.add_addr_accepted.is_some() || s.subflows.is_some(), errs);
            PmCommand::SetLimits { add_addr_accepted: s.add_addr_accepted, subflows: s.subflows }
        }
        "get_limits" => PmCommand::GetLimits,
        "set_flags" => {
            need("id` or `addr", s.id.is_some() || addr.is_some(), errs);
            PmCommand::SetFlags { id: s.id.clone(), addr, port: s.port.clone(), flags, token, remote: sockaddr("remote", &s.remote, errs) }
        }
        "announce" => {
            need("addr", addr.is_some(), errs);
            need("token", token.is_some(), errs);
            PmCommand::Announce { addr: addr?, id: s.id.clone(), flags, port: s.port.clone(), dev: s.dev.clone(), token: token? }
        }
        "remove" => {
            need("token", token.is_some(), errs);
            need("loc_id", s.loc_id.is_some(), errs);
            PmCommand::Remove { token: token?, loc_id: s.loc_id.clone()? }
        }
        "subflow_create" => {
            need("addr", addr.is_some(), errs);
            need("remote", s.remote.is_some(), errs);
            need("token", token.is_some(), errs);
            let remote = sockaddr("remote", &s.remote, errs);
            PmCommand::SubflowCreate { addr: addr?, id: s.id.clone(), flags, port: s.port.clone(), dev: s.dev.clone(), remote: remote?, token: token? }
        }
        "subflow_destroy" => {
            need("local", s.local.is_some(), errs);
            need("remote", s.remote.is_some(), errs);
            need("token", token.is_some(), errs);
            let local = sockaddr("local", &s.local, errs);
            let remote = sockaddr("remote", &s.remote, errs);
            PmCommand::SubflowDestroy { local: local?, remote: remote?, token: token? }
        }
        other => {
            errs.push(src.error(at.key("pm"), format!("unknown command {other:?}; expected one of {}", PM_COMMANDS.join(", "))));
            return None;
        }
    };

    let mut expect = StepExpect::default();
    if let Some(e) = &s.error {
        let names = e.errno.as_ref().map(raw::Errnos::names).unwrap_or_default();
        let mut n = Vec::new();
        for (j, name) in names.iter().enumerate() {
            let key = match &e.errno {
                Some(raw::Errnos::Any(_)) => at.key("error").key("errno").index(j),
                _ => at.key("error").key("errno"),
            };
            match errno::by_name(name) {
                Some(v) => n.push(v),
                None => errs.push(src.error(key, format!("unknown errno name {name:?}"))),
            }
        }
        if matches!(&e.errno, Some(raw::Errnos::Any(v)) if v.is_empty()) {
            errs.push(src.error(at.key("error").key("errno"), "an empty errno list: name at least one errno"));
        }
        if e.errno.is_none() && e.extack.is_none() {
            errs.push(src.error(at.key("error"), "an expected error needs `errno` and/or `extack`"));
        }
        expect.error = Some((n, e.extack.clone()));
    }
    let ep = |e: &raw::EndpointExpect, key: KeyPath, errs: &mut Vec<SpecError>| -> Option<EndpointExpect> {
        let addr = e.addr.parse().map_err(|_| errs.push(src.error(key.key("addr"), format!("{:?} is not an address", e.addr)))).ok()?;
        for (j, f) in e.flags.iter().enumerate() {
            if !ENDPOINT_FLAGS.contains(&f.as_str()) && !f.starts_with("0x") {
                errs.push(src.error(key.key("flags").index(j), format!("unknown flag {f:?}")));
            }
        }
        Some(EndpointExpect { id: e.id, addr, flags: e.flags.clone(), port: e.port, dev: e.dev.clone() })
    };
    if let Some(list) = &s.endpoints {
        if pm != "dump" {
            errs.push(src.error(at.key("endpoints"), "`endpoints` is the expected answer of `pm = \"dump\"`"));
        }
        expect.endpoints = Some(list.iter().enumerate().filter_map(|(j, e)| ep(e, at.key("endpoints").index(j), errs)).collect());
    }
    if let Some(e) = &s.endpoint {
        if pm != "get" {
            errs.push(src.error(at.key("endpoint"), "`endpoint` is the expected answer of `pm = \"get\"`"));
        }
        expect.endpoint = ep(e, at.key("endpoint"), errs);
    }
    if let Some(l) = &s.limits {
        if pm != "get_limits" {
            errs.push(src.error(at.key("limits"), "`limits` is the expected answer of `pm = \"get_limits\"`"));
        }
        expect.limits = Some((l.add_addr_accepted, l.subflows));
    }
    if expect.error.is_some() && (expect.endpoints.is_some() || expect.endpoint.is_some() || expect.limits.is_some()) {
        errs.push(src.error(at.key("error"), "a step expects either an error or an answer, not both"));
    }
    Some(Step::Pm { at: at.to_string(), host, unprivileged: s.unprivileged, cmd, expect })
}
