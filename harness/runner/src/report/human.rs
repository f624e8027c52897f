//! The format for people: a line per case, every failure's report right under its line, and a
//! summary CI can grep.
//!
//! ```text
//! running 3 cases, 2 at a time
//! ok    connect::v4_basic (12 ms)
//! FAIL  connect::v6_basic (103 ms)
//!     case: MPTCP over IPv6 (connect::v6_basic)
//!     ...
//! skip  connect::chain_v4 (0 ms): needs root
//!
//! failures:
//!     connect::v6_basic
//!
//! finished in 0.12 s
//! 1 passed, 1 failed, 1 skipped
//! ```
//!
//! The last line always reads `N passed, N failed, N skipped` (an xfail counts as passed, an
//! xpass as failed; the line above says so when there are any). On a terminal a progress line
//! (done/planned and what is running) is kept at the bottom of stderr and erased before each
//! result line; elsewhere the output is plain lines only.

use std::io::{self, Write};
use std::time::Duration;

use super::event::{Event, Kind, Reporter, Soak, Totals, XPASS_MESSAGE, headline, trial_name};
use crate::case::CaseResult;

/// The progress line's terminal and state.
struct Progress {
    term: Box<dyn Write + Send>,
    width: usize,
    running: Vec<String>,
    done: usize,
    planned: Option<usize>,
}

impl Progress {
    fn clear(&mut self) -> io::Result<()> {
        self.term.write_all(b"\r\x1b[2K")?;
        self.term.flush()
    }

    fn draw(&mut self) -> io::Result<()> {
        let count = match self.planned {
            Some(p) => format!("[{}/{p}]", self.done),
            None => format!("[{}]", self.done),
        };
        let line = format!("{count} running: {}", self.running.join(", "));
        // One terminal row at most, or `\r` cannot take it back.
        let line: String = line.chars().take(self.width.saturating_sub(1).max(10)).collect();
        write!(self.term, "\r\x1b[2K{line}")?;
        self.term.flush()
    }
}

/// The human reporter, writing result lines to `out`.
pub struct Human<W: Write> {
    out: W,
    progress: Option<Progress>,
    failed: Vec<String>,
    soak: Soak,
}

impl<W: Write> std::fmt::Debug for Human<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Human").field("progress", &self.progress.is_some()).field("failed", &self.failed).finish()
    }
}

impl<W: Write> Human<W> {
    /// Plain lines on `out`, no progress.
    pub fn new(out: W) -> Self {
        Human { out, progress: None, failed: Vec::new(), soak: Soak::default() }
    }

    /// Also keeps a progress line on `term` (a terminal `width` columns wide).
    pub fn with_progress(mut self, term: Box<dyn Write + Send>, width: usize) -> Self {
        self.progress = Some(Progress { term, width, running: Vec::new(), done: 0, planned: None });
        self
    }

