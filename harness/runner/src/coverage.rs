//! `mptcp-conformance coverage`: what the case library asserts on, against what the running
//! kernel exposes.
//!
//! Six categories, each "asserted by the library" vs "exposed by this kernel" (from the
//! probe, [`crate::probe`]):
//!
//! | category | asserted when a case ... | exposed |
//! |---|---|---|
//! | MPTcpExt counters | bounds it in `expect.<host>.counters`, an `expect_sum` or a `wait_counter` step (not `"any"`) | `counter:*` present |
//! | event types | lists it in `events`, bounds it in `event_counts`, or waits for it (`wait_event`) | the types the harness decodes; `listener_*` only with `events:listener` |
//! | PM commands | sends it in a step (`get`/`dump`/`get_limits` only with an expected answer or error; the others always check the kernel's answer) | `pm:cmd:*` present |
//! | endpoint flags | uses it on an endpoint (host setup, steps) or in an expected answer | `pm:<flag>` present |
//! | mptcp_info fields | bounds it in a `wait_info` step (aliases resolved) | `mptcp_info:*` present |
//! | net.mptcp sysctls | sets it (`hosts.<h>.sysctls`, `pm_type`, `sysctl` steps) | `sysctl:net.mptcp.*` present, read-only `available_*` excluded |
//!
//! The computation ([`asserted`], [`compare`]) is pure; [`render`] makes the text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use mptcp_spec::Case;
use mptcp_spec::case::CounterExpect;
use mptcp_spec::steps::{PmCommand, Step};
use mptcp_wire::event::EventKind;

use crate::probe::{Capabilities, FLAG_WORDS, PM_COMMAND_NAMES, info_field, pm_command_name};

/// The categories, in report order.
pub const CATEGORIES: [&str; 6] = ["MPTcpExt counters", "event types", "PM commands", "endpoint flags", "mptcp_info fields", "net.mptcp sysctls"];

/// Per category: name -> ids of the cases asserting on it.
pub type Asserted = BTreeMap<&'static str, BTreeMap<String, BTreeSet<String>>>;

/// Per category: the names the kernel exposes.
pub type Exposed = BTreeMap<&'static str, BTreeSet<String>>;

fn bounded(e: &CounterExpect) -> bool {
    !matches!(e, CounterExpect::Any | CounterExpect::Range { min: None, max: None })
}

struct Collect<'a> {
    out: &'a mut Asserted,
    case: &'a str,
}

impl Collect<'_> {
    fn add(&mut self, cat: &'static str, name: impl Into<String>) {
        self.out.entry(cat).or_default().entry(name.into()).or_default().insert(self.case.to_owned());
    }

    fn flags(&mut self, flags: &[String]) {
        for f in flags {
            let w = f.strip_prefix("no").filter(|w| FLAG_WORDS.contains(w)).unwrap_or(f);
            if FLAG_WORDS.contains(&w) {
                self.add(CATEGORIES[3], w.to_owned());
            }
        }
    }

    fn sysctl(&mut self, name: &str) {
        if let Some(s) = name.strip_prefix("net.mptcp.") {
            self.add(CATEGORIES[5], s.to_owned());
        }
    }

    fn steps(&mut self, steps: &[Step]) {
        for s in steps {
            match s {
                Step::Pm { cmd, expect, .. } => {
                    let answer = expect.error.is_some() || expect.endpoint.is_some() || expect.endpoints.is_some() || expect.limits.is_some();
                    let read = matches!(cmd, PmCommand::Get { .. } | PmCommand::Dump { .. } | PmCommand::GetLimits);
                    if answer || !read {
                        self.add(CATEGORIES[2], pm_command_name(cmd));
                    }
                    match cmd {
                        PmCommand::Add { flags, .. }
                        | PmCommand::Announce { flags, .. }
                        | PmCommand::SubflowCreate { flags, .. }
                        | PmCommand::SetFlags { flags, .. } => self.flags(flags),
                        _ => {}
                    }
                    for e in expect.endpoint.iter().chain(expect.endpoints.iter().flatten()) {
                        self.flags(&e.flags);
                    }
                }
                Step::WaitEvent { event, .. } => self.add(CATEGORIES[1], event.kind.clone()),
                Step::WaitCounter { counters, .. } => {
                    for (c, e) in counters {
                        for part in mptcp_spec::counters::sum_parts(c) {
                            if part.starts_with("MPTcpExt") && bounded(e) {
                                self.add(CATEGORIES[0], part.to_owned());
                            }
                        }
                    }
                }
                Step::WaitInfo { fields, .. } => {
                    for (f, e) in fields {
                        if bounded(e) {
                            self.add(CATEGORIES[4], info_field(f).to_owned());
                        }
                    }
                }
                Step::Sysctl { values, .. } => {
                    for (k, _) in values {
                        self.sysctl(k);
                    }
                }
                Step::Repeat { steps, .. } => self.steps(steps),
                _ => {}
            }
        }
    }
}

