//! Per-case host routes, written as `ip route add` arguments:
//! `"<dst>|default [via <gw>] [dev <if>] [table <N>|main|local] [metric <N>] [type local]"`
//! (a leading `local` is `ip`'s other spelling of `type local`).
//!
//! `hosts.<h>.routes = ["0.0.0.0/0 dev lo table 100 type local"]` is what tproxy needs: a
//! `local` route in a side table, so that packets marked by the tproxy rule and looked up
//! there (`rules`) are delivered to a local socket whatever their destination.

use std::net::IpAddr;

/// `RT_TABLE_MAIN`, `RT_TABLE_LOCAL`, `RT_TABLE_DEFAULT`.
pub(crate) fn table_id(word: &str) -> Result<u32, String> {
    match word {
        "main" => Ok(254),
        "local" => Ok(255),
        "default" => Ok(253),
        n => parse_u32(n).filter(|t| *t != 0).ok_or_else(|| format!("expected a table number (1..) or main/local/default, found {n:?}")),
    }
}

/// A decimal or `0x` hexadecimal u32, as `ip` reads numbers.
pub(crate) fn parse_u32(w: &str) -> Option<u32> {
    match w.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => w.parse().ok(),
    }
}

/// An address with an optional `/prefix` (a bare address is a host route: /32 or /128).
pub(crate) fn parse_prefix(w: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = w.split_once('/').map_or((w, None), |(a, p)| (a, Some(p)));
    let addr: IpAddr = a.parse().map_err(|_| format!("{w:?} is not an address or prefix (10.0.0.0/24, dead:beef::/64)"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| format!("bad prefix length in {w:?} (0..={max})"))?,
    };
    Ok((addr, prefix))
}

/// One route added in a host before traffic (`ip route add ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// Destination address and prefix length (`default` is the family's `/0`).
    pub dst: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface (`lo` or one of the host's).
    pub dev: Option<String>,
    /// Routing table (`RT_TABLE_MAIN` when absent).
    pub table: Option<u32>,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
    /// `type local` (`RTN_LOCAL`, scope host): deliver locally.
    pub local: bool,
}

impl HostRoute {
    /// Parses `ip route add` arguments.
    pub fn parse(text: &str) -> Result<HostRoute, String> {
        let mut words = text.split_whitespace().peekable();
        let mut local = false;
        if words.peek() == Some(&"local") {
            local = true;
            words.next();
        }
        let dst_word = words.next().ok_or("empty route: expected \"<dst> [via <gw>] [dev <if>] [table N] [metric N] [type local]\"")?;
        let mut via = None;
        let mut dev = None;
        let mut table = None;
        let mut metric = None;
        while let Some(k) = words.next() {
            let v = words.next().ok_or_else(|| format!("`{k}` needs a value"))?;
            match k {
                "via" => via = Some(v.parse::<IpAddr>().map_err(|_| format!("via {v:?} is not an address"))?),
                "dev" | "oif" => dev = Some(v.to_owned()),
                "table" => table = Some(table_id(v)?),
                "metric" | "priority" | "preference" => metric = Some(parse_u32(v).ok_or_else(|| format!("metric {v:?} is not a number"))?),
                "type" => match v {
                    "local" => local = true,
                    "unicast" => local = false,
                    o => return Err(format!("route type {o:?} is not supported (unicast, local)")),
                },
                o => return Err(format!("unknown route keyword {o:?} (expected via, dev, table, metric, type)")),
            }
        }
        let (dst, prefix) = if dst_word == "default" {
            match via {
                Some(IpAddr::V6(_)) => (IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
                Some(IpAddr::V4(_)) => (IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
                None => return Err("`default` without `via` has no family: write 0.0.0.0/0 or ::/0".into()),
            }
        } else {
            parse_prefix(dst_word)?
        };
        if let Some(g) = via
            && g.is_ipv4() != dst.is_ipv4()
        {
            return Err(format!("gateway {g} and destination {dst_word} are of different families"));
        }
        if local && via.is_some() {
            return Err("a `local` route delivers to this host: it takes no `via`".into());
        }
        if via.is_none() && dev.is_none() {
            return Err("a route needs `via <gw>` or `dev <if>`".into());
        }
        Ok(HostRoute { dst, prefix, via, dev, table, metric, local })
    }

    /// Whether this is an IPv6 route.
    pub fn is_ipv6(&self) -> bool {
        self.dst.is_ipv6()
    }
}

impl std::fmt::Display for HostRoute {
    /// The `ip route add` arguments.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.local {
            f.write_str("local ")?;
        }
        write!(f, "{}/{}", self.dst, self.prefix)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tproxy_local_routes() {
        let r = HostRoute::parse("0.0.0.0/0 dev lo table 100 type local").unwrap();
        assert_eq!((r.dst, r.prefix, r.local, r.table, r.dev.as_deref()), ("0.0.0.0".parse().unwrap(), 0, true, Some(100), Some("lo")));
        assert_eq!(r, HostRoute::parse("local 0.0.0.0/0 dev lo table 100").unwrap());
        assert_eq!(r.to_string(), "local 0.0.0.0/0 dev lo table 100");
        let r6 = HostRoute::parse("local ::/0 dev lo table 100").unwrap();
        assert!(r6.is_ipv6() && r6.local);
    }

    #[test]
    fn gateways_metrics_and_defaults() {
        let r = HostRoute::parse("10.0.2.1 via 10.0.1.1 dev ns2eth1 metric 0x10 table main").unwrap();
        assert_eq!((r.prefix, r.via, r.metric, r.table), (32, Some("10.0.1.1".parse().unwrap()), Some(16), Some(254)));
        let d = HostRoute::parse("default via dead:beef:1::2").unwrap();
        assert_eq!((d.dst, d.prefix), ("::".parse().unwrap(), 0));
    }

    #[test]
    fn mistakes_are_explained() {
        let e = |t: &str| HostRoute::parse(t).unwrap_err();
        assert!(e("").contains("empty route"));
        assert!(e("default dev lo").contains("has no family"));
        assert!(e("10.0.0.0/33 dev lo").contains("bad prefix length"));
        assert!(e("10.0.0.0/8 via dead::1").contains("different families"));
        assert!(e("10.0.0.0/8 dev lo table 0").contains("table number"));
        assert!(e("10.0.0.0/8 dev lo proto static").contains("unknown route keyword \"proto\""));
        assert!(e("10.0.0.0/8 dev").contains("`dev` needs a value"));
        assert!(e("10.0.0.0/8 type blackhole dev lo").contains("not supported"));
        assert!(e("local 10.0.0.0/8 via 10.0.0.1").contains("takes no `via`"));
        assert!(e("10.0.0.0/8").contains("needs `via"));
    }
}
