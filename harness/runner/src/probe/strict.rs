//! Strict mode: a case that cannot run here fails, unless what it misses is allow-listed.

use crate::case::{CaseResult, Verdict};
use mptcp_spec::Case;

use super::{Capabilities, needs};

/// Whether, and how, a case that cannot run here fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strictness {
    /// `MPTCP_CT_REQUIRE=1`: every skip fails, no allow-list.
    pub require: bool,
    /// `MPTCP_CT_STRICT=1` / `--strict`: a skip fails unless each missing capability is allowed.
    pub strict: bool,
    /// Capabilities this machine is known to lack (`MPTCP_CT_ALLOW_MISSING`,
    /// `MPTCP_CT_ALLOW_FILE`): an exact name, a prefix ending in `*` (`counter:*`), or a name
    /// without `:` matching a capability's last part (`netem` matches `qdisc:netem`).
    pub allow: Vec<String>,
}

static STRICT_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Strictness {
    /// From the environment; `cli_strict` is `--strict`. Fails if the allow file is unreadable.
    pub fn from_env(cli_strict: bool) -> Result<Strictness, String> {
        let mut allow = Vec::new();
        if let Ok(list) = std::env::var("MPTCP_CT_ALLOW_MISSING") {
            allow.extend(parse_allow_list(&list.replace(',', "\n")));
        }
        if let Some(path) = std::env::var_os("MPTCP_CT_ALLOW_FILE") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("read the allow-list MPTCP_CT_ALLOW_FILE={}: {e}", std::path::Path::new(&path).display()))?;
            allow.extend(parse_allow_list(&text));
        }
        let s = Strictness { require: crate::env::require(), strict: cli_strict || crate::env::strict(), allow };
        if s.active() {
            STRICT_REQUESTED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(s)
    }

    /// Whether this process asked for strict mode (or MPTCP_CT_REQUIRE) anywhere: then a
    /// counter the kernel lacks is a missing capability even where a case only names it in
    /// its expectations (upstream's "expect all features").
    pub fn requested() -> bool {
        STRICT_REQUESTED.load(std::sync::atomic::Ordering::Relaxed) || crate::env::strict() || crate::env::require()
    }

    /// Whether skips can become failures at all.
    pub fn active(&self) -> bool {
        self.require || self.strict
    }

    /// Whether a missing capability is allowed.
    pub fn allows(&self, cap: &str) -> bool {
        self.allow.iter().any(|a| allow_matches(a, cap))
    }

    /// Applies strict mode to a result: a skip becomes a failure unless every capability it
    /// misses is allowed (under `require`, always).
    pub fn apply(&self, caps: &Capabilities, case: Option<&Case>, result: CaseResult) -> CaseResult {
        let Verdict::Skip(reason) = &result.verdict else { return result };
        if !self.active() {
            return result;
        }
        if self.require {
            let report = format!("could not run here, and MPTCP_CT_REQUIRE=1 makes every skip a failure: {reason}\n");
            return CaseResult { verdict: Verdict::Fail, report, ..result };
        }
        let missing: Vec<String> = match (caps.blocking_capability(), case) {
            (Some(b), _) => vec![b.to_owned()],
            (None, Some(c)) => caps.missing(&needs(c)).into_iter().map(|(n, _)| n).collect(),
            (None, None) => Vec::new(),
        };
        let denied: Vec<&String> = missing.iter().filter(|m| !self.allows(m)).collect();
        if !missing.is_empty() && denied.is_empty() {
            let reason = format!("{reason} [allowed missing: {}]", missing.join(", "));
            return CaseResult { verdict: Verdict::Skip(reason), ..result };
        }
        let names = if denied.is_empty() { "(none named)".to_owned() } else { denied.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") };
        let report = format!(
            "could not run here, and strict mode (--strict, MPTCP_CT_STRICT=1) makes that a failure: {reason}\n\
             not in the allow-list (MPTCP_CT_ALLOW_MISSING / MPTCP_CT_ALLOW_FILE): {names}\n"
        );
        CaseResult { verdict: Verdict::Fail, report, ..result }
    }

    /// Allow-list entries that match no capability the probe knows (likely typos).
    pub fn unused<'a>(&'a self, caps: &Capabilities) -> Vec<&'a str> {
        self.allow
            .iter()
            .filter(|a| {
                // `!name` allows a variant for kernels without `name`: known if `name` is.
                let a = a.strip_prefix('!').unwrap_or(a);
                !caps.list.iter().any(|c| allow_matches(a, &c.name)) && !a.starts_with("lang:")
            })
            .map(String::as_str)
            .collect()
    }
}

