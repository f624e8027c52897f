//! Topology files (`topologies/<name>.toml`): hosts (network namespaces), veth links between
//! them with IPv4/IPv6 addresses, routes, sysctls and forwarding.
//!
//! ```toml
//! summary = "client and server joined by one veth pair"
//! [defaults]
//! sysctls = { "net.ipv4.conf.all.rp_filter" = 0 }
//! [hosts.server]
//! [hosts.client]
//! routes = [{ dst = "default", via = "10.0.1.1", dev = "eth1", metric = 101 }]
//! [[links]]
//! a = { host = "server", ifname = "eth1", addrs = ["10.0.1.1/24", "dead:beef:1::1/64"] }
//! b = { host = "client", ifname = "eth1", addrs = ["10.0.1.2/24", "dead:beef:1::2/64"] }
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use crate::source::{KeyPath, Source, SpecError, SpecErrors};

/// A sysctl value: TOML integer or string, kept as the text written to /proc/sys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlValue(pub String);

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::units::IntOrString::deserialize(d).map(|v| SysctlValue(v.0))
    }
}

mod raw {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Topology {
        pub summary: String,
        #[serde(default)]
        pub defaults: Defaults,
        pub hosts: BTreeMap<String, Host>,
        #[serde(default)]
        pub links: Vec<Link>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Defaults {
        #[serde(default)]
        pub sysctls: BTreeMap<String, SysctlValue>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Host {
        #[serde(default)]
        pub forwarding: bool,
        #[serde(default)]
        pub sysctls: BTreeMap<String, SysctlValue>,
        #[serde(default)]
        pub routes: Vec<Route>,
        #[serde(default)]
        pub lo_addrs: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Route {
        pub dst: String,
        pub via: Option<String>,
        pub dev: Option<String>,
        pub metric: Option<u32>,
        pub table: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Link {
        pub a: End,
        pub b: End,
        pub mtu: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct End {
        pub host: String,
        pub ifname: String,
        #[serde(default)]
        pub addrs: Vec<String>,
    }
}

/// An address with its prefix length, as on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (24 in `10.0.1.1/24`).
    pub prefix: u8,
}

impl std::fmt::Display for IfAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses `10.0.1.1/24` or `dead:beef:1::1/64`.
pub fn parse_ifaddr(text: &str) -> Result<IfAddr, String> {
    let (a, p) = text
        .split_once('/')
        .ok_or_else(|| format!("expected an address with a prefix like \"10.0.1.1/24\", found {text:?}"))?;
    let addr: IpAddr = a.parse().map_err(|_| format!("{a:?} is not an IPv4 or IPv6 address"))?;
    let prefix: u8 = p.parse().map_err(|_| format!("{p:?} is not a prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(format!("prefix /{prefix} is longer than {max}"));
    }
    Ok(IfAddr { addr, prefix })
}

/// One route in a host (`ip route add <dst> [via <via>] [dev <dev>] [metric <m>] [table <t>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination; `None` is the default route.
    pub dst: Option<IfAddr>,
    /// Whether this is an IPv6 route.
    pub v6: bool,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface name (in this host).
    pub dev: Option<String>,
    /// Route metric (priority).
    pub metric: Option<u32>,
    /// Routing table id.
    pub table: Option<u32>,
}

/// One network namespace of the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The host's name (`client`, `server`, ...).
    pub name: String,
    /// Sysctls applied when the namespace is created, before links (defaults first).
    pub sysctls: Vec<(String, String)>,
    /// Routes, added after addresses.
    pub routes: Vec<Route>,
    /// Extra addresses on `lo`.
    pub lo_addrs: Vec<IfAddr>,
}

/// One side of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEnd {
    /// The host the interface lives in.
    pub host: String,
    /// The interface name in that host.
    pub ifname: String,
    /// Addresses on the interface (IPv6 ones without DAD).
    pub addrs: Vec<IfAddr>,
}

/// A veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// First end.
    pub a: LinkEnd,
    /// Second end.
    pub b: LinkEnd,
    /// MTU of both ends.
    pub mtu: Option<u32>,
}

/// A validated topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Name (the file stem).
    pub name: String,
    /// One line on what it is.
    pub summary: String,
    /// Hosts by name (sorted).
    pub hosts: BTreeMap<String, Host>,
    /// veth pairs.
    pub links: Vec<Link>,
}

impl Topology {
    /// Loads and validates `dir/<name>.toml`.
    pub fn load(dir: &Path, name: &str) -> Result<Topology, SpecErrors> {
        let src = Source::read(&dir.join(format!("{name}.toml")))?;
        Topology::from_source(name, &src)
    }

