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
