//! The expectation engine: observations in, mismatches out.
//!
//! The runner hands over what it observed (per host: counter deltas, ...) as plain values; the
//! judge compares them with a [`Case`]'s expectations. It is deterministic and pure, so every
//! rule here has a unit test that needs no kernel.

use std::collections::BTreeMap;
use std::fmt;

use mptcp_wire::mib::Snapshot;

use crate::case::{Case, CounterExpect, HostExpect};
use crate::counters;

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The host it is about.
    pub host: String,
    /// The observed thing (a counter name, a field ...).
    pub what: String,
    /// What the case expected, as text.
    pub expected: String,
    /// What was observed, as text.
    pub observed: String,
    /// Why this was checked.
    pub rule: Rule,
}

/// Why a check was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The case named it.
    Named,
    /// The strict-counter rule (an error/fallback counter the case did not name moved).
    Strict,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.rule {
            Rule::Named => "",
            Rule::Strict => " (strict: error/fallback counters the case does not name must stay 0)",
        };
        write!(f, "{}: {}: expected {}, observed {}{}", self.host, self.what, self.expected, self.observed, why)
    }
}

/// Counter names a case asserts on, per host (the runner checks the kernel has them).
pub fn named_counters(case: &Case) -> impl Iterator<Item = (&str, &str)> {
    case.expect.iter().flat_map(|(h, e)| e.counters.keys().map(move |c| (h.as_str(), c.as_str())))
}

/// Checks one host's counter deltas against its expectations.
pub fn check_counters(host: &str, expect: &HostExpect, delta: &Snapshot) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (name, want) in &expect.counters {
        let observed = delta.get(name);
        let ok = observed.is_some_and(|v| want.matches(v));
        if !ok {
            out.push(Mismatch {
                host: host.to_owned(),
                what: name.clone(),
                expected: want.to_string(),
                observed: observed.map_or_else(|| "(not exposed by this kernel)".to_owned(), |v| v.to_string()),
                rule: Rule::Named,
            });
        }
    }
    if expect.strict {
        for (name, v) in delta.non_zero() {
            if expect.counters.contains_key(name) {
                continue;
            }
            if counters::class_of(name).is_some_and(counters::Class::is_strict) {
                out.push(Mismatch {
                    host: host.to_owned(),
                    what: name.to_owned(),
                    expected: "0".into(),
                    observed: v.to_string(),
                    rule: Rule::Strict,
                });
            }
        }
    }
    out
}

/// Checks every host of a case (hosts without a delta count as all-zero), then the sums.
pub fn check_all_counters(case: &Case, deltas: &BTreeMap<String, Snapshot>) -> Vec<Mismatch> {
    let empty = Snapshot::default();
    let mut out: Vec<Mismatch> = case
        .expect
        .iter()
        .flat_map(|(h, e)| check_counters(h, e, deltas.get(h).unwrap_or(&empty)))
        .collect();
    for s in &case.expect_sums {
        let parts: Vec<(String, i64)> = s.hosts.iter().map(|h| (h.clone(), deltas.get(h).and_then(|d| d.get(&s.counter)).unwrap_or(0))).collect();
        let sum: i64 = parts.iter().map(|(_, v)| v).sum();
        if !s.want.matches(sum) {
            out.push(Mismatch {
                host: s.hosts.join("+"),
                what: format!("{} (sum)", s.counter),
                expected: s.want.to_string(),
                observed: format!("{sum} ({})", parts.iter().map(|(h, v)| format!("{h} {v}")).collect::<Vec<_>>().join(", ")),
                rule: Rule::Named,
            });
        }
    }
    out.extend(crate::observe::check_diffs(&case.expect_diffs, deltas));
    // An optional counter the kernel does not expose is not judged.
    out.retain(|m| {
        !(m.rule == Rule::Named
            && deltas.get(&m.host).is_some_and(|d| d.get(&m.what).is_none())
            && case.optional_counters.iter().any(|(h, c)| *h == m.host && *c == m.what))
    });
    out
}

/// The `[[rerun_if]]` conditions that hold on an attempt's deltas, each described as
/// `host counter = delta (> above): reason`. A failed attempt with one of them is set aside.
pub fn rerun_conditions(case: &Case, deltas: &BTreeMap<String, Snapshot>) -> Vec<String> {
    case.rerun_if
        .iter()
        .filter_map(|r| {
            let v = deltas.get(&r.host).and_then(|d| d.get(&r.counter))?;
            (v > r.above).then(|| format!("{} {} = {v} (> {}): {}", r.host, r.counter, r.above, r.reason))
        })
        .collect()
}

