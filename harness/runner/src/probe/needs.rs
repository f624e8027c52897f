//! What a case needs: capability names inferred from what it uses, and the skip reason that
//! names every missing one.

use std::collections::BTreeMap;

use mptcp_spec::Case;
use mptcp_spec::steps::{PmCommand, Step};

use super::{Capabilities, FLAG_WORDS};

/// The capabilities a case needs, each with where it uses it (first use): its `requires`,
/// every counter it names, the endpoint flags, PM commands and `pm_type` it uses, its
/// `net.mptcp` sysctls, `mptcp_info` fields of `wait_info` steps, event expectations
/// (`events`, and `events:listener` for listener events), checks (`diag`, `full_info`,
/// `tcpinfo`, `subflow_addrs` by name), nft rules (`nft`, `nft:mptcp`), `tc` commands (`tc`,
/// `qdisc:<kind>`, `tc:fw|pedit|csum`), counter sums, and `ipv6` when an address is IPv6.
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
        if let Some(rules) = &setup.nft {
            n.nft(rules, &format!("{at}.nft"));
        }
        for (i, cmd) in setup.tc.iter().enumerate() {
            n.tc(cmd, &format!("{at}.tc[{i}]"));
        }
        if !setup.offloads.is_empty() {
            n.add("ethtool".into(), format!("{at}.offloads"));
        }
        if !setup.rules.is_empty() {
            n.add("ip_rule".into(), format!("{at}.rules"));
        }
        if setup.rules.iter().any(|r| r.v6) || setup.routes.iter().any(|r| r.is_ipv6()) {
            n.add("ipv6".into(), format!("{at}.rules"));
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
        if c.transparent {
            n.add("sockopt:transparent".into(), format!("{at}.transparent"));
        }
        if c.connect.is_ipv6() || c.listen.is_ipv6() {
            n.add("ipv6".into(), at.clone());
        }
        if c.fastopen {
            n.add("mptfo".into(), format!("{at}.fastopen"));
        }
    }
    for (host, e) in &case.expect {
        for c in e.counters.keys() {
            if case.optional_counters.iter().any(|(h, oc)| h == host && oc == c) {
                continue;
            }
            n.add(format!("counter:{c}"), format!("expect.{host}.counters"));
        }
        let kinds = e.events.seq.iter().map(|m| m.kind.as_str()).chain(e.events.counts.keys().map(String::as_str));
        for k in kinds {
            n.event(k, &format!("expect.{host}.events"));
        }
    }
    for (i, sum) in case.expect_sums.iter().enumerate() {
        n.add(format!("counter:{}", sum.counter), format!("expect_sum[{i}]"));
    }
    for (i, d) in case.expect_diffs.iter().enumerate() {
        n.add(format!("counter:{}", d.counter), format!("expect_diff[{i}]"));
        n.add(format!("counter:{}", d.minus), format!("expect_diff[{i}]"));
    }
    for e in &case.expect_nft {
        n.add("nft".into(), format!("expect.{}.nft_counters", e.host));
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

    fn nft(&mut self, rules: &str, at: &str) {
        self.add("nft".into(), at);
        if rules.contains("option mptcp") {
            self.add("nft:mptcp".into(), at);
        }
        if rules.contains("tproxy") {
            self.add("nft:tproxy".into(), at);
        }
        // A raw TCP option match: `tcp option @<kind>,<offset>,<length>`.
        if rules.contains("tcp option @") {
            self.add("nft:tcp_option_raw".into(), at);
        }
    }

    /// A `tc` command line (words after `tc`): the tool, and the qdisc kinds, the fw
    /// classifier and the pedit / csum actions it names.
    fn tc(&mut self, cmd: &str, at: &str) {
        self.add("tc".into(), at);
        for w in cmd.split_whitespace() {
            match w {
                "netem" | "tbf" | "htb" | "clsact" => self.add(format!("qdisc:{w}"), at),
                "fw" | "pedit" | "csum" => self.add(format!("tc:{w}"), at),
                _ => {}
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
                        PmCommand::Dump { token: Some(_) } => self.add("pm:dump_by_token".into(), at.clone()),
                        PmCommand::Get { token: Some(_), .. } => self.add("pm:get_by_token".into(), at.clone()),
                        _ => {}
                    }
                    for e in expect.endpoint.iter().chain(expect.endpoints.iter().flatten()) {
                        self.flags(&e.flags, at);
                    }
                }
                Step::WaitEvent { at, event, .. } => self.event(&event.kind, at),
                Step::WaitCounter { at, counters, .. } => {
                    for (c, _) in counters {
                        for part in mptcp_spec::counters::sum_parts(c) {
                            self.add(format!("counter:{part}"), at.clone());
                        }
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
                    for cap in check_needs(name) {
                        self.add((*cap).into(), at.clone());
                    }
                }
                Step::Nft { at, rules, .. } => self.nft(rules, at),
                Step::Repeat { steps, .. } => self.steps(steps),
                _ => {}
            }
        }
    }
}