/// What the cases assert on.
pub fn asserted<'a>(cases: impl IntoIterator<Item = &'a Case>) -> Asserted {
    let mut out = Asserted::new();
    for case in cases {
        let mut c = Collect { out: &mut out, case: &case.id };
        for setup in case.hosts.values() {
            for (k, _) in &setup.sysctls {
                c.sysctl(k);
            }
            if setup.pm_type.is_some() {
                c.sysctl("net.mptcp.pm_type");
            }
            for e in &setup.endpoints {
                c.flags(&e.flags);
            }
        }
        for e in case.expect.values() {
            for (n, x) in &e.counters {
                if n.starts_with("MPTcpExt") && bounded(x) {
                    c.add(CATEGORIES[0], n.clone());
                }
            }
            for m in &e.events.seq {
                c.add(CATEGORIES[1], m.kind.clone());
            }
            for (k, x) in &e.events.counts {
                if bounded(x) {
                    c.add(CATEGORIES[1], k.clone());
                }
            }
        }
        for sum in &case.expect_sums {
            if sum.counter.starts_with("MPTcpExt") && bounded(&sum.want) {
                c.add(CATEGORIES[0], sum.counter.clone());
            }
        }
        c.steps(&case.steps);
    }
    out
}

/// What the kernel exposes, from the probe. Without a usable probe (no root) the harness's
/// own catalogues stand in, and the note says so.
pub fn exposed(caps: &Capabilities) -> (Exposed, Option<String>) {
    let mut out = Exposed::new();
    let note = caps.blocker.as_ref().map(|b| format!("the kernel could not be probed ({b}): the harness's own catalogues stand in for it"));
    let present = |prefix: &str| -> BTreeSet<String> {
        caps.list.iter().filter(|c| c.present).filter_map(|c| c.name.strip_prefix(prefix)).map(str::to_owned).collect()
    };
    if note.is_some() {
        out.insert(CATEGORIES[0], mptcp_spec::counters::MPTCP_COUNTERS.iter().map(|(n, _)| (*n).to_owned()).collect());
        out.insert(CATEGORIES[1], EventKind::ALL.iter().filter_map(|k| k.name()).map(str::to_owned).collect());
        out.insert(CATEGORIES[2], PM_COMMAND_NAMES.iter().map(|(_, n)| (*n).to_owned()).collect());
        out.insert(CATEGORIES[3], FLAG_WORDS.iter().map(|f| (*f).to_owned()).collect());
        out.insert(CATEGORIES[4], mptcp_wire::mptcp_info::MptcpInfo::field_names().map(str::to_owned).collect());
        out.insert(CATEGORIES[5], crate::probe::KNOWN_SYSCTLS.iter().filter(|s| !s.starts_with("available_")).map(|s| (*s).to_owned()).collect());
        return (out, note);
    }
    out.insert(CATEGORIES[0], caps.counters.iter().filter(|c| c.starts_with("MPTcpExt")).cloned().collect());
    let events: BTreeSet<String> = if caps.has("events") {
        EventKind::ALL
            .iter()
            .filter_map(|k| k.name())
            .filter(|n| !n.starts_with("listener_") || caps.has("events:listener"))
            .map(str::to_owned)
            .collect()
    } else {
        BTreeSet::new()
    };
    out.insert(CATEGORIES[1], events);
    out.insert(CATEGORIES[2], present("pm:cmd:").into_iter().filter(|n| !n.chars().all(|c| c.is_ascii_digit())).collect());
    out.insert(CATEGORIES[3], FLAG_WORDS.iter().filter(|f| caps.has(&format!("pm:{f}"))).map(|f| (*f).to_owned()).collect());
    out.insert(CATEGORIES[4], present("mptcp_info:"));
    out.insert(CATEGORIES[5], present("sysctl:net.mptcp.").into_iter().filter(|s| !s.starts_with("available_")).collect());
    (out, None)
}

