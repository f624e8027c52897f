//! The events a run emits, the totals they add up to, and kselftest's exit codes.
//!
//! The runner emits, in this order: [`Event::RunStarted`] once; for every case it runs,
//! [`Event::CaseStarted`] then [`Event::CaseFinished`] (cases run in parallel, so the events of
//! different cases interleave, but a case's `Finished` always follows its `Started`); then
//! [`Event::RunFinished`] once. Every reporter consumes the same stream, each behind the same
//! lock, so a reporter never sees two events at once.

use std::borrow::Cow;
use std::io;
use std::time::Duration;

use crate::case::{CaseResult, Verdict};

/// kselftest exit code: every test passed (`KSFT_PASS` in `kselftest.h`).
pub const KSFT_PASS: u8 = 0;
/// kselftest exit code: a test failed (`KSFT_FAIL`).
pub const KSFT_FAIL: u8 = 1;
/// kselftest exit code: a known failure (`KSFT_XFAIL`). This program never exits with it: an
/// xfail counts as a pass, because CI treats every code but 0 and 4 as a failure.
pub const KSFT_XFAIL: u8 = 2;
/// kselftest exit code: a known failure passed (`KSFT_XPASS`). This program exits with
/// [`KSFT_FAIL`] instead, for the same reason.
pub const KSFT_XPASS: u8 = 3;
/// kselftest exit code: nothing could run here (`KSFT_SKIP`).
pub const KSFT_SKIP: u8 = 4;

/// A verdict without its payload: what reporters count and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Every expectation held.
    Pass,
    /// Something did not hold.
    Fail,
    /// Could not run here.
    Skip,
    /// A known-broken case failed as declared.
    XFail,
    /// A known-broken case passed.
    XPass,
}

impl Kind {
    /// The kind of a verdict.
    pub fn of(verdict: &Verdict) -> Kind {
        match verdict {
            Verdict::Pass => Kind::Pass,
            Verdict::Fail => Kind::Fail,
            Verdict::Skip(_) => Kind::Skip,
            Verdict::XFail(_) => Kind::XFail,
            Verdict::XPass => Kind::XPass,
        }
    }

    /// The lowercase word machine-readable reports use: `pass`, `fail`, `skip`, `xfail`, `xpass`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pass => "pass",
            Kind::Fail => "fail",
            Kind::Skip => "skip",
            Kind::XFail => "xfail",
            Kind::XPass => "xpass",
        }
    }
}

/// How many times the selection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    /// Iterations at most; `None`: until one fails.
    pub times: Option<usize>,
    /// Stop after the first iteration with a failure.
    pub until_fail: bool,
}

impl Repeat {
    /// A single run.
    pub const ONCE: Repeat = Repeat { times: Some(1), until_fail: false };

    /// Whether there may be more than one iteration (results then carry their iteration).
    pub fn repeats(&self) -> bool {
        self.times != Some(1)
    }

    /// How many results the run will report for `cases` selected cases, if known in advance.
    pub fn planned(&self, cases: usize) -> Option<usize> {
        match (self.times, self.until_fail) {
            (Some(1), _) => Some(cases),
            (Some(n), false) => Some(n.saturating_mul(cases)),
            _ => None,
        }
    }
}

/// A case whose verdict changed between iterations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstable {
    /// Case id.
    pub id: String,
    /// Its verdict in each iteration, in order.
    pub verdicts: Vec<Kind>,
}

impl Unstable {
    /// One line: how often each verdict came, and in which iterations the less common ones
    /// did: `pass 19, fail 1 of 20 (fail: iteration 7)`.
    pub fn summary(&self) -> String {
        verdict_counts(&self.verdicts)
    }
}

fn verdict_counts(verdicts: &[Kind]) -> String {
    let mut counts: std::collections::BTreeMap<Kind, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, k) in verdicts.iter().enumerate() {
        counts.entry(*k).or_default().push(i + 1);
    }
    // The most common verdict (on a tie, the first in Kind order: pass before fail).
    let common = counts.iter().max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0))).map(|(k, _)| *k);
    let parts: Vec<String> = counts.iter().map(|(k, its)| format!("{} {}", k.as_str(), its.len())).collect();
    let mut text = format!("{} of {}", parts.join(", "), verdicts.len());
    let rare: Vec<String> = counts
        .iter()
        .filter(|(k, _)| Some(**k) != common)
        .map(|(k, its)| {
            let shown: Vec<String> = its.iter().take(10).map(usize::to_string).collect();
            let more = if its.len() > 10 { ", ..." } else { "" };
            format!("{}: iteration{} {}{more}", k.as_str(), if its.len() == 1 { "" } else { "s" }, shown.join(", "))
        })
        .collect();
    if !rare.is_empty() {
        text.push_str(&format!(" ({})", rare.join("; ")));
    }
    text
}

