//! Mutation test of the join port: for a sample of `cases/join/` files, one expected value at
//! a time (a MIB counter, an event count, an event-attribute count, an `mptcp_info` field of a
//! wait, a counter summed over hosts) is changed in an in-memory copy, the copy runs against
//! the live kernel, and it must fail with a report naming the field, the expected (mutated)
//! value and the observed one. Each original must pass first: a mutant of a failing case
//! proves nothing.
//!
//! Needs root (namespaces); without it every test prints why and passes. Runs the cases in
//! parallel (one thread per file).

use mptcp_runner::case::{self, RunContext, Verdict};
use mptcp_runner::library::Library;
use mptcp_spec::source::Source;
use mptcp_spec::{Case, Topology};

/// One mutation: in `file`, replace the first `from` by `to`; the failure report must contain
/// every string of `report`.
struct Mutation {
    file: &'static str,
    from: &'static str,
    to: &'static str,
    report: &'static [&'static str],
}

const MUTATIONS: &[Mutation] = &[
    // A counter of chk_join_nr.
    Mutation {
        file: "join/subflows/single_subflow.toml",
        from: "MPTcpExtMPJoinSynRx = 1  # chk_join_nr",
        to: "MPTcpExtMPJoinSynRx = 2  # chk_join_nr",
        report: &["server: MPTcpExtMPJoinSynRx: expected 2, observed 1"],
    },
    // A counter of chk_add_nr.
    Mutation {
        file: "join/signal/signal_address.toml",
        from: "MPTcpExtEchoAdd = 1  # chk_add_nr",
        to: "MPTcpExtEchoAdd = 0  # chk_add_nr",
        report: &["server: MPTcpExtEchoAdd: expected 0, observed 1"],
    },
    // An event count (chk_evt_nr).
    Mutation {
        file: "join/userspace/userspace_pm_no_dup_close_events_after_error.toml",
        from: "event_counts = { sub_closed = 2 }",
        to: "event_counts = { sub_closed = 3 }",
        report: &["client: number of [sub_closed] events: expected 3, observed 2"],
    },
    // A count of events carrying an attribute (chk_evt_nr ... error 2).
    Mutation {
        file: "join/userspace/userspace_pm_no_dup_close_events_after_error.toml",
        from: "{ error = 2 }",
        to: "{ error = 1 }",
        report: &["client: number of [sub_closed] events carrying `error`: expected 1, observed 2"],
    },
    // An mptcp_info field (chk_mptcp_info subflows 1 subflows 1).
    Mutation {
        file: "join/userspace/userspace_pm_create_destroy_subflow.toml",
        from: "side = \"server\", subflows = 1,",
        to: "side = \"server\", subflows = 2,",
        report: &["wait_info subflows 2", "not reached within", "mptcp_info: subflows=1"],
    },
    // The strict rule's reverse: a counter upstream expects 0 that moves.
    Mutation {
        file: "join/bind/multiple_bind_to_allow_joins_v4.toml",
        from: "MPTcpExtMPJoinAckRx = 1  # chk_join_nr: ack rx",
        to: "MPTcpExtMPJoinAckRx = 0  # chk_join_nr: ack rx",
        report: &["server: MPTcpExtMPJoinAckRx: expected 0, observed 1"],
    },
];

fn load(lib: &Library, rel: &str, text: &str) -> Case {
    let path = lib.cases.join(rel);
    let id = lib.case_id(&path);
    Case::from_source(id, &Source::new(path, text), &|name| Topology::load(&lib.topologies, name))
        .unwrap_or_else(|e| panic!("{rel}: the case does not load:\n{e}"))
}

#[test]
fn each_mutated_expectation_fails_with_a_clear_report() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("join mutation test: needs root (network namespaces); skipped");
        return;
    }
    let lib = Library::default_location();
    let ctx = RunContext::from_env(2);
    let mut files: Vec<&str> = MUTATIONS.iter().map(|m| m.file).collect();
    files.sort_unstable();
    files.dedup();
    let problems: Vec<String> = std::thread::scope(|s| {
        let originals: Vec<_> = files
            .iter()
            .map(|f| {
                let (lib, ctx) = (&lib, &ctx);
                s.spawn(move || {
                    let text = std::fs::read_to_string(lib.cases.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
                    let r = case::run(&load(lib, f, &text), ctx);
                    (r.verdict != Verdict::Pass).then(|| format!("{f}: the original must pass first, got {:?}\n{}", r.verdict, r.report))
                })
            })
            .collect();
        let mutants: Vec<_> = MUTATIONS
            .iter()
            .map(|m| {
                let (lib, ctx) = (&lib, &ctx);
                s.spawn(move || {
                    let text = std::fs::read_to_string(lib.cases.join(m.file)).unwrap_or_else(|e| panic!("{}: {e}", m.file));
                    assert!(text.contains(m.from), "{}: no {:?} to mutate (the case changed: update the mutation)", m.file, m.from);
                    let mutated = text.replacen(m.from, m.to, 1);
                    let r = case::run(&load(lib, m.file, &mutated), ctx);
                    let what = format!("{}: {:?} -> {:?}", m.file, m.from, m.to);
                    if r.verdict != Verdict::Fail {
                        return Some(format!("{what}: the mutant did not fail: {:?}", r.verdict));
                    }
                    let missing: Vec<&str> = m.report.iter().copied().filter(|want| !r.report.contains(want)).collect();
                    (!missing.is_empty()).then(|| format!("{what}: the report lacks {missing:?}:\n{}", r.report))
                })
            })
            .collect();
        originals.into_iter().chain(mutants).filter_map(|h| h.join().expect("a mutation thread panicked")).collect()
    });
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
