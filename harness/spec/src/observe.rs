//! Expectations on what an impairment did: link statistics (`[expect.<host>.links.<dev>]`),
//! nftables named counters (`[expect.<host>.nft_counters]`) and a difference of two counters
//! of one host (`[[expect_diff]]`, e.g. stale subflows minus recovered ones).
//!
//! The runner reads the values (rtnetlink `IFLA_STATS64` before and after the case, `nft -j
//! list counters` after it, MIB deltas) and hands them over; the checks here are pure.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::case::{CounterExpect, RawCounter, counter_expect};
use crate::judge::{Mismatch, Rule};
use crate::source::{KeyPath, Source, SpecError};
use crate::topology::Topology;
use crate::units::{IntOrString, parse_size};
use mptcp_wire::mib::Snapshot;

pub(crate) mod raw {
    use super::*;

    /// `{ host, counter, minus, eq | ge | le }`.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectDiff {
        pub host: String,
        pub counter: String,
        pub minus: String,
        pub eq: Option<i64>,
        pub ge: Option<i64>,
        pub le: Option<i64>,
    }

    /// A byte or packet count expectation: `4096`, `"4MiB"`, or `{ ge = "1MiB", le = "2MiB" }`.
    #[derive(Debug)]
    pub enum RawAmount {
        One(IntOrString),
        Range { eq: Option<IntOrString>, ge: Option<IntOrString>, le: Option<IntOrString> },
    }

    impl<'de> Deserialize<'de> for RawAmount {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = RawAmount;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an amount (1024, \"4MiB\") or a table like { ge = \"1MiB\", le = \"2MiB\" }")
                }
                fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawAmount, E> {
                    Ok(RawAmount::One(IntOrString(v.to_string())))
                }
                fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawAmount, E> {
                    Ok(RawAmount::One(IntOrString(v.to_string())))
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawAmount, E> {
                    Ok(RawAmount::One(IntOrString(v.to_owned())))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<RawAmount, A::Error> {
                    let (mut eq, mut ge, mut le) = (None, None, None);
                    while let Some(k) = m.next_key::<String>()? {
                        let v: IntOrString = m.next_value()?;
                        match k.as_str() {
                            "eq" => eq = Some(v),
                            "ge" => ge = Some(v),
                            "le" => le = Some(v),
                            _ => return Err(serde::de::Error::unknown_field(&k, &["eq", "ge", "le"])),
                        }
                    }
                    Ok(RawAmount::Range { eq, ge, le })
                }
            }
            d.deserialize_any(V)
        }
    }
}

/// A statistic of a network interface (`struct rtnl_link_stats64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkStat {
    /// Bytes transmitted.
    TxBytes,
    /// Bytes received.
    RxBytes,
    /// Packets transmitted.
    TxPackets,
    /// Packets received.
    RxPackets,
}

impl LinkStat {
    /// Every statistic, with the name a case file uses.
    pub const ALL: [(&'static str, LinkStat); 4] = [
        ("tx_bytes", LinkStat::TxBytes),
        ("rx_bytes", LinkStat::RxBytes),
        ("tx_packets", LinkStat::TxPackets),
        ("rx_packets", LinkStat::RxPackets),
    ];

    /// The case-file name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, s)| *s == self).map_or("?", |(n, _)| n)
    }
}

/// The statistics of one interface at one moment (or a delta of two moments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// `tx_bytes`.
    pub tx_bytes: u64,
    /// `rx_bytes`.
    pub rx_bytes: u64,
    /// `tx_packets`.
    pub tx_packets: u64,
    /// `rx_packets`.
    pub rx_packets: u64,
}

impl LinkStats {
    /// One statistic.
    pub fn get(&self, s: LinkStat) -> u64 {
        match s {
            LinkStat::TxBytes => self.tx_bytes,
            LinkStat::RxBytes => self.rx_bytes,
            LinkStat::TxPackets => self.tx_packets,
            LinkStat::RxPackets => self.rx_packets,
        }
    }

    /// What grew from `self` to `later` (a counter reset reads as 0).
    pub fn delta(&self, later: &LinkStats) -> LinkStats {
        LinkStats {
            tx_bytes: later.tx_bytes.saturating_sub(self.tx_bytes),
            rx_bytes: later.rx_bytes.saturating_sub(self.rx_bytes),
            tx_packets: later.tx_packets.saturating_sub(self.tx_packets),
            rx_packets: later.rx_packets.saturating_sub(self.rx_packets),
        }
    }
}

/// How much a statistic of a host's interface must grow over the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkExpect {
    /// Host.
    pub host: String,
    /// Interface name in that host.
    pub dev: String,
    /// Which statistic.
    pub stat: LinkStat,
    /// What its growth must be.
    pub want: CounterExpect,
}

