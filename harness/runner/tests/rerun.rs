//! `[[rerun_if]]` against the live kernel: a failed attempt that meets the condition is set
//! aside and the case runs again (at most 3 attempts, each reported); a failed attempt that
//! does not meet it is the verdict at once; a passing attempt is never rerun.
//!
//! The cases are in-memory variants of cases/join/syncookies/single_subflow_with_syn_cookies.toml
//! (the file the condition was written for): a wrong join count makes every attempt fail,
//! and the condition is put on a counter that certainly moves (`TcpActiveOpens` of the
//! client, one per connection and subflow) or certainly does not exceed its bound.
//!
//! The second test checks the other ways a failure can be expected (`flaky`, `xfail`) on
//! the same variants: a failure becomes an xfail with the reason, an xfail case that passes
//! an XPass, a flaky case that passes a pass.
//!
//! Needs root (namespaces); without it the test prints why and passes.

use mptcp_runner::case::{self, RunContext, Verdict};
use mptcp_runner::library::Library;
use mptcp_spec::source::Source;
use mptcp_spec::{Case, Topology};

const FILE: &str = "join/syncookies/single_subflow_with_syn_cookies.toml";

fn variant(lib: &Library, wrong_count: bool, rerun_above: Option<u32>) -> Case {
    marked(lib, wrong_count, rerun_above, "")
}

/// `variant` with `marker` (e.g. `flaky = { reason = "r" }`) added after the topology line.
fn marked(lib: &Library, wrong_count: bool, rerun_above: Option<u32>, marker: &str) -> Case {
    let path = lib.cases.join(FILE);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{FILE}: {e}"));
    // Drop the file's own conditions: this test sets its own.
    if let Some(at) = text.find("[[rerun_if]]") {
        let end = text[at..].find("\n\n").map_or(text.len(), |e| at + e + 2);
        text.replace_range(at..end, "");
    }
    if !marker.is_empty() {
        text = text.replacen("topology = \"base\"\n", &format!("topology = \"base\"\n{marker}\n"), 1);
    }
    if wrong_count {
        let from = "MPTcpExtMPJoinSynRx = 1  # chk_join_nr";
        assert!(text.contains(from), "{FILE}: no {from:?} (the case changed: update this test)");
        text = text.replacen(from, "MPTcpExtMPJoinSynRx = 2  # chk_join_nr", 1);
    }
    if let Some(above) = rerun_above {
        text.push_str(&format!("\n[[rerun_if]]\nhost = \"client\"\ncounter = \"TcpActiveOpens\"\nabove = {above}\nreason = \"test condition\"\n"));
    }
    let id = lib.case_id(&path);
    Case::from_source(id, &Source::new(path, &text), &|name| Topology::load(&lib.topologies, name))
        .unwrap_or_else(|e| panic!("{FILE}: the variant does not load:\n{e}\n{text}"))
}

#[test]
fn failed_attempts_meeting_the_condition_are_rerun_and_reported() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("rerun test: needs root (network namespaces); skipped");
        return;
    }
    let lib = Library::default_location();
    let ctx = RunContext::from_env(1);

    // Fails every time, condition met every time: three attempts, then the failure.
    let r = case::run(&variant(&lib, true, Some(0)), &ctx);
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.report);
    for want in [
        "attempt 1 failed and was set aside, because client TcpActiveOpens = 2 (> 0): test condition",
        "attempt 2 failed and was set aside",
        "attempt 3 (the last) met the rerun condition too",
        "server: MPTcpExtMPJoinSynRx: expected 2, observed 1",
    ] {
        assert!(r.report.contains(want), "the report lacks {want:?}:\n{}", r.report);
    }

    // Fails, condition not met: one attempt, no rerun.
    let r = case::run(&variant(&lib, true, Some(10)), &ctx);
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.report);
    assert!(!r.report.contains("set aside"), "rerun without its condition:\n{}", r.report);
    assert!(r.report.contains("server: MPTcpExtMPJoinSynRx: expected 2, observed 1"), "{}", r.report);

    // Passes, condition met: a pass is never rerun.
    let r = case::run(&variant(&lib, false, Some(0)), &ctx);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.report);
    assert!(!r.report.contains("set aside"), "{}", r.report);
}

#[test]
fn expected_failures_are_xfails_and_an_xfail_that_passes_is_an_xpass() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("xfail test: needs root (network namespaces); skipped");
        return;
    }
    let lib = Library::default_location();
    let ctx = RunContext::from_env(1);
    let flaky = "flaky = { reason = \"known to be flaky\" }";
    let xfail = "xfail = { reason = \"known broken\" }";
    let r = case::run(&marked(&lib, true, None, flaky), &ctx);
    assert_eq!(r.verdict, Verdict::XFail("flaky: known to be flaky".into()), "{}", r.report);
    let r = case::run(&marked(&lib, false, None, flaky), &ctx);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.report);
    let r = case::run(&marked(&lib, true, None, xfail), &ctx);
    assert_eq!(r.verdict, Verdict::XFail("known broken".into()), "{}", r.report);
    let r = case::run(&marked(&lib, false, None, xfail), &ctx);
    assert_eq!(r.verdict, Verdict::XPass, "{}", r.report);
}