/// One category compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Category name.
    pub category: &'static str,
    /// Exposed and asserted: name -> how many cases assert it.
    pub covered: BTreeMap<String, usize>,
    /// Exposed, asserted by no case.
    pub unasserted: Vec<String>,
    /// Asserted, but this kernel does not expose it (those cases skip here).
    pub not_exposed: Vec<String>,
    /// How many names the kernel exposes.
    pub exposed: usize,
}

impl Row {
    /// Covered share of what is exposed, in percent (100 when nothing is exposed).
    pub fn percent(&self) -> f64 {
        if self.exposed == 0 { 100.0 } else { 100.0 * self.covered.len() as f64 / self.exposed as f64 }
    }
}

/// Compares what is asserted with what is exposed, category by category.
pub fn compare(asserted: &Asserted, exposed: &Exposed) -> Vec<Row> {
    let empty_a = BTreeMap::new();
    let empty_e = BTreeSet::new();
    CATEGORIES
        .iter()
        .map(|cat| {
            let a = asserted.get(cat).unwrap_or(&empty_a);
            let e = exposed.get(cat).unwrap_or(&empty_e);
            Row {
                category: cat,
                covered: a.iter().filter(|(n, _)| e.contains(*n)).map(|(n, ids)| (n.clone(), ids.len())).collect(),
                unasserted: e.iter().filter(|n| !a.contains_key(*n)).cloned().collect(),
                not_exposed: a.keys().filter(|n| !e.contains(*n)).cloned().collect(),
                exposed: e.len(),
            }
        })
        .collect()
}