    /// Writes `text` to `out` with the progress line out of the way.
    fn emit(&mut self, text: &str) -> io::Result<()> {
        if let Some(p) = &mut self.progress {
            p.clear()?;
        }
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    fn redraw(&mut self) -> io::Result<()> {
        match &mut self.progress {
            Some(p) => p.draw(),
            None => Ok(()),
        }
    }
}

/// The result line of one case (with its report indented below for a failure).
pub fn result_text(result: &CaseResult, iteration: Option<usize>) -> String {
    let kind = Kind::of(&result.verdict);
    let word = match kind {
        Kind::Pass => "ok",
        Kind::Fail => "FAIL",
        Kind::Skip => "skip",
        Kind::XFail => "xfail",
        Kind::XPass => "XPASS",
    };
    let name = trial_name(&result.id, iteration);
    let mut text = format!("{word:<5} {name} ({} ms)", result.elapsed.as_millis());
    match kind {
        Kind::Pass | Kind::Fail => {}
        Kind::Skip | Kind::XFail => {
            text.push_str(": ");
            text.push_str(&headline(result));
        }
        Kind::XPass => {
            text.push_str(": ");
            text.push_str(XPASS_MESSAGE);
        }
    }
    text.push('\n');
    if kind == Kind::Fail {
        for line in result.report.lines() {
            if line.is_empty() {
                text.push('\n');
            } else {
                text.push_str("    ");
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

/// The closing lines; the last one is `N passed, N failed, N skipped`.
/// `soak` is the soak line of a repeated run.
pub fn summary_text(totals: &Totals, elapsed: Duration, failed: &[String], unstable: &[super::event::Unstable], soak: Option<&str>) -> String {
    let mut text = String::from("\n");
    if !failed.is_empty() {
        text.push_str("failures:\n");
        for name in failed {
            text.push_str(&format!("    {name}\n"));
        }
        text.push('\n');
    }
    if let Some(s) = soak {
        text.push_str(s);
        text.push('\n');
    }
    if !unstable.is_empty() {
        text.push_str("verdict changed between iterations:\n");
        for u in unstable {
            text.push_str(&format!("    {}: {}\n", u.id, u.summary()));
        }
    }
    if soak.is_some() || !unstable.is_empty() {
        text.push('\n');
    }
    text.push_str(&format!("finished in {:.2} s", elapsed.as_secs_f64()));
    if totals.xfail + totals.xpass > 0 {
        text.push_str(&format!(" (passed includes {} xfail, failed includes {} xpass)", totals.xfail, totals.xpass));
    }
    text.push('\n');
    text.push_str(&format!("{} passed, {} failed, {} skipped\n", totals.passed(), totals.failed(), totals.skip));
    text
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl<W: Write> Reporter for Human<W> {
    fn report(&mut self, event: &Event<'_>) -> io::Result<()> {
        match *event {
            Event::RunStarted { cases, jobs, repeat } => {
                let mut line = format!("running {}, {jobs} at a time", plural(cases.len(), "case", "cases"));
                match (repeat.times, repeat.until_fail) {
                    (Some(1), _) => {}
                    (Some(n), false) => line.push_str(&format!(", {n} times")),
                    (Some(n), true) => line.push_str(&format!(", until one fails (at most {n} times)")),
                    (None, _) => line.push_str(", until one fails"),
                }
                line.push('\n');
                if let Some(p) = &mut self.progress {
                    p.planned = repeat.planned(cases.len());
                }
                self.emit(&line)?;
                self.redraw()
            }
            Event::CaseStarted { id, iteration } => {
                if let Some(p) = &mut self.progress {
                    p.running.push(trial_name(id, iteration).into_owned());
                }
                self.redraw()
            }
            Event::CaseFinished { result, iteration } => {
                let name = trial_name(&result.id, iteration).into_owned();
                if let Some(p) = &mut self.progress {
                    p.running.retain(|r| *r != name);
                    p.done += 1;
                }
                self.soak.record(&result.id, iteration, Kind::of(&result.verdict));
                if matches!(Kind::of(&result.verdict), Kind::Fail | Kind::XPass) {
                    self.failed.push(name);
                }
                self.emit(&result_text(result, iteration))?;
                self.redraw()
            }
            Event::RunFinished { totals, elapsed, unstable } => {
                let soak = self.soak.summary();
                let text = summary_text(&totals, elapsed, &self.failed, unstable, soak.as_deref());
                self.emit(&text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::case::Verdict;
    use crate::report::event::{Repeat, Unstable};

    fn pass() -> CaseResult {
        CaseResult {
            id: "connect::v4_basic".into(),
            verdict: Verdict::Pass,
            elapsed: Duration::from_millis(12),
            report: String::new(),
            artifacts: None,
        }
    }

    fn run(results: &[CaseResult]) -> String {
        let mut h = Human::new(Vec::new());
        let ids: Vec<String> = results.iter().map(|r| r.id.clone()).collect();
        let mut totals = Totals::default();
        h.report(&Event::RunStarted { cases: &ids, jobs: 2, repeat: Repeat::ONCE }).unwrap();
        for r in results {
            h.report(&Event::CaseStarted { id: &r.id, iteration: None }).unwrap();
            totals.record(&r.verdict);
            h.report(&Event::CaseFinished { result: r, iteration: None }).unwrap();
        }
        h.report(&Event::RunFinished { totals, elapsed: Duration::from_millis(1234), unstable: &[] }).unwrap();
        String::from_utf8(h.out).unwrap()
    }

    #[test]
    fn a_run_reads_line_by_line() {
        let results = [
            pass(),
            CaseResult {
                id: "connect::v6_basic".into(),
                verdict: Verdict::Fail,
                elapsed: Duration::from_millis(103),
                report: "case: MPTCP over IPv6 (connect::v6_basic)\nexpectations that did not hold:\n  server: MPTcpExtMPCapableSYNRX: expected 1, observed 0\n".into(),
                ..pass()
            },
            CaseResult { id: "connect::chain_v4".into(), verdict: Verdict::Skip("needs root".into()), elapsed: Duration::ZERO, ..pass() },
            CaseResult { id: "connect::known".into(), verdict: Verdict::XFail("issue 1".into()), ..pass() },
            CaseResult { id: "connect::stale".into(), verdict: Verdict::XPass, ..pass() },
        ];
        assert_eq!(
            run(&results),
            "\
running 5 cases, 2 at a time
ok    connect::v4_basic (12 ms)
FAIL  connect::v6_basic (103 ms)
    case: MPTCP over IPv6 (connect::v6_basic)
    expectations that did not hold:
      server: MPTcpExtMPCapableSYNRX: expected 1, observed 0
skip  connect::chain_v4 (0 ms): needs root
xfail connect::known (12 ms): issue 1
XPASS connect::stale (12 ms): marked xfail but passed: remove the xfail marker

failures:
    connect::v6_basic
    connect::stale

finished in 1.23 s (passed includes 1 xfail, failed includes 1 xpass)
2 passed, 2 failed, 1 skipped
"
        );
    }

    #[test]
    fn summary_is_the_last_line_and_greppable() {
        let out = run(&[pass(), CaseResult { verdict: Verdict::Skip("no MPTCP".into()), ..pass() }]);
        assert_eq!(out.lines().last(), Some("1 passed, 0 failed, 1 skipped"));
        assert!(!out.contains("failures:"));
    }

    #[test]
    fn unstable_cases_are_listed() {
        let u = [Unstable { id: "connect::v4_basic".into(), verdicts: vec![Kind::Pass, Kind::Fail, Kind::Pass] }];
        let t = Totals { pass: 2, fail: 1, ..Totals::default() };
        let text = summary_text(&t, Duration::from_secs(2), &[], &u, Some("soak: 3 iteration(s) of 1 case(s): 0 stable (none), 1 changed verdict"));
        assert!(text.contains("verdict changed between iterations:\n    connect::v4_basic: pass 2, fail 1 of 3 (fail: iteration 2)\n"), "{text}");
        assert!(text.ends_with("2 passed, 1 failed, 0 skipped\n"));
    }

    /// A `Write` the test can read after the reporter has it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn progress_goes_to_the_terminal_and_is_erased_before_results() {
        let term = Shared::default();
        let mut h = Human::new(Vec::new()).with_progress(Box::new(term.clone()), 40);
        let ids = vec!["connect::v4_basic".to_owned()];
        h.report(&Event::RunStarted { cases: &ids, jobs: 1, repeat: Repeat::ONCE }).unwrap();
        h.report(&Event::CaseStarted { id: "connect::v4_basic", iteration: None }).unwrap();
        let shown = String::from_utf8(term.0.lock().unwrap().clone()).unwrap();
        assert!(shown.ends_with("\r\x1b[2K[0/1] running: connect::v4_basic"), "{shown:?}");
        h.report(&Event::CaseFinished { result: &pass(), iteration: None }).unwrap();
        let shown = String::from_utf8(term.0.lock().unwrap().clone()).unwrap();
        assert!(shown.ends_with("\r\x1b[2K[1/1] running: "), "{shown:?}");
        assert_eq!(String::from_utf8(h.out).unwrap(), "running 1 case, 1 at a time\nok    connect::v4_basic (12 ms)\n");
    }
}