/// How many packets an nftables named counter of a host must have counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftCounterExpect {
    /// Host.
    pub host: String,
    /// The counter object's name (`counter <name> { }` in any table of the host).
    pub name: String,
    /// What its packet count must be.
    pub want: CounterExpect,
}

/// One host's `counter - minus` over the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectDiff {
    /// Host.
    pub host: String,
    /// The counter added.
    pub counter: String,
    /// The counter subtracted.
    pub minus: String,
    /// What the difference must be.
    pub want: CounterExpect,
}

fn amount(text: &IntOrString, at: &KeyPath, src: &Source, errs: &mut Vec<SpecError>) -> Option<i64> {
    match parse_size(&text.0) {
        Ok(n) => i64::try_from(n).map_err(|_| errs.push(src.error(at.clone(), "too large"))).ok(),
        Err(e) => {
            errs.push(src.error(at.clone(), e));
            None
        }
    }
}

fn amount_expect(v: &raw::RawAmount, at: &KeyPath, src: &Source, errs: &mut Vec<SpecError>) -> Option<CounterExpect> {
    match v {
        raw::RawAmount::One(n) => amount(n, at, src, errs).map(CounterExpect::Eq),
        raw::RawAmount::Range { eq, ge, le } => {
            let eq = eq.as_ref().map(|n| amount(n, &at.key("eq"), src, errs));
            let ge = ge.as_ref().map(|n| amount(n, &at.key("ge"), src, errs));
            let le = le.as_ref().map(|n| amount(n, &at.key("le"), src, errs));
            if [eq, ge, le].iter().any(|o| matches!(o, Some(None))) {
                return None;
            }
            let raw = RawCounter::Table { eq: eq.flatten(), ge: ge.flatten(), le: le.flatten(), unknown: Vec::new(), optional: false };
            counter_expect(&raw, at, src, errs)
        }
    }
}

/// Validates `[expect.<host>.links]`: interface names of the host, statistic names, amounts.
pub(crate) fn links(
    host: &str,
    raw: &BTreeMap<String, BTreeMap<String, raw::RawAmount>>,
    at: &KeyPath,
    topology: &Topology,
    src: &Source,
    errs: &mut Vec<SpecError>,
) -> Vec<LinkExpect> {
    let mut out = Vec::new();
    for (dev, stats) in raw {
        let dp = at.key(dev);
        if topology.hosts.contains_key(host) && !topology.interfaces(host).any(|i| &i.ifname == dev) {
            errs.push(src.error(dp.clone(), format!("host {host:?} has no interface {dev:?}")));
        }
        for (name, v) in stats {
            let sp = dp.key(name);
            let Some(&(_, stat)) = LinkStat::ALL.iter().find(|(n, _)| n == name) else {
                let names: Vec<&str> = LinkStat::ALL.iter().map(|(n, _)| *n).collect();
                errs.push(src.error(sp, format!("unknown link statistic {name:?}; expected one of {}", names.join(", "))));
                continue;
            };
            if let Some(want) = amount_expect(v, &sp, src, errs) {
                out.push(LinkExpect { host: host.to_owned(), dev: dev.clone(), stat, want });
            }
        }
    }
    out
}

/// Validates `[expect.<host>.nft_counters]`.
pub(crate) fn nft_counters(host: &str, raw: &BTreeMap<String, RawCounter>, at: &KeyPath, src: &Source, errs: &mut Vec<SpecError>) -> Vec<NftCounterExpect> {
    raw.iter()
        .filter_map(|(name, v)| {
            let want = counter_expect(v, &at.key(name), src, errs)?;
            Some(NftCounterExpect { host: host.to_owned(), name: name.clone(), want })
        })
        .collect()
}

/// Validates one `[[expect_diff]]`.
pub(crate) fn diff(raw: &raw::ExpectDiff, at: &KeyPath, topology: &Topology, src: &Source, errs: &mut Vec<SpecError>) -> Option<ExpectDiff> {
    if !topology.hosts.contains_key(&raw.host) {
        errs.push(src.error(at.key("host"), format!("unknown host {:?}", raw.host)));
    }
    for (key, name) in [("counter", &raw.counter), ("minus", &raw.minus)] {
        if !crate::counters::is_known(name) {
            errs.push(src.error(at.key(key), format!("unknown counter {name:?}")));
        }
    }
    let want = counter_expect(&RawCounter::Table { eq: raw.eq, ge: raw.ge, le: raw.le, unknown: Vec::new(), optional: false }, at, src, errs)?;
    Some(ExpectDiff { host: raw.host.clone(), counter: raw.counter.clone(), minus: raw.minus.clone(), want })
}

