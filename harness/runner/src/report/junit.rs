//! JUnit XML for GitHub Actions' test-report actions and annotations.
//!
//! One `<testsuite>` (inside the usual `<testsuites>` root) with one `<testcase>` per result:
//!
//! ```xml
//! <testcase classname="mptcp-conformance.connect" name="connect::v6_basic" time="0.103">
//!   <failure message="server: MPTcpExtMPCapableSYNRX: expected 1, observed 0" type="fail">report</failure>
//! </testcase>
//! ```
//!
//! - `classname` is `mptcp-conformance.<area>`, the area being the case's directory under
//!   `cases/` (`a::b::c` gives `mptcp-conformance.a.b`); `time` is in seconds.
//! - A failure carries its one-line headline as `message` and the full report as text; an
//!   unexpected pass is a failure of type `xpass`.
//! - A skip is `<skipped message="reason"/>`; a declared known failure is a skip of type `xfail`
//!   (as pytest writes it) with the failure report in `<system-out>`: it neither fails the
//!   report nor disappears from it.
//! - The document is written once, when the run finishes (the totals go first).
//!
//! Escaping is done here: `& < > " '` as entities, carriage returns (and, inside attributes,
//! line feeds and tabs) as character references, so a reader gets them back; characters XML
//! 1.0 forbids even escaped (C0 controls but tab and line breaks) are written as visible
//! `\u{..}` text.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use super::event::{Event, Kind, Reporter, Totals, XPASS_MESSAGE, headline, trial_name};
use super::ktap::PROGRAM;

/// One `<testcase>`.
#[derive(Debug, Clone)]
struct TestCase {
    classname: String,
    name: String,
    time: Duration,
    kind: Kind,
    headline: String,
    report: String,
}

/// The JUnit reporter: collects results, writes the document at the end.
#[derive(Debug)]
pub struct Junit<W: Write> {
    out: W,
    properties: Vec<(String, String)>,
    cases: Vec<TestCase>,
}

impl<W: Write> Junit<W> {
    /// JUnit on `out`, with `<property>` entries for the suite (e.g. the kernel release).
    pub fn new(out: W, properties: Vec<(String, String)>) -> Self {
        Junit { out, properties, cases: Vec::new() }
    }
}

/// `mptcp-conformance.<area>` for a case id `area::name` (nested areas joined by dots).
pub fn classname(id: &str) -> String {
    match id.rsplit_once("::") {
        Some((area, _)) => format!("{PROGRAM}.{}", area.replace("::", ".")),
        None => PROGRAM.to_owned(),
    }
}