    /// Validates a topology from its source text.
    pub fn from_source(name: &str, src: &Source) -> Result<Topology, SpecErrors> {
        let raw: raw::Topology = src.deserialize()?;
        let mut errs = Vec::new();
        let topo = validate(name, raw, src, &mut errs);
        if errs.is_empty() { Ok(topo) } else { Err(SpecErrors(errs)) }
    }

    /// The interfaces of a host: (ifname, addresses).
    pub fn interfaces<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a LinkEnd> + 'a {
        self.links.iter().flat_map(|l| [&l.a, &l.b]).filter(move |e| e.host == host)
    }

    /// Every address a host has (links and lo extras).
    pub fn addresses<'a>(&'a self, host: &'a str) -> impl Iterator<Item = IpAddr> + 'a {
        let lo = self.hosts.get(host).into_iter().flat_map(|h| h.lo_addrs.iter().map(|a| a.addr));
        self.interfaces(host).flat_map(|e| e.addrs.iter().map(|a| a.addr)).chain(lo)
    }

    /// The host that has the interface `ifname`, if any.
    pub fn owner_of_interface(&self, ifname: &str) -> Option<&str> {
        self.links.iter().flat_map(|l| [&l.a, &l.b]).find(|e| e.ifname == ifname).map(|e| e.host.as_str())
    }

    /// The host owning an address (loopback addresses belong to every host).
    pub fn owner_of(&self, addr: IpAddr) -> Option<&str> {
        self.hosts.keys().map(String::as_str).find(|h| self.addresses(h).any(|a| a == addr))
    }
}

fn validate(name: &str, raw: raw::Topology, src: &Source, errs: &mut Vec<SpecError>) -> Topology {
    let root = KeyPath::root();
    let mut hosts = BTreeMap::new();
    if raw.hosts.is_empty() {
        errs.push(src.error(root.key("hosts"), "a topology needs at least one host"));
    }
    for (hname, h) in &raw.hosts {
        let hp = root.key("hosts").key(hname);
        if !valid_name(hname) {
            errs.push(src.error(hp.clone(), "host names are 1-20 characters of [a-z0-9_-]"));
        }
        let mut sysctls: Vec<(String, String)> =
            raw.defaults.sysctls.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        if h.forwarding {
            sysctls.push(("net.ipv4.ip_forward".into(), "1".into()));
            sysctls.push(("net.ipv6.conf.all.forwarding".into(), "1".into()));
        }
        for (k, v) in &h.sysctls {
            check_sysctl_name(k, &hp.key("sysctls").key(k), src, errs);
            sysctls.push((k.clone(), v.0.clone()));
        }
        let mut lo_addrs = Vec::new();
        for (i, a) in h.lo_addrs.iter().enumerate() {
            match parse_ifaddr(a) {
                Ok(a) => lo_addrs.push(a),
                Err(e) => errs.push(src.error(hp.key("lo_addrs").index(i), e)),
            }
        }
        hosts.insert(hname.clone(), Host { name: hname.clone(), sysctls, routes: Vec::new(), lo_addrs });
    }

    let mut links = Vec::new();
    let mut seen_if: Vec<(String, String)> = Vec::new();
    for (i, l) in raw.links.iter().enumerate() {
        let lp = root.key("links").index(i);
        let mut end = |e: &raw::End, side: &str| -> LinkEnd {
            let ep = lp.key(side);
            if !raw.hosts.contains_key(&e.host) {
                errs.push(src.error(ep.key("host"), format!("unknown host {:?}; hosts are: {}", e.host, list(raw.hosts.keys()))));
            }
            if e.ifname.is_empty() || e.ifname.len() > 15 || e.ifname == "lo" || e.ifname.contains(['/', ' ', ':']) {
                errs.push(src.error(ep.key("ifname"), "interface names are 1-15 characters, not `lo`, without '/', ':' or spaces"));
            }
            if seen_if.contains(&(e.host.clone(), e.ifname.clone())) {
                errs.push(src.error(ep.key("ifname"), format!("host {:?} already has an interface {:?}", e.host, e.ifname)));
            }
            seen_if.push((e.host.clone(), e.ifname.clone()));
            let mut addrs = Vec::new();
            for (j, a) in e.addrs.iter().enumerate() {
                match parse_ifaddr(a) {
                    Ok(a) => addrs.push(a),
                    Err(m) => errs.push(src.error(ep.key("addrs").index(j), m)),
                }
            }
            LinkEnd { host: e.host.clone(), ifname: e.ifname.clone(), addrs }
        };
        let a = end(&l.a, "a");
        let b = end(&l.b, "b");
        if let Some(m) = l.mtu
            && !(68..=65535).contains(&m)
        {
            errs.push(src.error(lp.key("mtu"), "MTU must be within 68..=65535"));
        }
        links.push(Link { a, b, mtu: l.mtu });
    }

    for (hname, h) in &raw.hosts {
        let hp = root.key("hosts").key(hname);
        for (i, r) in h.routes.iter().enumerate() {
            let rp = hp.key("routes").index(i);
            let via = match r.via.as_deref().map(str::parse::<IpAddr>) {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(_)) => {
                    errs.push(src.error(rp.key("via"), "expected an IPv4 or IPv6 gateway address"));
                    None
                }
            };
            let (dst, v6) = match r.dst.as_str() {
                "default" => (None, via.is_some_and(|v| v.is_ipv6())),
                "default6" => (None, true),
                d => match parse_ifaddr(d) {
                    Ok(a) => (Some(a), a.addr.is_ipv6()),
                    Err(m) => {
                        errs.push(src.error(rp.key("dst"), format!("{m} (or \"default\" / \"default6\")")));
                        (None, false)
                    }
                },
            };
            if let Some(v) = via
                && v.is_ipv6() != v6
            {
                errs.push(src.error(rp.key("via"), "gateway and destination are of different families"));
            }
            if let Some(dev) = &r.dev
                && !seen_if.contains(&(hname.clone(), dev.clone()))
            {
                errs.push(src.error(rp.key("dev"), format!("host {hname:?} has no interface {dev:?}")));
            }
            if via.is_none() && r.dev.is_none() {
                errs.push(src.error(rp.clone(), "a route needs `via`, `dev` or both"));
            }
            if let Some(host) = hosts.get_mut(hname) {
                host.routes.push(Route { dst, v6, via, dev: r.dev.clone(), metric: r.metric, table: r.table });
            }
        }
    }

    Topology { name: name.to_owned(), summary: raw.summary, hosts, links }
}

