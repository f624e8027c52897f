//! KTAP / TAP 13 in the kselftest style, as the MPTCP selftests print it and as netdev's NIPA
//! and the kselftest runner read it.
//!
//! ```text
//! TAP version 13
//! 1..3
//! # mptcp-conformance: 3 cases, 2 at a time
//! ok 1 - mptcp-conformance: connect::v4_basic # time=12ms
//! not ok 2 - mptcp-conformance: connect::v6_basic # time=103ms
//! # case: MPTCP over IPv6 (connect::v6_basic)
//! # ...
//! ok 3 - mptcp-conformance: connect::chain_v4 # SKIP needs root
//! # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
//! ```
//!
//! - Results are numbered in the order cases finish (they run in parallel).
//! - A skip is `ok ... # SKIP <reason>`, a declared known failure `ok ... # XFAIL <reason>`; a
//!   failure, or an unexpected pass (a stale xfail marker), is `not ok` followed by its report
//!   as `# ` comment lines.
//! - Names and directives are single lines, and a name never contains `#`: every result line
//!   matches NIPA's `(not )?ok (\d+)( \d+)?( -)? ([^#]*[^ ])( +# +)?([^ ].*)?$` (NIPA parses the
//!   block inside the kselftest runner's `# ` prefix and stops at a result line it cannot
//!   match). The tests below run that regex on every line.
//! - The plan comes first when the number of results is known; a run repeated until a failure
//!   prints it last instead (TAP 13 allows both).

use std::io::{self, Write};

use super::event::{Event, Kind, Reporter, Soak, Totals, XPASS_MESSAGE, headline, one_line, trial_name};
use crate::case::CaseResult;

/// The program name results are prefixed with, as the MPTCP selftests prefix theirs.
pub const PROGRAM: &str = "mptcp-conformance";

/// The KTAP reporter.
#[derive(Debug)]
pub struct Ktap<W: Write> {
    out: W,
    n: usize,
    trailing_plan: bool,
    soak: Soak,
}

impl<W: Write> Ktap<W> {
    /// KTAP on `out`.
    pub fn new(out: W) -> Self {
        Ktap { out, n: 0, trailing_plan: false, soak: Soak::default() }
    }