/// Whether XML 1.0 allows a character at all.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes text content.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A raw CR would be normalized away by the reader.
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value (double-quoted); line breaks and tabs survive as references.
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push_str(&escape_text(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The whole document.
fn render(cases: &[TestCase], properties: &[(String, String)], totals: &Totals, elapsed: Duration) -> String {
    let counts = format!(
        "tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\"",
        cases.len(),
        totals.failed(),
        totals.skip + totals.xfail,
        secs(elapsed)
    );
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(x, "<testsuites name=\"{PROGRAM}\" {counts}>");
    let _ = writeln!(x, "  <testsuite name=\"{PROGRAM}\" {counts}>");
    if !properties.is_empty() {
        x.push_str("    <properties>\n");
        for (k, v) in properties {
            let _ = writeln!(x, "      <property name=\"{}\" value=\"{}\"/>", escape_attr(k), escape_attr(v));
        }
        x.push_str("    </properties>\n");
    }
    for c in cases {
        let open = format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            escape_attr(&c.classname),
            escape_attr(&c.name),
            secs(c.time)
        );
        let message = escape_attr(&c.headline);
        match c.kind {
            Kind::Pass => {
                let _ = writeln!(x, "{open}/>");
            }
            Kind::Fail | Kind::XPass => {
                let (kind, text) = if c.kind == Kind::Fail { ("fail", c.report.as_str()) } else { ("xpass", XPASS_MESSAGE) };
                let _ = writeln!(x, "{open}>\n      <failure message=\"{message}\" type=\"{kind}\">{}</failure>", escape_text(text));
                x.push_str("    </testcase>\n");
            }
            Kind::Skip => {
                let _ = writeln!(x, "{open}>\n      <skipped message=\"{message}\"/>\n    </testcase>");
            }
            Kind::XFail => {
                let _ = write!(x, "{open}>\n      <skipped message=\"xfail: {message}\" type=\"xfail\"/>\n");
                if !c.report.is_empty() {
                    let _ = writeln!(x, "      <system-out>{}</system-out>", escape_text(&c.report));
                }
                x.push_str("    </testcase>\n");
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

impl<W: Write> Reporter for Junit<W> {
    fn report(&mut self, event: &Event<'_>) -> io::Result<()> {
        match *event {
            Event::RunStarted { .. } | Event::CaseStarted { .. } => Ok(()),
            Event::CaseFinished { result, iteration } => {
                self.cases.push(TestCase {
                    classname: classname(&result.id),
                    name: trial_name(&result.id, iteration).into_owned(),
                    time: result.elapsed,
                    kind: Kind::of(&result.verdict),
                    headline: headline(result),
                    report: result.report.clone(),
                });
                Ok(())
            }
            Event::RunFinished { totals, elapsed, .. } => {
                let doc = render(&self.cases, &self.properties, &totals, elapsed);
                self.out.write_all(doc.as_bytes())?;
                self.out.flush()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{CaseResult, Verdict};
    use crate::report::event::Repeat;

    /// A strict little XML reader for the tests: one root element, matching tags, quoted
    /// attributes, only the five entities and numeric references, no forbidden characters.
    /// Returns the tree with text and attributes unescaped.
    mod xml {
        #[derive(Debug, Default)]
        pub struct Element {
            pub name: String,
            pub attrs: Vec<(String, String)>,
            pub children: Vec<Element>,
            pub text: String,
        }

        impl Element {
            pub fn attr(&self, k: &str) -> Option<&str> {
                self.attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
            }
            pub fn all(&self, name: &str) -> Vec<&Element> {
                self.children.iter().filter(|c| c.name == name).collect()
            }
        }

        struct P<'a> {
            s: &'a str,
            i: usize,
        }

        impl P<'_> {
            fn rest(&self) -> &str {
                &self.s[self.i..]
            }
            fn eat(&mut self, t: &str) -> bool {
                let ok = self.rest().starts_with(t);
                if ok {
                    self.i += t.len();
                }
                ok
            }
            fn ws(&mut self) {
                while self.rest().starts_with(|c: char| c.is_ascii_whitespace()) {
                    self.i += 1;
                }
            }
            fn name(&mut self) -> Result<String, String> {
                let n: String = self.rest().chars().take_while(|c| c.is_alphanumeric() || "-_:.".contains(*c)).collect();
                if n.is_empty() {
                    return Err(format!("expected a name at {}", self.i));
                }
                self.i += n.len();
                Ok(n)
            }
            /// Unescapes until `stop`.
            fn chars_until(&mut self, stop: char, in_attr: bool) -> Result<String, String> {
                let mut out = String::new();
                loop {
                    let Some(c) = self.rest().chars().next() else { return Err("unexpected end".into()) };
                    if c == stop {
                        return Ok(out);
                    }
                    let forbidden = !matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
                    if forbidden || c == '<' || (in_attr && c == '"') {
                        return Err(format!("raw {c:?} at {}", self.i));
                    }
                    if c == '&' {
                        let end = self.rest().find(';').ok_or("unterminated reference")?;
                        let r = &self.rest()[1..end];
                        let v = match r {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            _ => {
                                let n = match r.strip_prefix("#x") {
                                    Some(h) => u32::from_str_radix(h, 16),
                                    None => r.strip_prefix('#').ok_or(format!("unknown entity &{r};"))?.parse(),
                                };
                                n.ok().and_then(char::from_u32).ok_or(format!("bad reference &{r};"))?
                            }
                        };
                        out.push(v);
                        self.i += end + 1;
                    } else {
                        out.push(c);
                        self.i += c.len_utf8();
                    }
                }
            }
            fn element(&mut self) -> Result<Element, String> {
                if !self.eat("<") {
                    return Err(format!("expected '<' at {}", self.i));
                }
                let mut e = Element { name: self.name()?, ..Element::default() };
                loop {
                    self.ws();
                    if self.eat("/>") {
                        return Ok(e);
                    }
                    if self.eat(">") {
                        break;
                    }
                    let k = self.name()?;
                    if !self.eat("=\"") {
                        return Err(format!("attribute {k} is not `=\"...\"`"));
                    }
                    let v = self.chars_until('"', true)?;
                    self.i += 1;
                    if e.attrs.iter().any(|(n, _)| *n == k) {
                        return Err(format!("duplicate attribute {k}"));
                    }
                    e.attrs.push((k, v));
                }
                loop {
                    e.text.push_str(&self.chars_until('<', false)?);
                    if self.eat("</") {
                        let n = self.name()?;
                        if n != e.name || !self.eat(">") {
                            return Err(format!("</{n}> closes <{}>", e.name));
                        }
                        return Ok(e);
                    }
                    e.children.push(self.element()?);
                }
            }
        }

        pub fn parse(doc: &str) -> Result<Element, String> {
            let mut p = P { s: doc, i: 0 };
            if p.eat("<?xml") {
                let end = p.rest().find("?>").ok_or("unterminated declaration")?;
                p.i += end + 2;
            }
            p.ws();
            let root = p.element()?;
            p.ws();
            if !p.rest().is_empty() {
                return Err(format!("content after the root element: {:?}", p.rest()));
            }
            Ok(root)
        }
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

    fn document(results: &[CaseResult]) -> String {
        let mut j = Junit::new(Vec::new(), vec![("kernel".into(), "6.18.0-<test>".into())]);
        let ids: Vec<String> = results.iter().map(|r| r.id.clone()).collect();
        let mut totals = Totals::default();
        j.report(&Event::RunStarted { cases: &ids, jobs: 1, repeat: Repeat::ONCE }).unwrap();
        for r in results {
            totals.record(&r.verdict);
            j.report(&Event::CaseFinished { result: r, iteration: None }).unwrap();
        }
        j.report(&Event::RunFinished { totals, elapsed: Duration::from_millis(2500), unstable: &[] }).unwrap();
        String::from_utf8(j.out).unwrap()
    }

    const NASTY: &str = "a <b> & \"c\" 'd' ]]> \u{1b}[31m\ttab\r\nline 2";

    fn fixtures() -> Vec<CaseResult> {
        vec![
            pass(),
            CaseResult {
                id: "connect::v6_basic".into(),
                verdict: Verdict::Fail,
                elapsed: Duration::from_millis(1103),
                report: format!("case: x\nexpectations that did not hold:\n  server: {NASTY}\n"),
                ..pass()
            },
            CaseResult { id: "join::sub::skipped".into(), verdict: Verdict::Skip(NASTY.into()), ..pass() },
            CaseResult { id: "connect::known".into(), verdict: Verdict::XFail("issue 42".into()), report: "it broke".into(), ..pass() },
            CaseResult { id: "connect::stale".into(), verdict: Verdict::XPass, ..pass() },
            CaseResult { id: "top".into(), ..pass() },
        ]
    }

    #[test]
    fn document_is_well_formed_and_round_trips() {
        let doc = document(&fixtures());
        let root = xml::parse(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        assert_eq!(root.name, "testsuites");
        let suites = root.all("testsuite");
        assert_eq!(suites.len(), 1);
        let suite = suites[0];
        assert_eq!(
            [suite.attr("tests"), suite.attr("failures"), suite.attr("errors"), suite.attr("skipped"), suite.attr("time")],
            [Some("6"), Some("2"), Some("0"), Some("2"), Some("2.500")]
        );
        assert_eq!(suite.all("properties")[0].all("property")[0].attr("value"), Some("6.18.0-<test>"));
        let cases = suite.all("testcase");
        let names: Vec<_> = cases.iter().map(|c| (c.attr("classname").unwrap(), c.attr("name").unwrap(), c.attr("time").unwrap())).collect();
        assert_eq!(names, [
            ("mptcp-conformance.connect", "connect::v4_basic", "0.012"),
            ("mptcp-conformance.connect", "connect::v6_basic", "1.103"),
            ("mptcp-conformance.join.sub", "join::sub::skipped", "0.012"),
            ("mptcp-conformance.connect", "connect::known", "0.012"),
            ("mptcp-conformance.connect", "connect::stale", "0.012"),
            ("mptcp-conformance", "top", "0.012"),
        ]);
        assert!(cases[0].children.is_empty());

        let cleaned = NASTY.replace('\u{1b}', "\\u{1b}");
        let failure = &cases[1].all("failure")[0];
        assert_eq!(failure.attr("message"), Some("server: a <b> & \"c\" 'd' ]]> \\u{1b}[31m tab"));
        assert_eq!(failure.text, format!("case: x\nexpectations that did not hold:\n  server: {cleaned}\n"));

        let skipped = &cases[2].all("skipped")[0];
        assert_eq!(skipped.attr("message").map(str::to_owned), Some(cleaned.split_whitespace().collect::<Vec<_>>().join(" ")));

        let xfail = &cases[3];
        assert_eq!(xfail.all("skipped")[0].attr("type"), Some("xfail"));
        assert_eq!(xfail.all("skipped")[0].attr("message"), Some("xfail: issue 42"));
        assert_eq!(xfail.all("system-out")[0].text, "it broke");

        let xpass = &cases[4].all("failure")[0];
        assert_eq!((xpass.attr("type"), xpass.attr("message")), (Some("xpass"), Some(XPASS_MESSAGE)));
    }

    #[test]
    fn exact_shape_of_a_small_document() {
        let doc = document(&[pass(), CaseResult { verdict: Verdict::Skip("needs root".into()), id: "connect::v6_basic".into(), ..pass() }]);
        assert_eq!(
            doc,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="mptcp-conformance" tests="2" failures="0" errors="0" skipped="1" time="2.500">
  <testsuite name="mptcp-conformance" tests="2" failures="0" errors="0" skipped="1" time="2.500">
    <properties>
      <property name="kernel" value="6.18.0-&lt;test&gt;"/>
    </properties>
    <testcase classname="mptcp-conformance.connect" name="connect::v4_basic" time="0.012"/>
    <testcase classname="mptcp-conformance.connect" name="connect::v6_basic" time="0.012">
      <skipped message="needs root"/>
    </testcase>
  </testsuite>
</testsuites>
"#
        );
    }

    #[test]
    fn the_checker_rejects_broken_xml() {
        assert!(xml::parse("<a><b></a></b>").is_err());
        assert!(xml::parse("<a x=\"1 & 2\"/>").is_err());
        assert!(xml::parse("<a>1 < 2</a>").is_err());
        assert!(xml::parse("<a>\u{1b}</a>").is_err());
        assert!(xml::parse("<a/><b/>").is_err());
        assert!(xml::parse("<a x=\"&#10;\">&amp;&#x3c;</a>").is_ok());
    }
}
