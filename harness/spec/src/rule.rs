//! Per-case policy-routing rules, written as `ip rule add` arguments:
//! `"[-4|-6] [from <prefix>] [to <prefix>] [fwmark <N>[/<mask>]] [iif <if>] [priority <N>] lookup <table>"`.
//!
//! tproxy's `"fwmark 1 lookup 100"` sends packets the nft `tproxy` rule marked to table 100,
//! where a `local` route (see [`crate::route`]) delivers them to the transparent listener.
//! The family is `-6` / `-4`, else that of `from` / `to`, else IPv4 (as `ip rule` does).

use std::net::IpAddr;

use crate::route::{parse_prefix, parse_u32, table_id};

/// One rule added in a host before traffic (`ip [-6] rule add ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// IPv6 rule (`ip -6 rule`).
    pub v6: bool,
    /// Source prefix.
    pub from: Option<(IpAddr, u8)>,
    /// Destination prefix.
    pub to: Option<(IpAddr, u8)>,
    /// Firewall mark and mask.
    pub fwmark: Option<(u32, Option<u32>)>,
    /// Input interface.
    pub iif: Option<String>,
    /// Priority (`FRA_PRIORITY`); the kernel picks one below the main rule when absent.
    pub priority: Option<u32>,
    /// The table to look up.
    pub table: u32,
}

impl Rule {
    /// Parses `ip rule add` arguments.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let mut words = text.split_whitespace();
        let mut family: Option<bool> = None;
        let (mut from, mut to, mut fwmark, mut iif, mut priority, mut table) = (None, None, None, None, None, None);
        while let Some(k) = words.next() {
            match k {
                "-4" => family = Some(false),
                "-6" => family = Some(true),
                _ => {
                    let v = words.next().ok_or_else(|| format!("`{k}` needs a value"))?;
                    match k {
                        "from" => from = Some(parse_prefix(v)?),
                        "to" => to = Some(parse_prefix(v)?),
                        "fwmark" => {
                            let (m, mask) = v.split_once('/').map_or((v, None), |(m, k)| (m, Some(k)));
                            let bad = || format!("fwmark {v:?} is not a number[/mask]");
                            let m = parse_u32(m).ok_or_else(bad)?;
                            let mask = mask.map(|k| parse_u32(k).ok_or_else(bad)).transpose()?;
                            fwmark = Some((m, mask));
                        }
                        "iif" | "dev" => iif = Some(v.to_owned()),
                        "priority" | "pref" | "preference" => priority = Some(parse_u32(v).ok_or_else(|| format!("priority {v:?} is not a number"))?),
                        "lookup" | "table" => table = Some(table_id(v)?),
                        o => return Err(format!("unknown rule keyword {o:?} (expected -4, -6, from, to, fwmark, iif, priority, lookup)")),
                    }
                }
            }
        }
        let table = table.ok_or("a rule needs `lookup <table>`")?;
        let addr_v6 = [from, to].into_iter().flatten().map(|(a, _)| a.is_ipv6()).collect::<Vec<_>>();
        if addr_v6.windows(2).any(|w| w[0] != w[1]) {
            return Err("`from` and `to` are of different families".into());
        }
        let v6 = match (family, addr_v6.first()) {
            (Some(f), Some(a)) if f != *a => return Err(format!("{} rule with an {} address", if f { "-6" } else { "-4" }, if *a { "IPv6" } else { "IPv4" })),
            (Some(f), _) => f,
            (None, Some(a)) => *a,
            (None, None) => false,
        };
        Ok(Rule { v6, from, to, fwmark, iif, priority, table })
    }
}

impl std::fmt::Display for Rule {
    /// The `ip rule add` arguments.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.v6 { "-6" } else { "-4" })?;
        if let Some((a, p)) = self.from {
            write!(f, " from {a}/{p}")?;
        }
        if let Some((a, p)) = self.to {
            write!(f, " to {a}/{p}")?;
        }
        if let Some((m, k)) = self.fwmark {
            write!(f, " fwmark {m:#x}")?;
            if let Some(k) = k {
                write!(f, "/{k:#x}")?;
            }
        }
        if let Some(i) = &self.iif {
            write!(f, " iif {i}")?;
        }
        if let Some(p) = self.priority {
            write!(f, " priority {p}")?;
        }
        write!(f, " lookup {}", self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tproxy_rules() {
        let r = Rule::parse("fwmark 1 lookup 100").unwrap();
        assert_eq!(r, Rule { v6: false, from: None, to: None, fwmark: Some((1, None)), iif: None, priority: None, table: 100 });
        assert_eq!(r.to_string(), "-4 fwmark 0x1 lookup 100");
        assert!(Rule::parse("-6 fwmark 0x1/0xff table 100").unwrap().v6);
        assert_eq!(Rule::parse("-6 fwmark 0x1/0xff table 100").unwrap().fwmark, Some((1, Some(255))));
    }

    #[test]
    fn the_family_follows_the_addresses() {
        let r = Rule::parse("from dead:beef:1::/64 priority 10 lookup main").unwrap();
        assert!(r.v6);
        assert_eq!((r.priority, r.table), (Some(10), 254));
        assert!(!Rule::parse("to 10.0.0.1 iif ns1eth1 lookup 7").unwrap().v6);
    }

    #[test]
    fn mistakes_are_explained() {
        let e = |t: &str| Rule::parse(t).unwrap_err();
        assert!(e("fwmark 1").contains("needs `lookup"));
        assert!(e("fwmark one lookup 100").contains("not a number"));
        assert!(e("-4 from dead::1 lookup 100").contains("-4 rule with an IPv6 address"));
        assert!(e("from 10.0.0.1 to dead::1 lookup 100").contains("different families"));
        assert!(e("fwmark 1 goto 100").contains("unknown rule keyword \"goto\""));
        assert!(e("lookup").contains("`lookup` needs a value"));
    }
}