/// Entries of an allow-list text: one per line, `#` starts a comment, blank lines ignored.
pub fn parse_allow_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn allow_matches(entry: &str, cap: &str) -> bool {
    if let Some(prefix) = entry.strip_suffix('*') {
        return cap.starts_with(prefix);
    }
    cap == entry || (!entry.contains(':') && cap.rsplit(':').next() == Some(entry))
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures::*;
    use std::time::Duration;

    fn skipped(reason: &str) -> CaseResult {
        CaseResult { id: "t::c".into(), verdict: Verdict::Skip(reason.into()), elapsed: Duration::ZERO, report: String::new(), artifacts: None }
    }

    #[test]
    fn strict_mode_honours_the_allow_list() {
        let c = case(RICH);
        let all: Vec<String> = needs(&c).into_keys().collect();
        let present: Vec<&str> = all.iter().map(String::as_str).filter(|n| !n.starts_with("lang:") && *n != "qdisc:netem").collect();
        let mut k = caps(&present, &["qdisc:netem"]);
        k.counters.insert("MPTcpExtMPJoinSynTx".into());
        let off = Strictness::default();
        assert_eq!(off.apply(&k, Some(&c), skipped("x")).verdict, Verdict::Skip("x".into()));

        let strict = Strictness { strict: true, allow: vec!["netem".into()], ..Strictness::default() };
        let r = strict.apply(&k, Some(&c), skipped("x"));
        assert_eq!(r.verdict, Verdict::Fail, "lang:packet loss is not allowed");
        assert!(r.report.contains("not in the allow-list (MPTCP_CT_ALLOW_MISSING / MPTCP_CT_ALLOW_FILE): lang:packet loss\n"), "{}", r.report);

        let lenient = Strictness { strict: true, allow: vec!["netem".into(), "lang:*".into()], ..Strictness::default() };
        assert_eq!(lenient.apply(&k, Some(&c), skipped("x")).verdict, Verdict::Skip("x [allowed missing: lang:packet loss, qdisc:netem]".into()));

        let require = Strictness { require: true, ..lenient.clone() };
        assert_eq!(require.apply(&k, Some(&c), skipped("x")).verdict, Verdict::Fail, "MPTCP_CT_REQUIRE ignores the allow-list");

        let mut root = k.clone();
        root.list.retain(|c| c.name != "root");
        root.push("root", false, "needs root");
        root.blocker = Some("needs root".into());
        assert_eq!(lenient.apply(&root, Some(&c), skipped("needs root")).verdict, Verdict::Fail);
        let root_ok = Strictness { allow: vec!["root".into()], ..lenient };
        assert!(matches!(root_ok.apply(&root, Some(&c), skipped("needs root")).verdict, Verdict::Skip(_)));
    }

    #[test]
    fn allow_lists_parse_and_match() {
        let list = parse_allow_list("# known gaps of this VM\nnetem\n  tc:pedit  # no NET_ACT_PEDIT\n\ncounter:*\n");
        assert_eq!(list, ["netem", "tc:pedit", "counter:*"]);
        assert!(allow_matches("netem", "qdisc:netem"));
        assert!(allow_matches("tc:pedit", "tc:pedit"));
        assert!(!allow_matches("pedit:x", "tc:pedit"));
        assert!(allow_matches("counter:*", "counter:MPTcpExtX"));
        assert!(!allow_matches("tbf", "qdisc:netem"));
        let s = Strictness { strict: true, allow: list, ..Strictness::default() };
        let k = caps(&["qdisc:netem", "tc:pedit"], &[]);
        assert_eq!(s.unused(&k), ["counter:*"]);
    }
}