    fn emit(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

/// A result's name in a result line: one line, without `#` (which would end it).
fn ktap_name(id: &str, iteration: Option<usize>) -> String {
    let name = one_line(&trial_name(id, iteration)).replace('#', "_");
    if name.is_empty() { "(unnamed)".to_owned() } else { name }
}

/// Text as `# ` comment lines (an empty line is a bare `#`).
fn comment(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Result number `n` for one case: the result line, then the report as comments for a failure
/// (and for a pass that left checks out, e.g. counters the kernel does not expose).
pub fn result_lines(n: usize, result: &CaseResult, iteration: Option<usize>) -> String {
    let name = format!("{PROGRAM}: {}", ktap_name(&result.id, iteration));
    let ms = result.elapsed.as_millis();
    let with_reason = |directive: &str| {
        let reason = headline(result);
        if reason.is_empty() { format!(" # {directive}") } else { format!(" # {directive} {reason}") }
    };
    match Kind::of(&result.verdict) {
        Kind::Pass => format!("ok {n} - {name} # time={ms}ms\n{}", comment(&result.report)),
        Kind::Skip => format!("ok {n} - {name}{}\n", with_reason("SKIP")),
        Kind::XFail => format!("ok {n} - {name}{}\n", with_reason("XFAIL")),
        Kind::Fail => format!("not ok {n} - {name} # time={ms}ms\n{}", comment(&result.report)),
        Kind::XPass => format!("not ok {n} - {name} # time={ms}ms\n{}", comment(XPASS_MESSAGE)),
    }
}

/// kselftest's closing line.
pub fn totals_line(t: &Totals) -> String {
    format!("# Totals: pass:{} fail:{} xfail:{} xpass:{} skip:{} error:0\n", t.pass, t.fail, t.xfail, t.xpass, t.skip)
}

impl<W: Write> Reporter for Ktap<W> {
    fn report(&mut self, event: &Event<'_>) -> io::Result<()> {
        match *event {
            Event::RunStarted { cases, jobs, repeat } => {
                let mut text = String::from("TAP version 13\n");
                match repeat.planned(cases.len()) {
                    Some(n) => text.push_str(&format!("1..{n}\n")),
                    None => self.trailing_plan = true,
                }
                text.push_str(&format!("# {PROGRAM}: {} case(s), {jobs} at a time\n", cases.len()));
                self.emit(&text)
            }
            Event::CaseStarted { .. } => Ok(()),
            Event::CaseFinished { result, iteration } => {
                self.n += 1;
                self.soak.record(&result.id, iteration, Kind::of(&result.verdict));
                let text = result_lines(self.n, result, iteration);
                self.emit(&text)
            }
            Event::RunFinished { totals, elapsed, unstable } => {
                let mut text = String::new();
                if let Some(s) = self.soak.summary() {
                    text.push_str(&format!("# {s}\n"));
                }
                for u in unstable {
                    text.push_str(&format!("# verdict changed between iterations: {}: {}\n", u.id, u.summary()));
                }
                if self.trailing_plan {
                    text.push_str(&format!("1..{}\n", self.n));
                }
                text.push_str(&format!("# {PROGRAM}: finished in {:.2} s\n", elapsed.as_secs_f64()));
                text.push_str(&totals_line(&totals));
                self.emit(&text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::case::Verdict;
    use crate::report::event::{Repeat, Unstable};

    /// The regex NIPA applies to nested result lines (reference/integration.md).
    const NIPA_RESULT: &str = r"(not )?ok (\d+)( \d+)?( -)? ([^#]*[^ ])( +# +)?([^ ].*)?$";
    /// An older NIPA spelling, without the `( \d+)?` group.
    const NIPA_RESULT_OLD: &str = r"(not )?ok (\d+)( -)? ([^#]*[^ ])( +# +)?([^ ].*)?$";

    /// A tiny backtracking matcher for the regex subset the patterns above use: literals, `.`,
    /// `\d`, `[^c]`, capture groups, `?`, `*`, `+` (greedy) and `$`, anchored at the start like
    /// Python's `re.match`.
    mod re {
        use std::cell::RefCell;

        #[derive(Debug)]
        enum Atom {
            Lit(char),
            Any,
            Digit,
            Not(char),
            End,
            Group(usize, Vec<Item>),
        }

        #[derive(Debug, Clone, Copy)]
        enum Quant {
            One,
            Opt,
            Star,
            Plus,
        }

        type Item = (Atom, Quant);

        fn parse_seq(c: &[char], i: &mut usize, groups: &mut usize) -> Vec<Item> {
            let mut items = Vec::new();
            while *i < c.len() && c[*i] != ')' {
                let atom = match c[*i] {
                    '(' => {
                        *i += 1;
                        *groups += 1;
                        let index = *groups;
                        let inner = parse_seq(c, i, groups);
                        assert_eq!(c.get(*i), Some(&')'), "unclosed group");
                        *i += 1;
                        Atom::Group(index, inner)
                    }
                    '.' => {
                        *i += 1;
                        Atom::Any
                    }
                    '$' => {
                        *i += 1;
                        Atom::End
                    }
                    '\\' => {
                        assert_eq!(c.get(*i + 1), Some(&'d'), "only \\d is supported");
                        *i += 2;
                        Atom::Digit
                    }
                    '[' => {
                        assert_eq!((c.get(*i + 1), c.get(*i + 3)), (Some(&'^'), Some(&']')), "only [^c] is supported");
                        let ch = c[*i + 2];
                        *i += 4;
                        Atom::Not(ch)
                    }
                    ch => {
                        *i += 1;
                        Atom::Lit(ch)
                    }
                };
                let quant = match c.get(*i) {
                    Some('?') => Quant::Opt,
                    Some('*') => Quant::Star,
                    Some('+') => Quant::Plus,
                    _ => Quant::One,
                };
                if !matches!(quant, Quant::One) {
                    *i += 1;
                }
                items.push((atom, quant));
            }
            items
        }

        struct Matcher {
            s: Vec<char>,
            caps: RefCell<Vec<Option<(usize, usize)>>>,
        }

        impl Matcher {
            fn seq(&self, items: &[Item], pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
                let Some(((atom, quant), rest)) = items.split_first() else { return k(pos) };
                let next = |p: usize| self.seq(rest, p, k);
                match quant {
                    Quant::One => self.atom(atom, pos, &next),
                    Quant::Opt => self.atom(atom, pos, &next) || next(pos),
                    Quant::Star => self.star(atom, pos, &next),
                    Quant::Plus => self.atom(atom, pos, &|p| self.star(atom, p, &next)),
                }
            }

            fn star(&self, atom: &Atom, pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
                self.atom(atom, pos, &|p| p > pos && self.star(atom, p, k)) || k(pos)
            }

            fn atom(&self, atom: &Atom, pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
                let one = |ok: fn(char, &Atom) -> bool| self.s.get(pos).is_some_and(|&c| ok(c, atom)) && k(pos + 1);
                match atom {
                    Atom::Lit(_) => one(|c, a| matches!(a, Atom::Lit(l) if *l == c)),
                    Atom::Any => one(|c, _| c != '\n'),
                    Atom::Digit => one(|c, _| c.is_ascii_digit()),
                    Atom::Not(_) => one(|c, a| matches!(a, Atom::Not(n) if *n != c)),
                    Atom::End => pos == self.s.len() && k(pos),
                    Atom::Group(index, items) => self.seq(items, pos, &|p| {
                        let saved = self.caps.borrow()[*index];
                        self.caps.borrow_mut()[*index] = Some((pos, p));
                        if k(p) {
                            true
                        } else {
                            self.caps.borrow_mut()[*index] = saved;
                            false
                        }
                    }),
                }
            }
        }

        /// Matches `pattern` at the start of `text`; returns groups 1.. (None: did not take part).
        pub fn matches(pattern: &str, text: &str) -> Option<Vec<Option<String>>> {
            let chars: Vec<char> = pattern.chars().collect();
            let (mut i, mut groups) = (0, 0);
            let items = parse_seq(&chars, &mut i, &mut groups);
            assert_eq!(i, chars.len(), "unbalanced ')' in {pattern}");
            let m = Matcher { s: text.chars().collect(), caps: RefCell::new(vec![None; groups + 1]) };
            if !m.seq(&items, 0, &|_| true) {
                return None;
            }
            let caps = m.caps.into_inner();
            Some(caps[1..].iter().map(|c| c.map(|(a, b)| m.s[a..b].iter().collect())).collect())
        }
    }

    /// What NIPA records for one nested result (port of `_parse_nested_tests`).
    #[derive(Debug, PartialEq)]
    struct Nested {
        test: String,
        result: &'static str,
        time_ms: Option<u64>,
    }

    /// Reads `output` as NIPA does once the kselftest runner prefixed every line with `# `.
    /// Panics where NIPA would crash (a result line its regex does not match).
    fn nipa_nested(output: &str, pattern: &str) -> Vec<Nested> {
        let prefixed: String = output.lines().map(|l| format!("# {l}\n")).collect();
        let mut nested = false;
        let mut out = Vec::new();
        for line in prefixed.split('\n') {
            let mut line = line;
            if nested {
                match line.strip_prefix("# ") {
                    Some(l) => line = l,
                    None => nested = false,
                }
            } else if line.starts_with("# TAP version ") {
                nested = true;
                continue;
            }
            if !nested {
                continue;
            }
            let mut result = if line.starts_with("ok ") {
                "pass"
            } else if line.starts_with("not ok ") {
                "fail"
            } else {
                continue;
            };
            let g = re::matches(pattern, line).unwrap_or_else(|| panic!("NIPA's regex does not match {line:?}"));
            let (name, directive) = (&g[g.len() - 3], &g[g.len() - 1]);
            let mut time_ms = None;
            if let (Some(_sep), Some(d)) = (&g[g.len() - 2], directive) {
                if d.to_lowercase().starts_with("skip") {
                    result = "skip";
                }
                time_ms = d.split("time=").nth(1).and_then(|t| t.strip_suffix("ms")).and_then(|t| t.parse().ok());
            }
            out.push(Nested { test: name.clone().unwrap_or_default(), result, time_ms });
        }
        out
    }

    fn pass() -> CaseResult {
        CaseResult {
            id: "connect::v4_basic".into(),
            verdict: Verdict::Pass,
            elapsed: Duration::from_millis(12),
            report: String::new(),
            artifacts: None,
        }
    }

    #[test]
    fn a_pass_that_left_checks_out_says_which_as_comments() {
        let r = CaseResult { report: "not checked here (the kernel does not expose these counters): client MPTcpExtMPJoinSynTx\n".into(), ..pass() };
        assert_eq!(
            result_lines(3, &r, None),
            "ok 3 - mptcp-conformance: connect::v4_basic # time=12ms\n# not checked here (the kernel does not expose these counters): client MPTcpExtMPJoinSynTx\n"
        );
        assert_eq!(result_lines(3, &pass(), None), "ok 3 - mptcp-conformance: connect::v4_basic # time=12ms\n");
    }

    fn fixtures() -> Vec<CaseResult> {
        vec![
            pass(),
            CaseResult {
                id: "connect::v6_basic".into(),
                verdict: Verdict::Fail,
                elapsed: Duration::from_millis(103),
                report: "case: MPTCP over IPv6 (connect::v6_basic)\n\nexpectations that did not hold:\n  ok 1 - server: MPTcpExtMPCapableSYNRX: expected 1, observed 0\n".into(),
                ..pass()
            },
            CaseResult { id: "connect::chain_v4".into(), verdict: Verdict::Skip("needs root:\nrun as root".into()), elapsed: Duration::ZERO, ..pass() },
            CaseResult { id: "connect::known".into(), verdict: Verdict::XFail("issue #42 (https://x.invalid/42)".into()), ..pass() },
            CaseResult { id: "connect::stale".into(), verdict: Verdict::XPass, ..pass() },
            CaseResult { id: "odd::name #1 ".into(), ..pass() },
        ]
    }

    fn run(results: &[CaseResult], repeat: Repeat) -> String {
        let mut k = Ktap::new(Vec::new());
        let ids: Vec<String> = results.iter().map(|r| r.id.clone()).collect();
        let mut totals = Totals::default();
        k.report(&Event::RunStarted { cases: &ids, jobs: 2, repeat }).unwrap();
        for r in results {
            totals.record(&r.verdict);
            k.report(&Event::CaseFinished { result: r, iteration: None }).unwrap();
        }
        let unstable = [Unstable { id: "connect::v4_basic".into(), verdicts: vec![Kind::Pass, Kind::Fail] }];
        k.report(&Event::RunFinished { totals, elapsed: Duration::from_millis(1500), unstable: &unstable }).unwrap();
        String::from_utf8(k.out).unwrap()
    }

    #[test]
    fn a_run_in_ktap() {
        assert_eq!(
            run(&fixtures(), Repeat::ONCE),
            "\
TAP version 13
1..6
# mptcp-conformance: 6 case(s), 2 at a time
ok 1 - mptcp-conformance: connect::v4_basic # time=12ms
not ok 2 - mptcp-conformance: connect::v6_basic # time=103ms
# case: MPTCP over IPv6 (connect::v6_basic)
#
# expectations that did not hold:
#   ok 1 - server: MPTcpExtMPCapableSYNRX: expected 1, observed 0
ok 3 - mptcp-conformance: connect::chain_v4 # SKIP needs root: run as root
ok 4 - mptcp-conformance: connect::known # XFAIL issue #42 (https://x.invalid/42)
not ok 5 - mptcp-conformance: connect::stale # time=12ms
# marked xfail but passed: remove the xfail marker
ok 6 - mptcp-conformance: odd::name _1 # time=12ms
# verdict changed between iterations: connect::v4_basic: pass 1, fail 1 of 2 (fail: iteration 2)
# mptcp-conformance: finished in 1.50 s
# Totals: pass:2 fail:1 xfail:1 xpass:1 skip:1 error:0
"
        );
    }

    #[test]
    fn every_result_line_parses_with_nipas_regex() {
        let out = run(&fixtures(), Repeat::ONCE);
        let want = vec![
            Nested { test: "mptcp-conformance: connect::v4_basic".into(), result: "pass", time_ms: Some(12) },
            Nested { test: "mptcp-conformance: connect::v6_basic".into(), result: "fail", time_ms: Some(103) },
            Nested { test: "mptcp-conformance: connect::chain_v4".into(), result: "skip", time_ms: None },
            Nested { test: "mptcp-conformance: connect::known".into(), result: "pass", time_ms: None },
            Nested { test: "mptcp-conformance: connect::stale".into(), result: "fail", time_ms: Some(12) },
            Nested { test: "mptcp-conformance: odd::name _1".into(), result: "pass", time_ms: Some(12) },
        ];
        assert_eq!(nipa_nested(&out, NIPA_RESULT), want);
        assert_eq!(nipa_nested(&out, NIPA_RESULT_OLD), want);
        for line in out.lines().filter(|l| l.starts_with("ok ") || l.starts_with("not ok ")) {
            let g = re::matches(NIPA_RESULT, line).unwrap_or_else(|| panic!("no match: {line:?}"));
            assert_eq!(g[0].is_some(), line.starts_with("not "), "{line}");
            assert!(g[1].as_deref().is_some_and(|n| n.parse::<usize>().is_ok()), "{line}");
        }
    }

    #[test]
    fn matcher_behaves_like_pythons_re() {
        // Checked against Python 3's `re.match(NIPA_RESULT, line).groups()`.
        let g = re::matches(NIPA_RESULT, "ok 1 - prog: a b # SKIP x y").unwrap();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(g, vec![None, s("1"), None, s(" -"), s("prog: a b"), s(" # "), s("SKIP x y")]);
        let g = re::matches(NIPA_RESULT, "not ok 12 3 name").unwrap();
        assert_eq!(g, vec![s("not "), s("12"), s(" 3"), None, s("name"), None, None]);
        assert!(re::matches(NIPA_RESULT, "ok    connect::v4_basic (12 ms)").is_none(), "human lines must never look like results");
        assert!(re::matches(NIPA_RESULT, "ok 1 - ").is_none());
    }

    #[test]
    fn until_fail_puts_the_plan_last() {
        let out = run(&[pass()], Repeat { times: None, until_fail: true });
        assert_eq!(out.lines().nth(1), Some("# mptcp-conformance: 1 case(s), 2 at a time"), "no plan up front");
        assert!(out.contains("ok 1 - mptcp-conformance: connect::v4_basic # time=12ms\n# verdict changed between iterations: connect::v4_basic: pass 1, fail 1 of 2 (fail: iteration 2)\n1..1\n"), "{out}");
    }

    #[test]
    fn iterations_are_named_apart() {
        let l = result_lines(3, &pass(), Some(2));
        assert_eq!(l, "ok 3 - mptcp-conformance: connect::v4_basic (iteration 2) # time=12ms\n");
        assert_eq!(nipa_nested(&format!("TAP version 13\n{l}"), NIPA_RESULT)[0].test, "mptcp-conformance: connect::v4_basic (iteration 2)");
    }
}