/// Whether the named (not strict) expectations of every host already hold: the runner polls
/// this until true or a deadline, because counters move asynchronously after a close.
pub fn named_counters_hold(case: &Case, deltas: &BTreeMap<String, Snapshot>) -> bool {
    let sums_hold = case.expect_sums.iter().all(|s| {
        s.want.matches(s.hosts.iter().map(|h| deltas.get(h).and_then(|d| d.get(&s.counter)).unwrap_or(0)).sum())
    });
    let diffs_hold = crate::observe::check_diffs(&case.expect_diffs, deltas).is_empty();
    sums_hold && diffs_hold && case.expect.iter().all(|(h, e)| {
        e.counters.iter().all(|(n, want)| {
            deltas.get(h).and_then(|d| d.get(n)).is_some_and(|v| want.matches(v))
                || (matches!(want, CounterExpect::Eq(0)) && deltas.get(h).and_then(|d| d.get(n)).is_none())
                || (deltas.get(h).is_some_and(|d| d.get(n).is_none()) && case.optional_counters.iter().any(|(oh, oc)| oh == h && oc == n))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(pairs: &[(&str, CounterExpect)], strict: bool) -> HostExpect {
        HostExpect { counters: pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(), strict, events: Default::default() }
    }

    #[test]
    fn named_counters_are_compared() {
        let e = expect(&[("MPTcpExtMPJoinSynRx", CounterExpect::Eq(1))], true);
        let d = Snapshot::from_pairs([("MPTcpExtMPJoinSynRx", 2)]);
        let m = check_counters("server", &e, &d);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].to_string(), "server: MPTcpExtMPJoinSynRx: expected 1, observed 2");
        assert!(check_counters("server", &e, &Snapshot::from_pairs([("MPTcpExtMPJoinSynRx", 1)])).is_empty());
    }

    #[test]
    fn missing_counters_say_so() {
        let e = expect(&[("MPTcpExtMPJoinSynRx", CounterExpect::Eq(0))], true);
        let m = check_counters("client", &e, &Snapshot::default());
        assert_eq!(m[0].observed, "(not exposed by this kernel)");
    }

    #[test]
    fn strict_rule_flags_unnamed_error_and_fallback_counters_only() {
        let d = Snapshot::from_pairs([
            ("MPTcpExtMPCapableFallbackACK", 1), // fallback: strict
            ("MPTcpExtMPRstTx", 2),              // error: strict
            ("MPTcpExtMPTCPRetrans", 5),         // noise: exempt
            ("MPTcpExtMPJoinSynRx", 3),          // activity: unchecked
            ("MPTcpExtMPCurrEstab", -1),         // gauge: unchecked
            ("MPTcpExtFromTheFuture", 9),        // unknown: unchecked
        ]);
        let m = check_counters("server", &expect(&[], true), &d);
        let names: Vec<&str> = m.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(names, ["MPTcpExtMPCapableFallbackACK", "MPTcpExtMPRstTx"]);
        assert!(m.iter().all(|m| m.rule == Rule::Strict));
        assert!(m[0].to_string().contains("strict"));
        // Naming a strict counter exempts it; turning strict off exempts all.
        let named = expect(&[("MPTcpExtMPRstTx", CounterExpect::Any), ("MPTcpExtMPCapableFallbackACK", CounterExpect::Eq(1))], true);
        assert!(check_counters("server", &named, &d).is_empty());
        assert!(check_counters("server", &expect(&[], false), &d).is_empty());
    }

    #[test]
    fn rerun_conditions_name_the_counter_and_the_reason() {
        let mut c = crate::case::tests_support::minimal_case();
        c.rerun_if.push(crate::case::RerunIf {
            host: "client".into(),
            counter: "TcpExtTCPSynRetrans".into(),
            above: 0,
            reason: "syncookie join state is best effort".into(),
        });
        // Client deltas of a failed "subflows and signal w. cookies" attempt on 6.18 (CI run on
        // 2026-11-20): two MP_JOIN SYNs went unanswered for 1 s, were retransmitted, and the
        // server's join table then held the second SYN-ACK's nonce (MPJoinAckHMacFailure = 2).
        let mut deltas = BTreeMap::new();
        deltas.insert(
            "client".to_owned(),
            Snapshot::from_pairs([("MPTcpExtMPJoinSynTx", 3), ("MPTcpExtMPRstTx", 2), ("TcpExtTCPSynRetrans", 2), ("TcpExtTCPTimeouts", 3)]),
        );
        let held = rerun_conditions(&c, &deltas);
        assert_eq!(held, ["client TcpExtTCPSynRetrans = 2 (> 0): syncookie join state is best effort"]);
        // The same attempt without the retransmission: no condition, the failure stands.
        deltas.insert("client".to_owned(), Snapshot::from_pairs([("MPTcpExtMPJoinSynTx", 3), ("TcpExtTCPSynRetrans", 0)]));
        assert!(rerun_conditions(&c, &deltas).is_empty());
        // A host without deltas, or a kernel without the counter: no condition.
        assert!(rerun_conditions(&c, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn optional_counters_are_judged_only_where_exposed() {
        let mut c = crate::case::tests_support::minimal_case();
        c.expect.get_mut("server").unwrap().counters.insert("MPTcpExtDssFallback".into(), CounterExpect::Eq(1));
        c.optional_counters.push(("server".into(), "MPTcpExtDssFallback".into()));
        let mut deltas = BTreeMap::new();
        deltas.insert("server".to_owned(), Snapshot::from_pairs([("MPTcpExtMPJoinSynRx", 0)]));
        assert!(check_all_counters(&c, &deltas).is_empty());
        assert!(named_counters_hold(&c, &deltas));
        deltas.insert("server".to_owned(), Snapshot::from_pairs([("MPTcpExtDssFallback", 0)]));
        assert_eq!(check_all_counters(&c, &deltas)[0].to_string(), "server: MPTcpExtDssFallback: expected 1, observed 0");
        assert!(!named_counters_hold(&c, &deltas));
    }

    #[test]
    fn polling_predicate_treats_absent_zero_as_holding() {
        let mut c = crate::case::tests_support::minimal_case();
        c.expect.get_mut("server").unwrap().counters.insert("MPTcpExtMPJoinSynRx".into(), CounterExpect::Eq(0));
        let deltas = BTreeMap::new();
        assert!(named_counters_hold(&c, &deltas));
        c.expect.get_mut("server").unwrap().counters.insert("MPTcpExtMPJoinAckRx".into(), CounterExpect::Eq(1));
        assert!(!named_counters_hold(&c, &deltas));
    }
}