/// The observed `counter - minus` of a host (absent counters count as 0).
pub fn diff_value(d: &ExpectDiff, deltas: &BTreeMap<String, Snapshot>) -> (i64, i64) {
    let get = |n: &str| deltas.get(&d.host).and_then(|s| s.get(n)).unwrap_or(0);
    (get(&d.counter), get(&d.minus))
}

/// Checks the counter differences.
pub fn check_diffs(diffs: &[ExpectDiff], deltas: &BTreeMap<String, Snapshot>) -> Vec<Mismatch> {
    diffs
        .iter()
        .filter_map(|d| {
            let (a, b) = diff_value(d, deltas);
            (!d.want.matches(a - b)).then(|| Mismatch {
                host: d.host.clone(),
                what: format!("{} - {}", d.counter, d.minus),
                expected: d.want.to_string(),
                observed: format!("{} ({a} - {b})", a - b),
                rule: Rule::Named,
            })
        })
        .collect()
}

/// Checks link statistics: `observed` maps (host, dev) to what grew over the case; an
/// interface that could not be read is a mismatch.
pub fn check_links(expect: &[LinkExpect], observed: &BTreeMap<(String, String), Result<LinkStats, String>>) -> Vec<Mismatch> {
    expect
        .iter()
        .filter_map(|e| {
            let got = observed.get(&(e.host.clone(), e.dev.clone()));
            let (ok, text) = match got {
                Some(Ok(s)) => {
                    let v = s.get(e.stat);
                    (i64::try_from(v).is_ok_and(|v| e.want.matches(v)), v.to_string())
                }
                Some(Err(err)) => (false, format!("(not read: {err})")),
                None => (false, "(not read)".to_owned()),
            };
            (!ok).then(|| Mismatch {
                host: e.host.clone(),
                what: format!("link {} {} (growth over the case)", e.dev, e.stat.name()),
                expected: e.want.to_string(),
                observed: text,
                rule: Rule::Named,
            })
        })
        .collect()
}

