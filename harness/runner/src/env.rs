//! Environment variables the harness reads, in one place.
//!
//! | variable | effect |
//! |---|---|
//! | `MPTCP_CT_REQUIRE=1` | a case that cannot run (no root, no MPTCP, missing capability) fails instead of being skipped |
//! | `MPTCP_CT_KEEP=1` | keep a failed case's namespaces (named, for `ip netns exec`) and print how to enter them |
//! | `MPTCP_CT_NAMED=1` | name every namespace under /run/netns while it lives (debugging) |
//! | `MPTCP_CT_SLOW=<factor>` | multiply every deadline by this factor (default 1) |
//! | `KSFT_MACHINE_SLOW=yes` | kselftest's slow-machine flag: at least factor 4 |
//! | `MPTCP_CT_VERBOSE=1` | print every case's verdict and wall time on stderr |
//! | `MPTCP_CT_ARTIFACTS=<dir>` | where failed cases leave their report bundle (default `target/mptcp-artifacts`) |

use std::time::Duration;

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "1" | "yes" | "true" | "on"))
}

/// `MPTCP_CT_REQUIRE`: skips become failures.
pub fn require() -> bool {
    flag("MPTCP_CT_REQUIRE")
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
