//! Environment variables the harness reads, in one place.
//!
//! | variable | effect |
//! |---|---|
//! | `MPTCP_CT_REQUIRE=1` | a case that cannot run (no root, no MPTCP, missing capability) fails instead of being skipped; no allow-list |
//! | `MPTCP_CT_STRICT=1` | strict mode (also `run --strict`): a skip fails unless every capability it misses is allow-listed |
//! | `MPTCP_CT_ALLOW_MISSING=<list>` | strict mode's allow-list, comma-separated: `qdisc:netem,tc:pedit`, `netem` (a capability's last part), `counter:*` (a prefix) |
//! | `MPTCP_CT_ALLOW_FILE=<path>` | more allow-list entries, one per line, `#` comments |
//! | `MPTCP_CT_PCAP=0` | no packet capture (default: every interface of every host is captured; the pcapng is kept only when the case fails) |
//! | `MPTCP_CT_SNAPLEN=<bytes>` | bytes kept of each captured packet (default 256: headers and MPTCP options) |
//! | `MPTCP_CT_PCAP_MIB=<MiB>` | capture memory per case; the oldest packets are dropped beyond it (default 8) |
//! | `MPTCP_CT_KMSG=0` | do not watch the kernel log for splats (default: watched; a splat fails the case) |
//! | `MPTCP_CT_KEEP=1` | keep a failed case's namespaces (named, for `ip netns exec`) and print how to enter them |
//! | `MPTCP_CT_NAMED=1` | name every namespace under /run/netns while it lives (debugging) |
//! | `MPTCP_CT_SLOW=<factor>` | multiply every deadline by this factor (default 1) |
//! | `KSFT_MACHINE_SLOW=yes` | kselftest's slow-machine flag: at least factor 4 |
//! | `MPTCP_CT_VERBOSE=1` | print every case's verdict and wall time on stderr |
//! | `MPTCP_CT_ARTIFACTS=<dir>` | where failed cases leave their report bundle (default `target/mptcp-artifacts`) |
//! | `MPTCP_CT_KNOWN_FAILURES=<path>` | known failures of the kernel under test, one `<case id> <reason>` per line (`#` comments): such a case's failure is an xfail with the reason, its pass a pass (`ci/kernels.toml`'s `known_failures` for the matrix) |

use std::time::Duration;

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "1" | "yes" | "true" | "on"))
}

/// `MPTCP_CT_REQUIRE`: skips become failures.
pub fn require() -> bool {
    flag("MPTCP_CT_REQUIRE")
}

/// `MPTCP_CT_STRICT`: skips become failures unless allow-listed.
pub fn strict() -> bool {
    flag("MPTCP_CT_STRICT")
}

fn off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "0" | "no" | "false" | "off"))
}

/// `MPTCP_CT_PCAP`: capture packets (default on).
pub fn pcap() -> bool {
    !off("MPTCP_CT_PCAP")
}

/// `MPTCP_CT_SNAPLEN`: bytes kept per captured packet (default 256, at least 64).
pub fn snaplen() -> u32 {
    std::env::var("MPTCP_CT_SNAPLEN").ok().and_then(|v| v.parse::<u32>().ok()).map_or(256, |n| n.clamp(64, 262_144))
}

/// `MPTCP_CT_PCAP_MIB`: capture memory per case in bytes (default 8 MiB).
pub fn pcap_max_bytes() -> usize {
    std::env::var("MPTCP_CT_PCAP_MIB").ok().and_then(|v| v.parse::<usize>().ok()).filter(|n| *n > 0).unwrap_or(8) << 20
}

/// `MPTCP_CT_KMSG`: watch the kernel log (default on).
pub fn kmsg() -> bool {
    !off("MPTCP_CT_KMSG")
}

/// `MPTCP_CT_KEEP`: keep failed topologies.
pub fn keep() -> bool {
    flag("MPTCP_CT_KEEP")
}

/// `MPTCP_CT_VERBOSE`: print each case's verdict and time.
pub fn verbose() -> bool {
    flag("MPTCP_CT_VERBOSE")
}

/// `MPTCP_CT_NAMED`: mount every namespace under /run/netns.
pub fn named_namespaces() -> bool {
    flag("MPTCP_CT_NAMED")
}

/// The slowness factor: `MPTCP_CT_SLOW`, raised to 4 by `KSFT_MACHINE_SLOW=yes`.
pub fn slowness() -> f64 {
    let explicit = std::env::var("MPTCP_CT_SLOW").ok().and_then(|v| v.parse::<f64>().ok()).filter(|f| *f >= 1.0);
    let ksft = if flag("KSFT_MACHINE_SLOW") { 4.0 } else { 1.0 };
    explicit.unwrap_or(1.0).max(ksft)
}

/// Scales a base deadline by the slowness factor and by how many cases run at once (each
/// concurrent case competes for the same CPUs: +50% per extra thread, capped at 4x).
pub fn scaled(base: Duration, concurrency: usize) -> Duration {
    let conc = (1.0 + 0.5 * (concurrency.saturating_sub(1) as f64)).min(4.0);
    base.mul_f64(slowness() * conc)
}

/// `MPTCP_CT_KNOWN_FAILURES`: case id -> why it fails on the kernel under test. A file that
/// cannot be read or a line without a reason is reported once on stderr and ignored.
pub fn known_failures() -> &'static std::collections::BTreeMap<String, String> {
    static LIST: std::sync::OnceLock<std::collections::BTreeMap<String, String>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        let Some(path) = std::env::var_os("MPTCP_CT_KNOWN_FAILURES").filter(|p| !p.is_empty()) else {
            return Default::default();
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_known_failures(&text).unwrap_or_else(|e| {
                eprintln!("MPTCP_CT_KNOWN_FAILURES ({}): {e}; ignored", std::path::Path::new(&path).display());
                Default::default()
            }),
            Err(e) => {
                eprintln!("MPTCP_CT_KNOWN_FAILURES ({}): {e}; ignored", std::path::Path::new(&path).display());
                Default::default()
            }
        }
    })
}

/// Parses a known-failures file: `<case id> <reason>` per line, `#` comments, blank lines.
pub fn parse_known_failures(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(char::is_whitespace) {
            Some((id, reason)) if !reason.trim().is_empty() => {
                out.insert(id.to_owned(), reason.trim().to_owned());
            }
            _ => return Err(format!("line {}: expected `<case id> <reason>`, found {line:?}", n + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_failures_are_id_and_reason_per_line() {
        let l = parse_known_failures("# 6.1\n\njoin::fullmesh::fullmesh_test_2x1  opens a duplicate subflow\n").unwrap();
        assert_eq!(l.get("join::fullmesh::fullmesh_test_2x1").map(String::as_str), Some("opens a duplicate subflow"));
        assert_eq!(l.len(), 1);
        let e = parse_known_failures("a::b reason\njoin::x\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("join::x"), "{e}");
    }
}
