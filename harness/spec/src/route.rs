//! Routes a case adds to a host, written in `ip route add` syntax:
//!
//! ```toml
//! [hosts.client]
//! routes = ["10.0.2.1 via 10.0.1.1 dev ns2eth1", "local 0.0.0.0/0 dev lo table 100"]
//! ```
//!
//! Grammar (a subset of `ip route add`): `[TYPE] PREFIX [via GW] [dev IFNAME] [table N]
//! [metric N] [type TYPE]`, where `PREFIX` is `default`, an address (a host route: /32 or
//! /128) or `address/len`, and `TYPE` is `unicast` (default), `local`, `blackhole`,
//! `unreachable` or `prohibit`. The runner installs each over rtnetlink in the host's
//! namespace (`harness/runner/src/route.rs`); a refusal names the route, errno and extack.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The route type (`rtm_type`), as `ip route` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteType {
    /// `unicast` (RTN_UNICAST), the default.
    #[default]
    Unicast,
    /// `local` (RTN_LOCAL): the destination is delivered locally (tproxy tables).
    Local,
    /// `blackhole` (RTN_BLACKHOLE).
    Blackhole,
    /// `unreachable` (RTN_UNREACHABLE).
    Unreachable,
    /// `prohibit` (RTN_PROHIBIT).
    Prohibit,
}

impl RouteType {
    /// Every type with its `ip route` word.
    pub const ALL: [(RouteType, &'static str); 5] = [
        (RouteType::Unicast, "unicast"),
        (RouteType::Local, "local"),
        (RouteType::Blackhole, "blackhole"),
        (RouteType::Unreachable, "unreachable"),
        (RouteType::Prohibit, "prohibit"),
    ];

    /// The `ip route` word.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(t, _)| *t == self).map_or("unicast", |(_, n)| n)
    }

    fn from_word(w: &str) -> Option<RouteType> {
        Self::ALL.iter().find(|(_, n)| *n == w).map(|(t, _)| *t)
    }
}

/// One route as a case writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// Type.
    pub kind: RouteType,
    /// Destination address (`0.0.0.0` / `::` for `default`).
    pub dst: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Gateway (same family as `dst`).
    pub via: Option<IpAddr>,
    /// Output interface name in the host.
    pub dev: Option<String>,
    /// Routing table id (main when absent).
    pub table: Option<u32>,
    /// Metric (priority).
    pub metric: Option<u32>,
}

impl HostRoute {
    /// Whether this is an IPv6 route.
    pub fn is_v6(&self) -> bool {
        self.dst.is_ipv6()
    }
}