/// Follows a repeated run's results (from `CaseFinished` events) to summarize it at the end.
#[derive(Debug, Clone, Default)]
pub struct Soak {
    history: std::collections::BTreeMap<String, Vec<Kind>>,
    iterations: usize,
}

impl Soak {
    /// Records one result (results of a single run, `iteration` `None`, are ignored).
    pub fn record(&mut self, id: &str, iteration: Option<usize>, kind: Kind) {
        if let Some(i) = iteration {
            self.history.entry(id.to_owned()).or_default().push(kind);
            self.iterations = self.iterations.max(i);
        }
    }

    /// `soak: 20 iteration(s) of 39 case(s): 38 stable (36 pass, 2 skip), 1 changed verdict`,
    /// or `None` for a single run.
    pub fn summary(&self) -> Option<String> {
        if self.iterations == 0 {
            return None;
        }
        let mut stable: std::collections::BTreeMap<Kind, usize> = std::collections::BTreeMap::new();
        let mut changed = 0;
        for v in self.history.values() {
            match v.first() {
                Some(k) if v.iter().all(|x| x == k) => *stable.entry(*k).or_default() += 1,
                _ => changed += 1,
            }
        }
        let n_stable: usize = stable.values().sum();
        let kinds: Vec<String> = stable.iter().map(|(k, n)| format!("{n} {}", k.as_str())).collect();
        Some(format!(
            "soak: {} iteration(s) of {} case(s): {n_stable} stable ({}), {changed} changed verdict",
            self.iterations,
            self.history.len(),
            if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") }
        ))
    }
}

/// What a run reports, in order (see the module doc).
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Before any case runs.
    RunStarted {
        /// The selected case ids, in the order they are queued.
        cases: &'a [String],
        /// How many cases run at once.
        jobs: usize,
        /// How many times the selection runs.
        repeat: Repeat,
    },
    /// A case began.
    CaseStarted {
        /// Case id.
        id: &'a str,
        /// 1-based iteration when the run repeats, else `None`.
        iteration: Option<usize>,
    },
    /// A case ended.
    CaseFinished {
        /// Its result.
        result: &'a CaseResult,
        /// 1-based iteration when the run repeats, else `None`.
        iteration: Option<usize>,
    },
    /// After the last case.
    RunFinished {
        /// Every result counted.
        totals: Totals,
        /// Wall time of the whole run.
        elapsed: Duration,
        /// Cases whose verdict changed between iterations (empty for a single run).
        unstable: &'a [Unstable],
    },
}

/// Something that turns the event stream into a report.
pub trait Reporter {
    /// Consumes one event. An error stops this reporter, not the run.
    fn report(&mut self, event: &Event<'_>) -> io::Result<()>;
}

/// Results counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Passed.
    pub pass: usize,
    /// Failed (including invalid case files and, in strict mode, skips).
    pub fail: usize,
    /// Failed as declared by `xfail`.
    pub xfail: usize,
    /// Passed although declared `xfail`.
    pub xpass: usize,
    /// Could not run here.
    pub skip: usize,
}

impl Totals {
    /// Counts one verdict.
    pub fn record(&mut self, verdict: &Verdict) {
        match Kind::of(verdict) {
            Kind::Pass => self.pass += 1,
            Kind::Fail => self.fail += 1,
            Kind::Skip => self.skip += 1,
            Kind::XFail => self.xfail += 1,
            Kind::XPass => self.xpass += 1,
        }
    }

    /// Every result.
    pub fn total(&self) -> usize {
        self.pass + self.fail + self.xfail + self.xpass + self.skip
    }

    /// What a summary calls "passed": passes and expected failures.
    pub fn passed(&self) -> usize {
        self.pass + self.xfail
    }

    /// What a summary calls "failed": failures and unexpected passes.
    pub fn failed(&self) -> usize {
        self.fail + self.xpass
    }

    /// The kselftest exit code: [`KSFT_FAIL`] if anything failed (an xpass included),
    /// [`KSFT_SKIP`] if nothing passed (every case skipped, or none selected), else
    /// [`KSFT_PASS`] (skips beside passes are fine).
    pub fn exit_code(&self) -> u8 {
        if self.failed() > 0 {
            KSFT_FAIL
        } else if self.passed() == 0 {
            KSFT_SKIP
        } else {
            KSFT_PASS
        }
    }
}

/// The name a result is reported under: the case id, plus the iteration when the run repeats.
pub fn trial_name(id: &str, iteration: Option<usize>) -> Cow<'_, str> {
    match iteration {
        None => Cow::Borrowed(id),
        Some(i) => Cow::Owned(format!("{id} (iteration {i})")),
    }
}

