//! JSON lines for machines: one object per result as it finishes, then one summary object.
//!
//! ```json
//! {"case":"connect::v4_basic","verdict":"pass","time_ms":12,"reason":null,"report":"","artifacts":null}
//! {"case":"connect::v6_basic","verdict":"fail","time_ms":103,"reason":"server: ...","report":"case: ...","artifacts":"/.../connect__v6_basic"}
//! {"summary":{"pass":1,"fail":1,"xfail":0,"xpass":0,"skip":0,"total":2,"time_ms":130,"exit_code":1,"unstable":[]}}
//! ```
//!
//! - `verdict` is one of `pass`, `fail`, `skip`, `xfail`, `xpass`; `reason` is the one-line
//!   headline (skip or xfail reason, a failure's first finding), `null` for a pass.
//! - When the run repeats, each case object also has `"iteration": N` (1-based), and the
//!   summary's `unstable` lists `{"case":..., "verdicts":[...]}` for cases whose verdict changed.
//! - Lines are flushed one by one, so a run cut short still leaves every finished result.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::event::{Event, Kind, Reporter, headline};
use crate::case::CaseResult;

/// The JSON-lines reporter.
#[derive(Debug)]
pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    /// JSON lines on `out`.
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }

    fn emit(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// A JSON string literal (quotes included).
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn string_or_null(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), string)
}

/// The object for one result.
pub fn case_object(result: &CaseResult, iteration: Option<usize>) -> String {
    let kind = Kind::of(&result.verdict);
    let reason = headline(result);
    let mut o = format!("{{\"case\":{}", string(&result.id));
    if let Some(i) = iteration {
        let _ = write!(o, ",\"iteration\":{i}");
    }
    let _ = write!(
        o,
        ",\"verdict\":\"{}\",\"time_ms\":{},\"reason\":{},\"report\":{},\"artifacts\":{}}}",
        kind.as_str(),
        result.elapsed.as_millis(),
        string_or_null((kind != Kind::Pass).then_some(reason.as_str())),
        string(&result.report),
        string_or_null(result.artifacts.as_ref().map(|p| p.to_string_lossy()).as_deref()),
    );
    o
}

impl<W: Write> Reporter for JsonLines<W> {
    fn report(&mut self, event: &Event<'_>) -> io::Result<()> {
        match *event {
            Event::RunStarted { .. } | Event::CaseStarted { .. } => Ok(()),
            Event::CaseFinished { result, iteration } => {
                let line = case_object(result, iteration);
                self.emit(&line)
            }
            Event::RunFinished { totals, elapsed, unstable } => {
                let unstable: Vec<String> = unstable
                    .iter()
                    .map(|u| {
                        let v: Vec<String> = u.verdicts.iter().map(|k| string(k.as_str())).collect();
                        format!("{{\"case\":{},\"verdicts\":[{}]}}", string(&u.id), v.join(","))
                    })
                    .collect();
                let line = format!(
                    "{{\"summary\":{{\"pass\":{},\"fail\":{},\"xfail\":{},\"xpass\":{},\"skip\":{},\"total\":{},\"time_ms\":{},\"exit_code\":{},\"unstable\":[{}]}}}}",
                    totals.pass,
                    totals.fail,
                    totals.xfail,
                    totals.xpass,
                    totals.skip,
                    totals.total(),
                    elapsed.as_millis(),
                    totals.exit_code(),
                    unstable.join(",")
                );
                self.emit(&line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::case::Verdict;
    use crate::report::event::{Repeat, Totals, Unstable};

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
    fn escapes_strings() {
        assert_eq!(string("a\"b\\c\nd\te\u{1}\u{1b}é"), r#""a\"b\\c\nd\te\u0001\u001bé""#);
    }

    #[test]
    fn a_run_in_json_lines() {
        let fail = CaseResult {
            id: "connect::v6_basic".into(),
            verdict: Verdict::Fail,
            elapsed: Duration::from_millis(103),
            report: "case: x\n  server: \"MPTcpExtX\": expected 1, observed 0\n".into(),
            artifacts: Some(PathBuf::from("/tmp/a/connect__v6_basic")),
        };
        let skip = CaseResult { verdict: Verdict::Skip("needs root".into()), elapsed: Duration::ZERO, ..pass() };
        let mut j = JsonLines::new(Vec::new());
        let ids = vec!["connect::v4_basic".to_owned(), "connect::v6_basic".to_owned()];
        let repeat = Repeat { times: Some(2), until_fail: false };
        let mut totals = Totals::default();
        j.report(&Event::RunStarted { cases: &ids, jobs: 2, repeat }).unwrap();
        for (r, i) in [(&pass(), 1), (&fail, 1), (&skip, 2)] {
            totals.record(&r.verdict);
            j.report(&Event::CaseFinished { result: r, iteration: Some(i) }).unwrap();
        }
        let unstable = [Unstable { id: "connect::v4_basic".into(), verdicts: vec![Kind::Pass, Kind::Skip] }];
        j.report(&Event::RunFinished { totals, elapsed: Duration::from_millis(130), unstable: &unstable }).unwrap();
        assert_eq!(
            String::from_utf8(j.out).unwrap(),
            r#"{"case":"connect::v4_basic","iteration":1,"verdict":"pass","time_ms":12,"reason":null,"report":"","artifacts":null}
{"case":"connect::v6_basic","iteration":1,"verdict":"fail","time_ms":103,"reason":"server: \"MPTcpExtX\": expected 1, observed 0","report":"case: x\n  server: \"MPTcpExtX\": expected 1, observed 0\n","artifacts":"/tmp/a/connect__v6_basic"}
{"case":"connect::v4_basic","iteration":2,"verdict":"skip","time_ms":0,"reason":"needs root","report":"","artifacts":null}
{"summary":{"pass":1,"fail":1,"xfail":0,"xpass":0,"skip":1,"total":3,"time_ms":130,"exit_code":1,"unstable":[{"case":"connect::v4_basic","verdicts":["pass","skip"]}]}}
"#
        );
    }

    #[test]
    fn a_single_run_has_no_iteration_field() {
        assert_eq!(
            case_object(&pass(), None),
            r#"{"case":"connect::v4_basic","verdict":"pass","time_ms":12,"reason":null,"report":"","artifacts":null}"#
        );
    }
}