impl fmt::Display for HostRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind != RouteType::Unicast {
            write!(f, "{} ", self.kind.name())?;
        }
        if self.prefix_len == 0 && self.dst.is_unspecified() {
            f.write_str("default")?;
        } else {
            let host_len = if self.is_v6() { 128 } else { 32 };
            if self.prefix_len == host_len {
                write!(f, "{}", self.dst)?;
            } else {
                write!(f, "{}/{}", self.dst, self.prefix_len)?;
            }
        }
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if let Some(t) = self.table {
            write!(f, " table {t}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

impl FromStr for HostRoute {
    type Err = String;

    fn from_str(s: &str) -> Result<HostRoute, String> {
        let mut words = s.split_whitespace().peekable();
        let mut kind = None;
        if let Some(t) = words.peek().and_then(|w| RouteType::from_word(w)) {
            kind = Some(t);
            words.next();
        }
        let prefix = words.next().ok_or("expected a destination (`default`, `10.0.2.1`, `10.0.2.0/24`)")?;
        let mut via = None;
        let mut dev = None;
        let mut table = None;
        let mut metric = None;
        while let Some(key) = words.next() {
            let value = words.next().ok_or_else(|| format!("`{key}` needs a value"))?;
            let dup = |set: bool| if set { Err(format!("`{key}` given twice")) } else { Ok(()) };
            match key {
                "via" => {
                    dup(via.is_some())?;
                    via = Some(value.parse::<IpAddr>().map_err(|_| format!("via: {value:?} is not an IPv4 or IPv6 address"))?);
                }
                "dev" | "oif" => {
                    dup(dev.is_some())?;
                    dev = Some(value.to_owned());
                }
                "table" => {
                    dup(table.is_some())?;
                    table = Some(match value {
                        "main" => 254,
                        "local" => 255,
                        n => n.parse::<u32>().map_err(|_| format!("table: {n:?} is not a table id (a number, `main` or `local`)"))?,
                    });
                }
                "metric" | "priority" | "preference" => {
                    dup(metric.is_some())?;
                    metric = Some(value.parse::<u32>().map_err(|_| format!("{key}: {value:?} is not a number"))?);
                }
                "type" => {
                    dup(kind.is_some())?;
                    kind = Some(RouteType::from_word(value).ok_or_else(|| {
                        format!("type: unknown route type {value:?}; expected one of {}", RouteType::ALL.map(|(_, n)| n).join(", "))
                    })?);
                }
                other => {
                    return Err(format!("unknown route keyword {other:?}; expected via, dev, table, metric or type"));
                }
            }
        }
        let (dst, prefix_len) = parse_prefix(prefix, via)?;
        if let Some(g) = via
            && g.is_ipv6() != dst.is_ipv6()
        {
            return Err(format!("via {g} is not of the destination's address family"));
        }
        Ok(HostRoute { kind: kind.unwrap_or_default(), dst, prefix_len, via, dev, table, metric })
    }
}

/// `default`, `ADDR` or `ADDR/LEN`; `default` takes its family from the gateway (IPv4 without).
fn parse_prefix(p: &str, via: Option<IpAddr>) -> Result<(IpAddr, u8), String> {
    if p == "default" {
        return Ok(match via {
            Some(IpAddr::V6(_)) => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            _ => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        });
    }
    let (addr, len) = match p.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (p, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| format!("{p:?} is not `default`, an address or address/length"))?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    let len = match len {
        None => max,
        Some(l) => l.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| format!("{p:?}: prefix length must be 0..={max}"))?,
    };
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(s: &str) -> HostRoute {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn host_route_via_dev() {
        let r = route("10.0.2.1 via 10.0.1.1 dev ns2eth1");
        assert_eq!(r.dst, "10.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!((r.prefix_len, r.kind), (32, RouteType::Unicast));
        assert_eq!(r.via, Some("10.0.1.1".parse().unwrap()));
        assert_eq!(r.dev.as_deref(), Some("ns2eth1"));
        assert_eq!(r.to_string(), "10.0.2.1 via 10.0.1.1 dev ns2eth1");
    }

    #[test]
    fn typed_routes_in_tables_both_spellings() {
        let a = route("local 0.0.0.0/0 dev lo table 100");
        let b = route("0.0.0.0/0 dev lo table 100 type local");
        assert_eq!(a, b);
        assert_eq!((a.kind, a.table, a.prefix_len), (RouteType::Local, Some(100), 0));
        assert_eq!(a.to_string(), "local default dev lo table 100");
        let v6 = route("local ::/0 dev lo table 100");
        assert!(v6.is_v6());
        assert_eq!(route("blackhole 10.0.0.0/8 table main metric 7").table, Some(254));
    }

    #[test]
    fn default_takes_the_gateway_family() {
        assert!(route("default via dead:beef:1::1 dev ns2eth1").is_v6());
        assert!(!route("default via 10.0.1.1").is_v6());
        assert_eq!(route("dead:beef:2::/64 via dead:beef:1::1").to_string(), "dead:beef:2::/64 via dead:beef:1::1");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| s.parse::<HostRoute>().unwrap_err();
        assert_eq!(e(""), "expected a destination (`default`, `10.0.2.1`, `10.0.2.0/24`)");
        assert_eq!(e("10.0.2.1 via"), "`via` needs a value");
        assert_eq!(e("10.0.2.1 via 10.0.1"), "via: \"10.0.1\" is not an IPv4 or IPv6 address");
        assert_eq!(e("10.0.2.1/33"), "\"10.0.2.1/33\": prefix length must be 0..=32");
        assert_eq!(e("10.0.2.1 via dead::1"), "via dead::1 is not of the destination's address family");
        assert_eq!(e("10.0.2.1 proto static"), "unknown route keyword \"proto\"; expected via, dev, table, metric or type");
        assert!(e("10.0.2.1 type nat").starts_with("type: unknown route type \"nat\""));
        assert_eq!(e("10.0.2.1 dev a dev b"), "`dev` given twice");
        assert_eq!(e("local 10.0.2.1 type local"), "`type` given twice");
    }
}