/// What an unexpected pass says.
pub const XPASS_MESSAGE: &str = "marked xfail but passed: remove the xfail marker";

/// One line saying why a result is not a plain pass (empty for a pass): the skip or xfail
/// reason, or the first line of a failure report that is not a header.
pub fn headline(result: &CaseResult) -> String {
    match &result.verdict {
        Verdict::Pass => String::new(),
        Verdict::Skip(reason) | Verdict::XFail(reason) => one_line(reason),
        Verdict::XPass => XPASS_MESSAGE.to_owned(),
        Verdict::Fail => first_finding(&result.report).unwrap_or_else(|| "failed".to_owned()),
    }
}

/// The first line of a report that says something: not the `case:`/`topology:` header, not a
/// section title (ending in `:`), not blank.
fn first_finding(report: &str) -> Option<String> {
    report
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.ends_with(':') && !l.starts_with("case: ") && !l.starts_with("topology: "))
        .map(one_line)
}

/// Text made one line: line breaks and runs of white space become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(verdict: Verdict, report: &str) -> CaseResult {
        CaseResult {
            id: "connect::v4_basic".into(),
            verdict,
            elapsed: Duration::from_millis(12),
            report: report.into(),
            artifacts: None,
        }
    }

    fn totals(verdicts: &[Verdict]) -> Totals {
        let mut t = Totals::default();
        for v in verdicts {
            t.record(v);
        }
        t
    }

    #[test]
    fn exit_codes_follow_kselftest() {
        let skip = || Verdict::Skip("no MPTCP".into());
        assert_eq!(totals(&[Verdict::Pass, Verdict::Pass]).exit_code(), KSFT_PASS);
        assert_eq!(totals(&[Verdict::Pass, skip()]).exit_code(), KSFT_PASS, "skips beside a pass");
        assert_eq!(totals(&[Verdict::XFail("known".into())]).exit_code(), KSFT_PASS, "an xfail is not a failure");
        assert_eq!(totals(&[Verdict::Pass, Verdict::Fail, skip()]).exit_code(), KSFT_FAIL);
        assert_eq!(totals(&[Verdict::Pass, Verdict::XPass]).exit_code(), KSFT_FAIL, "a stale xfail marker fails");
        assert_eq!(totals(&[skip(), skip()]).exit_code(), KSFT_SKIP);
        assert_eq!(totals(&[]).exit_code(), KSFT_SKIP, "nothing selected: nothing passed");
    }

    #[test]
    fn headline_skips_report_headers() {
        let report = "case: MPTCP over IPv4 (connect::v4_basic)\ntopology: single\nexpectations that did not hold:\n  server: MPTcpExtMPCapableSYNRX: expected 1, observed 0\nconnections:\n  conn0: ok\n";
        assert_eq!(headline(&result(Verdict::Fail, report)), "server: MPTcpExtMPCapableSYNRX: expected 1, observed 0");
        assert_eq!(headline(&result(Verdict::Fail, "")), "failed");
        assert_eq!(headline(&result(Verdict::Skip("needs\n root".into()), "")), "needs root");
        assert_eq!(headline(&result(Verdict::Pass, "")), "");
        assert_eq!(headline(&result(Verdict::XPass, "")), XPASS_MESSAGE);
    }

    #[test]
    fn soak_summaries() {
        let u = Unstable { id: "a".into(), verdicts: vec![Kind::Pass, Kind::Pass, Kind::Fail, Kind::Pass, Kind::Skip, Kind::Fail] };
        assert_eq!(u.summary(), "pass 3, fail 2, skip 1 of 6 (fail: iterations 3, 6; skip: iteration 5)");
        let mut s = Soak::default();
        assert_eq!(s.summary(), None);
        for i in 1..=3 {
            s.record("x::stable", Some(i), Kind::Pass);
            s.record("x::skipped", Some(i), Kind::Skip);
            s.record("x::flaky", Some(i), if i == 2 { Kind::Fail } else { Kind::Pass });
        }
        s.record("x::once", None, Kind::Fail);
        assert_eq!(s.summary().unwrap(), "soak: 3 iteration(s) of 3 case(s): 2 stable (1 pass, 1 skip), 1 changed verdict");
    }

    #[test]
    fn repeat_plans() {
        assert_eq!(Repeat::ONCE.planned(7), Some(7));
        assert!(!Repeat::ONCE.repeats());
        assert_eq!(Repeat { times: Some(3), until_fail: false }.planned(7), Some(21));
        assert_eq!(Repeat { times: Some(3), until_fail: true }.planned(7), None);
        assert_eq!(Repeat { times: None, until_fail: true }.planned(7), None);
        assert_eq!(trial_name("a::b", Some(2)), "a::b (iteration 2)");
        assert_eq!(trial_name("a::b", None), "a::b");
    }
}