/// Checks nftables counters: `observed` maps (host, counter name) to its packet count.
pub fn check_nft_counters(expect: &[NftCounterExpect], observed: &BTreeMap<(String, String), Result<u64, String>>) -> Vec<Mismatch> {
    expect
        .iter()
        .filter_map(|e| {
            let got = observed.get(&(e.host.clone(), e.name.clone()));
            let (ok, text) = match got {
                Some(Ok(v)) => (i64::try_from(*v).is_ok_and(|v| e.want.matches(v)), v.to_string()),
                Some(Err(err)) => (false, format!("(not read: {err})")),
                None => (false, "(not read)".to_owned()),
            };
            (!ok).then(|| Mismatch {
                host: e.host.clone(),
                what: format!("nft counter {} (packets)", e.name),
                expected: e.want.to_string(),
                observed: text,
                rule: Rule::Named,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::tests_support::minimal_case;

    #[test]
    fn link_stats_grow() {
        let a = LinkStats { tx_bytes: 100, rx_bytes: 5, tx_packets: 2, rx_packets: 1 };
        let b = LinkStats { tx_bytes: 1100, rx_bytes: 5, tx_packets: 12, rx_packets: 0 };
        assert_eq!(a.delta(&b), LinkStats { tx_bytes: 1000, rx_bytes: 0, tx_packets: 10, rx_packets: 0 });
        assert_eq!(a.delta(&b).get(LinkStat::TxPackets), 10);
        assert_eq!(LinkStat::RxBytes.name(), "rx_bytes");
    }

    #[test]
    fn link_expectations_are_judged() {
        let e = vec![
            LinkExpect { host: "client".into(), dev: "eth3".into(), stat: LinkStat::TxBytes, want: CounterExpect::Range { min: None, max: Some(500) } },
            LinkExpect { host: "client".into(), dev: "eth2".into(), stat: LinkStat::TxBytes, want: CounterExpect::Range { min: Some(10), max: None } },
        ];
        let mut obs = BTreeMap::new();
        obs.insert(("client".into(), "eth3".into()), Ok(LinkStats { tx_bytes: 400, ..Default::default() }));
        obs.insert(("client".into(), "eth2".into()), Ok(LinkStats { tx_bytes: 9, ..Default::default() }));
        let m = check_links(&e, &obs);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].to_string(), "client: link eth2 tx_bytes (growth over the case): expected >= 10, observed 9");
        obs.insert(("client".into(), "eth3".into()), Err("no such device".into()));
        let m = check_links(&e, &obs);
        assert_eq!(m.len(), 2);
        assert!(m[0].observed.contains("no such device"), "{m:?}");
    }

    #[test]
    fn differences_are_judged() {
        let d = vec![ExpectDiff { host: "client".into(), counter: "MPTcpExtSubflowStale".into(), minus: "MPTcpExtSubflowRecover".into(), want: CounterExpect::Eq(1) }];
        let mut deltas = BTreeMap::new();
        deltas.insert("client".to_owned(), Snapshot::from_pairs([("MPTcpExtSubflowStale", 3), ("MPTcpExtSubflowRecover", 2)]));
        assert!(check_diffs(&d, &deltas).is_empty());
        deltas.insert("client".to_owned(), Snapshot::from_pairs([("MPTcpExtSubflowStale", 3)]));
        let m = check_diffs(&d, &deltas);
        assert_eq!(m[0].to_string(), "client: MPTcpExtSubflowStale - MPTcpExtSubflowRecover: expected 1, observed 3 (3 - 0)");
    }

    #[test]
    fn nft_counters_are_judged() {
        let e = vec![NftCounterExpect { host: "client".into(), name: "echo_drop".into(), want: CounterExpect::Range { min: Some(1), max: None } }];
        let mut obs = BTreeMap::new();
        obs.insert(("client".to_owned(), "echo_drop".to_owned()), Ok(0));
        assert_eq!(check_nft_counters(&e, &obs)[0].to_string(), "client: nft counter echo_drop (packets): expected >= 1, observed 0");
        obs.insert(("client".to_owned(), "echo_drop".to_owned()), Ok(4));
        assert!(check_nft_counters(&e, &obs).is_empty());
    }

    fn load(extra: &str) -> Result<crate::Case, crate::SpecErrors> {
        let topo = minimal_case().topology;
        let text = format!(
            "summary = \"s\"\ntopology = \"pair\"\n[[connections]]\nclient = \"client\"\nserver = \"server\"\nconnect = \"10.0.1.1\"\n{extra}"
        );
        crate::Case::from_source("t::o".into(), &Source::new("cases/t/o.toml", &text), &|_| Ok(topo.clone()))
    }

    #[test]
    fn case_files_parse_links_nft_counters_and_diffs() {
        let c = load(
            "[expect.client.links.eth1]\ntx_bytes = { ge = \"1MiB\", le = 2000000 }\nrx_packets = 3\n\
             [expect.client.nft_counters]\necho_drop = { ge = 1 }\n\
             [[expect_diff]]\nhost = \"client\"\ncounter = \"MPTcpExtSubflowStale\"\nminus = \"MPTcpExtSubflowRecover\"\neq = 2\n",
        )
        .unwrap();
        assert_eq!(c.expect_links.len(), 2);
        let tx = c.expect_links.iter().find(|l| l.stat == LinkStat::TxBytes).unwrap();
        assert_eq!(tx.want, CounterExpect::Range { min: Some(1 << 20), max: Some(2_000_000) });
        assert_eq!(c.expect_nft[0].name, "echo_drop");
        assert_eq!(c.expect_diffs[0].want, CounterExpect::Eq(2));
    }

    #[test]
    fn bad_links_nft_counters_and_diffs_are_located() {
        let e = load("[expect.client.links.eth9]\ntx_bytes = 1\n").unwrap_err().to_string();
        assert!(e.contains("cases/t/o.toml:7: expect.client.links.eth9: host \"client\" has no interface \"eth9\""), "{e}");
        let e = load("[expect.client.links.eth1]\ntx_byte = 1\n").unwrap_err().to_string();
        assert!(e.contains("expect.client.links.eth1.tx_byte: unknown link statistic \"tx_byte\""), "{e}");
        let e = load("[expect.client.links.eth1]\ntx_bytes = { ge = \"lots\" }\n").unwrap_err().to_string();
        assert!(e.contains("expect.client.links.eth1.tx_bytes.ge: expected a size"), "{e}");
        let e = load("[[expect_diff]]\nhost = \"client\"\ncounter = \"MPTcpExtSubflowStal\"\nminus = \"MPTcpExtSubflowRecover\"\neq = 1\n").unwrap_err().to_string();
        assert!(e.contains("expect_diff[0].counter: unknown counter \"MPTcpExtSubflowStal\""), "{e}");
        let e = load("[[expect_diff]]\nhost = \"client\"\ncounter = \"MPTcpExtSubflowStale\"\nminus = \"MPTcpExtSubflowRecover\"\n").unwrap_err().to_string();
        assert!(e.contains("expect_diff[0]: expected either `eq`, or `ge` and/or `le`"), "{e}");
    }
}