/// Sysctl names are dotted paths under /proc/sys without `..` or slashes.
pub(crate) fn check_sysctl_name(name: &str, at: &KeyPath, src: &Source, errs: &mut Vec<SpecError>) {
    let ok = name.starts_with("net.")
        && !name.contains("..")
        && !name.contains('/')
        && name.split('.').all(|p| !p.is_empty());
    if !ok {
        errs.push(src.error(at.clone(), format!("{name:?} is not a per-namespace sysctl name (net.*)")));
    }
}

pub(crate) fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 20 && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub(crate) fn list<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() { "(none)".into() } else { v.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIR: &str = r#"
summary = "two hosts"
[defaults]
sysctls = { "net.ipv4.conf.all.rp_filter" = 0 }
[hosts.server]
[hosts.client]
routes = [{ dst = "default", via = "10.0.1.1", dev = "eth1", metric = 101 },
          { dst = "default", via = "dead:beef:1::1", dev = "eth1", metric = 101 }]
[[links]]
a = { host = "server", ifname = "eth1", addrs = ["10.0.1.1/24", "dead:beef:1::1/64"] }
b = { host = "client", ifname = "eth1", addrs = ["10.0.1.2/24", "dead:beef:1::2/64"] }
"#;

    #[test]
    fn a_valid_pair() {
        let t = Topology::from_source("pair", &Source::new("pair.toml", PAIR)).unwrap();
        assert_eq!(t.hosts.len(), 2);
        let c = &t.hosts["client"];
        assert_eq!(c.sysctls, vec![("net.ipv4.conf.all.rp_filter".to_owned(), "0".to_owned())]);
        assert_eq!(c.routes.len(), 2);
        assert!(!c.routes[0].v6 && c.routes[1].v6);
        assert_eq!(t.owner_of("10.0.1.1".parse().unwrap()), Some("server"));
        assert_eq!(t.owner_of("dead:beef:1::2".parse().unwrap()), Some("client"));
        assert_eq!(t.owner_of("10.9.9.9".parse().unwrap()), None);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let bad = PAIR
            .replace("host = \"client\"", "host = \"clinet\"")
            .replace("10.0.1.1/24", "10.0.1.1/33")
            .replace("dev = \"eth1\", metric", "dev = \"eth9\", metric");
        let e = Topology::from_source("pair", &Source::new("pair.toml", bad)).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("pair.toml:11: links[0].b.host: unknown host \"clinet\""), "{text}");
        assert!(text.contains("pair.toml:10: links[0].a.addrs[0]: prefix /33"), "{text}");
        assert!(text.contains("pair.toml:7: hosts.client.routes[0].dev: host \"client\" has no interface \"eth9\""), "{text}");
    }
}