/// What a built-in check reads beyond its family (`diag`, `tcpinfo`, ...): the counter,
/// `mptcp_info` fields or accounting whose absence makes it unable to run.
fn check_needs(name: &str) -> &'static [&'static str] {
    match name {
        "diag_cestab" => &["counter:MPTcpExtMPCurrEstab"],
        "diag_msk_inuse" => &["protocols:mptcp_inuse"],
        "diag_last_time_info" => &["mptcp_info:last_data_sent", "mptcp_info:last_data_recv", "mptcp_info:last_ack_recv"],
        "sockopt_info" => &["mptcp_info:bytes_sent", "mptcp_info:bytes_received", "mptcp_info:bytes_acked"],
        _ => &[],
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
    mptcp_wire::mptcp_info::MptcpInfo::canonical(name)
}

/// Why a case cannot run here: the blocker, or every missing capability it needs.
/// The counter expectations a case can run without on this kernel, as upstream does (a
/// counter the kernel does not expose makes that one check "[skip]", not the subtest):
/// `(host, counter)` for each counter named only in `expect.<host>.counters` (not waited on,
/// summed or required) that the kernel lacks. Empty in strict mode (`strict`, see
/// [`super::Strictness::requested`]), where a missing counter stays a missing capability.
pub fn unchecked_counters(caps: &Capabilities, case: &Case, strict: bool) -> Vec<(String, String)> {
    if caps.blocker.is_some() || strict {
        return Vec::new();
    }
    let mut elsewhere = Needs::default();
    for r in &case.requires {
        elsewhere.add(r.clone(), "requires");
    }
    for (i, sum) in case.expect_sums.iter().enumerate() {
        elsewhere.add(format!("counter:{}", sum.counter), format!("expect_sum[{i}]"));
    }
    elsewhere.steps(&case.steps);
    let mut out = Vec::new();
    for (host, e) in &case.expect {
        for c in e.counters.keys() {
            let cap = format!("counter:{c}");
            if !elsewhere.0.contains_key(&cap) && !caps.has(&cap) {
                out.push((host.clone(), c.clone()));
            }
        }
    }
    out
}

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


#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures::*;

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
    fn host_nft_and_tc_and_sums() {
        let c = case(&(RICH.replace(
            "limits = { subflows = 2 }\n",
            "limits = { subflows = 2 }\nnft = \"table inet t { chain c { type filter hook input priority 0; tcp option mptcp subtype 4 drop; } }\"\ntc = [\"qdisc add dev eth1 root netem delay 10ms\", \"filter add dev eth1 ingress protocol ip prio 1 handle 1 fw action pedit ex munge ip ttl set 1\"]\n",
        ) + "[[expect_sum]]\ncounter = \"MPTcpExtRmAddr\"\nhosts = [\"server\", \"client\"]\neq = 1\n"));
        let n = needs(&c);
        assert_eq!(n["nft:mptcp"], "hosts.client.nft");
        assert_eq!(n["tc"], "hosts.client.tc[0]");
        assert_eq!(n["qdisc:netem"], "requires", "first use wins");
        assert_eq!(n["tc:fw"], "hosts.client.tc[1]");
        assert_eq!(n["tc:pedit"], "hosts.client.tc[1]");
        assert_eq!(n["counter:MPTcpExtRmAddr"], "expect_sum[0]");
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
    fn counters_only_expected_are_left_unchecked_where_missing() {
        // MPJoinAckRx and MPJoinSynTx are missing here; MPJoinAckRx is only expected (soft),
        // MPJoinSynTx is also waited on (hard): only the first is left out.
        let text = RICH.replace("MPTcpExtMPJoinSynRx = 1\n", "MPTcpExtMPJoinSynRx = 1\nMPTcpExtMPJoinAckRx = 1\nMPTcpExtMPJoinSynTx = 1\n");
        let c = case(&text);
        let all: Vec<String> = needs(&c).into_keys().collect();
        let present: Vec<&str> = all.iter().map(String::as_str).filter(|n| !n.starts_with("counter:")).collect();
        let k = caps(&present, &[]);
        assert_eq!(unchecked_counters(&k, &c, false), vec![("server".to_owned(), "MPTcpExtMPJoinAckRx".to_owned())]);
        assert!(unchecked_counters(&k, &c, true).is_empty(), "strict mode keeps them missing");
        let reduced = c.without_counters(&unchecked_counters(&k, &c, false));
        let why = skip_reason(&k, &reduced).unwrap();
        assert!(why.contains("counter:MPTcpExtMPJoinSynTx") && !why.contains("MPJoinAckRx"), "{why}");
        assert!(reduced.expect["server"].counters.contains_key("MPTcpExtMPJoinSynRx"), "present counters stay checked");
    }

    #[test]
    fn unknown_capabilities_are_missing_with_a_reason() {
        let c = caps(&[], &["pm"]);
        assert_eq!(c.missing_reason("pm:cmd:announce").unwrap(), "needs pm, which is missing: pm is not here");
        assert!(c.missing_reason("frobnicate").unwrap().contains("not a capability"));
        assert!(c.has("counter:MPTcpExtMPJoinSynRx"));
        assert!(!c.has("counter:MPTcpExtNope"));
    }
}