/// The report: a table, then per category the names no case asserts (and, `verbose`, the
/// asserted ones with how many cases assert each).
pub fn render(rows: &[Row], cases: usize, kernel: &str, note: Option<&str>, verbose: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "coverage of kernel {kernel} by {cases} case(s): asserted / exposed");
    if let Some(n) = note {
        let _ = writeln!(t, "note: {n}");
    }
    for r in rows {
        let _ = writeln!(t, "  {:<20} {:>4} / {:<4} {:>5.1}%", r.category, r.covered.len(), r.exposed, r.percent());
    }
    let strict_held = rows
        .first()
        .map_or(0, |r| r.unasserted.iter().filter(|n| mptcp_spec::counters::class_of(n).is_some_and(|c| c.is_strict())).count());
    if strict_held > 0
        && let Some(r) = rows.first()
    {
        let with_strict = r.covered.len() + strict_held;
        let pct = if r.exposed == 0 { 100.0 } else { 100.0 * with_strict as f64 / r.exposed as f64 };
        let _ = writeln!(
            t,
            "  MPTcpExt counters, counting the strict rule: {with_strict} / {} {pct:.1}% ({strict_held} unnamed error/fallback counters are asserted to stay 0 by every strict case)",
            r.exposed
        );
    }
    for r in rows {
        let _ = writeln!(t, "\n{} not asserted by any case ({}):", r.category, r.unasserted.len());
        if r.unasserted.is_empty() {
            let _ = writeln!(t, "  (none)");
        }
        for chunk in r.unasserted.chunks(4) {
            let _ = writeln!(t, "  {}", chunk.join(", "));
        }
        if !r.not_exposed.is_empty() {
            let _ = writeln!(t, "{} asserted but not exposed by this kernel: {}", r.category, r.not_exposed.join(", "));
        }
        if verbose && !r.covered.is_empty() {
            let _ = writeln!(t, "{} asserted (cases):", r.category);
            for (n, k) in &r.covered {
                let _ = writeln!(t, "  {n} ({k})");
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_spec::source::Source;

    fn case(id: &str, text: &str) -> Case {
        let topo = mptcp_spec::Topology::from_source(
            "pair",
            &Source::new("pair.toml", "summary = \"p\"\n[hosts.server]\n[hosts.client]\n[[links]]\na = { host = \"server\", ifname = \"e1\", addrs = [\"10.0.1.1/24\"] }\nb = { host = \"client\", ifname = \"e1\", addrs = [\"10.0.1.2/24\"] }\n"),
        )
        .unwrap();
        Case::from_source(id.into(), &Source::new("c.toml", text), &|_| Ok(topo.clone())).unwrap()
    }

    const A: &str = r#"
summary = "a"
topology = "pair"
[hosts.server]
sysctls = { "net.mptcp.checksum_enabled" = 1 }
[hosts.client]
endpoints = [{ addr = "10.0.1.2", flags = ["subflow"] }]
[[connections]]
client = "client"
server = "server"
connect = "10.0.1.1"
[[steps]]
host = "client"
pm = "dump"
[[steps]]
host = "client"
pm = "get_limits"
limits = { add_addr_accepted = 0, subflows = 2 }
[[steps]]
wait_info = { side = "client", extra_subflows = 1, token = "any" }
[expect.server]
counters = { MPTcpExtMPJoinSynRx = 1, MPTcpExtMPTCPRetrans = "any", TcpExtSyncookiesSent = 0 }
events = ["created"]
event_counts = { closed = "any", sub_established = 1 }
"#;

    const B: &str = r#"
summary = "b"
topology = "pair"
[hosts.server]
pm_type = "userspace"
[[steps]]
host = "server"
pm = "set_flags"
id = 1
flags = ["nofullmesh"]
[[steps]]
host = "server"
wait_counter = { MPTcpExtMPJoinSynRx = { ge = 1 } }
"#;

    fn exposed_fixture() -> Exposed {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        let mut e = Exposed::new();
        e.insert(CATEGORIES[0], set(&["MPTcpExtMPJoinSynRx", "MPTcpExtMPTCPRetrans", "MPTcpExtRmAddr"]));
        e.insert(CATEGORIES[1], set(&["created", "closed", "sub_established", "announced"]));
        e.insert(CATEGORIES[2], set(&["get_addr", "get_limits", "set_flags", "add_addr"]));
        e.insert(CATEGORIES[3], set(&["subflow", "fullmesh", "signal"]));
        e.insert(CATEGORIES[4], set(&["subflows", "token"]));
        e.insert(CATEGORIES[5], set(&["checksum_enabled", "pm_type", "enabled"]));
        e
    }

    #[test]
    fn asserted_names_per_category() {
        let cases = [case("t::a", A), case("t::b", B)];
        let a = asserted(&cases);
        let names = |cat: &str| a.get(cat).map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
        assert_eq!(names(CATEGORIES[0]), ["MPTcpExtMPJoinSynRx"], "\"any\" and TcpExt are not counted");
        assert_eq!(a[CATEGORIES[0]]["MPTcpExtMPJoinSynRx"].len(), 2);
        assert_eq!(names(CATEGORIES[1]), ["created", "sub_established"]);
        assert_eq!(names(CATEGORIES[2]), ["get_limits", "set_flags"], "a dump without an expected answer asserts nothing");
        assert_eq!(names(CATEGORIES[3]), ["fullmesh", "subflow"]);
        assert_eq!(names(CATEGORIES[4]), ["subflows"]);
        assert_eq!(names(CATEGORIES[5]), ["checksum_enabled", "pm_type"]);
    }

    #[test]
    fn compared_with_the_kernel() {
        let cases = [case("t::a", A), case("t::b", B)];
        let rows = compare(&asserted(&cases), &exposed_fixture());
        assert_eq!(rows[0].unasserted, ["MPTcpExtMPTCPRetrans", "MPTcpExtRmAddr"]);
        assert_eq!(format!("{:.1}", rows[0].percent()), "33.3");
        assert_eq!(rows[2].unasserted, ["add_addr", "get_addr"]);
        let text = render(&rows, 2, "6.18.0", None, false);
        assert!(text.starts_with("coverage of kernel 6.18.0 by 2 case(s): asserted / exposed\n  MPTcpExt counters       1 / 3     33.3%\n"), "{text}");
        assert!(text.contains("\nevent types not asserted by any case (2):\n  announced, closed\n"), "{text}");
        assert!(text.contains("net.mptcp sysctls not asserted by any case (1):\n  enabled\n"), "{text}");
    }

    #[test]
    fn asserted_names_the_kernel_lacks_are_listed() {
        let mut e = exposed_fixture();
        e.get_mut(CATEGORIES[3]).unwrap().remove("fullmesh");
        let rows = compare(&asserted(&[case("t::b", B)]), &e);
        assert_eq!(rows[3].not_exposed, ["fullmesh"]);
        assert!(render(&rows, 1, "x", None, false).contains("endpoint flags asserted but not exposed by this kernel: fullmesh\n"));
    }
}
