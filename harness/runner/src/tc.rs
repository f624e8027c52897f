//! Traffic control inside a host: impairments (netem, tbf) and classifiers/actions.
//!
//! Commands run through the `tc` tool inside the host's namespace, and each qdisc command
//! is verified by reading the device's qdiscs back (`tc -j qdisc show dev DEV`): an
//! impairment that did not take effect fails the case instead of letting it pass unimpaired.
//! Everything lives in the case's namespaces and goes with them.

use crate::netns::Netns;
use crate::nft::run_in;

/// Runs one `tc` command (words after `tc`) and, for `qdisc add|replace ... dev D ... KIND`,
/// checks that a qdisc of that kind is now on D.
pub fn run(ns: &Netns, host: &str, cmd: &str) -> Result<(), String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let out = run_in(ns, "tc", &words, None).map_err(|e| format!("{host}: cannot run tc: {e}"))?;
    if !out.status.success() {
        return Err(format!("{host}: `tc {cmd}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    if words.first() == Some(&"filter") && matches!(words.get(1), Some(&"add") | Some(&"replace") | Some(&"change")) {
        verify_filter(ns, host, cmd, &words)?;
    }
    if words.first() == Some(&"qdisc") && matches!(words.get(1), Some(&"add") | Some(&"replace") | Some(&"change")) {
        let dev = words.iter().position(|w| *w == "dev").and_then(|p| words.get(p + 1)).copied();
        let kind = ["netem", "tbf", "htb", "fq", "pfifo", "prio", "clsact", "ingress"].into_iter().find(|k| words.contains(k));
        if let (Some(dev), Some(kind)) = (dev, kind) {
            let show = run_in(ns, "tc", &["qdisc", "show", "dev", dev], None).map_err(|e| format!("{host}: cannot run tc: {e}"))?;
            let text = String::from_utf8_lossy(&show.stdout);
            if !text.lines().any(|l| l.starts_with(&format!("qdisc {kind} "))) {
                return Err(format!("{host}: `tc {cmd}` did not take effect: `tc qdisc show dev {dev}` shows:\n{}", text.trim()));
            }
        }
    }
    Ok(())
}

/// The classifier and action kinds a `tc filter add` command names.
fn filter_kinds<'a>(words: &[&'a str]) -> (Option<&'a str>, Vec<&'a str>) {
    let classifier = ["fw", "u32", "bpf", "flower", "matchall", "basic"].into_iter().find(|k| words.contains(k));
    let actions = words
        .windows(2)
        .filter(|w| matches!(w[0], "action" | "pipe" | "continue"))
        .map(|w| w[1])
        .filter(|k| ["pedit", "csum", "drop", "mirred", "gact", "skbedit"].contains(k))
        .collect();
    (classifier, actions)
}

/// `tc filter add dev D <ingress|egress|parent P> ... <classifier> ... action <kind>`: the
/// device's filter dump (`tc filter show dev D <same parent>`) must list the classifier and
/// every action named, else the impairment did not take effect.
fn verify_filter(ns: &Netns, host: &str, cmd: &str, words: &[&str]) -> Result<(), String> {
    let Some(dev) = words.iter().position(|w| *w == "dev").and_then(|p| words.get(p + 1)).copied() else { return Ok(()) };
    let mut show = vec!["filter", "show", "dev", dev];
    if let Some(dir) = words.iter().find(|w| matches!(**w, "ingress" | "egress")) {
        show.push(dir);
    } else if let Some(p) = words.iter().position(|w| *w == "parent").and_then(|p| words.get(p + 1)) {
        show.extend(["parent", p]);
    }
    let (classifier, actions) = filter_kinds(words);
    let out = run_in(ns, "tc", &show, None).map_err(|e| format!("{host}: cannot run tc: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = classifier
        .into_iter()
        .filter(|k| !text.lines().any(|l| l.contains(&format!(" {k} "))))
        .chain(actions.into_iter().filter(|k| !text.contains("action order") || !text.contains(k)))
        .collect();
    if !missing.is_empty() {
        return Err(format!("{host}: `tc {cmd}` did not take effect: `tc {}` does not show {}:\n{}", show.join(" "), missing.join(", "), text.trim()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_commands_name_their_classifier_and_actions() {
        let cmd = "filter add dev ns2eth1 egress protocol ip prio 1000 handle 42 fw action pedit munge offset 148 u8 invert pipe csum tcp index 100";
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(filter_kinds(&words), (Some("fw"), vec!["pedit", "csum"]));
    }
}
