//! Throughput expectations: the longest a connection's transfer may take, computed from the
//! link rates a case shapes (`simult_flows.sh`, `mptcp_connect -T`).
//!
//! `max_duration = { rate = "20mbit", slack = "450ms" }` on a connection: the bulkier
//! direction's bytes at `rate` (the sum of the rates of the parallel paths), of which 90% is
//! payload (upstream's 10% allowance for headers), plus `slack`. The runner scales the slack
//! by its slowness factor, not the rate part: the shaper imposes the rate, whatever the CPU.
//! With `single_path = "10mbit"` (the fastest single path's rate) the bound never exceeds
//! what that path alone needs at its full rate, so a slack scaled for a slow machine (a TCG
//! VM: x10) cannot let a transfer that used one subflow pass.

use std::time::Duration;

/// Parses a rate as `tc` writes bits per second: `"10mbit"`, `"500kbit"`, `"1gbit"`,
/// `"64000bit"`. (`tc`'s `mbps` means megabytes: refused here to avoid the confusion.)
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("expected a rate like \"10mbit\", found {text:?}"))?;
    let mult: u64 = match unit {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        o => return Err(format!("unknown rate unit {o:?} in {text:?} (use bit, kbit, mbit, gbit: bits per second)")),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("rate {text:?} is out of range")),
        Some(r) => Ok(r),
    }
}

/// The bound on a transfer's duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxDuration {
    /// Aggregate rate of the paths, bits per second.
    pub rate_bps: u64,
    /// Fixed allowance (handshakes, the join, closing), before slowness scaling.
    pub slack: Duration,
    /// Rate of the fastest single path, bits per second: a cap on the bound.
    pub single_path_bps: Option<u64>,
}

impl MaxDuration {
    /// The time `bytes` take at 90% of the rate (as upstream: `size * 8 * 10 / (rate * 9)`).
    pub fn budget(&self, bytes: u64) -> Duration {
        let bits = u128::from(bytes) * 8 * 10;
        let nanos = bits * 1_000_000_000 / (u128::from(self.rate_bps) * 9);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The time `bytes` take at the full rate of the fastest single path, if one is given.
    pub fn single_path_time(&self, bytes: u64) -> Option<Duration> {
        self.single_path_bps.map(|r| {
            let nanos = u128::from(bytes) * 8 * 1_000_000_000 / u128::from(r);
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        })
    }

    /// The bound: the budget plus the slack scaled by `slowness`, capped by the single path's
    /// time.
    pub fn bound(&self, bytes: u64, slowness: f64) -> Duration {
        let b = self.budget(bytes) + self.slack.mul_f64(slowness.max(1.0));
        self.single_path_time(bytes).map_or(b, |cap| b.min(cap))
    }

    /// How the bound was computed, for reports.
    pub fn explain(&self, bytes: u64, slowness: f64) -> String {
        let mut s = format!(
            "{bytes} bytes at 90% of {} = {} ms, + slack {} ms x slowness {slowness}",
            rate_text(self.rate_bps),
            self.budget(bytes).as_millis(),
            self.slack.as_millis()
        );
        if let (Some(r), Some(t)) = (self.single_path_bps, self.single_path_time(bytes)) {
            s += &format!("; at most {} ms, one path's time at {}", t.as_millis(), rate_text(r));
        }
        s
    }
}

fn rate_text(bps: u64) -> String {
    match bps {
        b if b % 1_000_000 == 0 => format!("{} Mbit/s", b / 1_000_000),
        b if b % 1_000 == 0 => format!("{} kbit/s", b / 1_000),
        b => format!("{b} bit/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_bounds() {
        // simult_flows.sh: 16 MiB over 10+10 and 10+3 Mbit/s, plus 400 ms + 50 ms.
        let m = MaxDuration { rate_bps: parse_rate("20mbit").unwrap(), slack: Duration::from_millis(450), single_path_bps: None };
        assert_eq!(m.budget(16 << 20).as_millis(), 7456);
        assert_eq!(m.bound(16 << 20, 1.0).as_millis(), 7906);
        assert_eq!(m.bound(16 << 20, 10.0).as_millis(), 7456 + 4500);
        let u = MaxDuration { rate_bps: parse_rate("13mbit").unwrap(), slack: Duration::from_millis(450), single_path_bps: None };
        assert_eq!(u.bound(16 << 20, 1.0).as_millis(), 11471 + 450);
        assert!(u.explain(16 << 20, 1.0).contains("at 90% of 13 Mbit/s = 11471 ms"));
    }

    #[test]
    fn one_path_caps_a_slowness_scaled_bound() {
        // 10 + 3 Mbit/s under TCG (slowness 10): 11471 + 4500 ms would let the 10 Mbit/s
        // path alone (16 MiB in 13421 ms at full rate) pass; the cap does not.
        let u = MaxDuration { rate_bps: 13_000_000, slack: Duration::from_millis(450), single_path_bps: Some(10_000_000) };
        assert_eq!(u.bound(16 << 20, 10.0).as_millis(), 13421);
        assert_eq!(u.bound(16 << 20, 1.0).as_millis(), 11921);
        assert!(u.explain(16 << 20, 10.0).ends_with("at most 13421 ms, one path's time at 10 Mbit/s"));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert!(parse_rate("10mbps").unwrap_err().contains("unknown rate unit \"mbps\""));
        assert!(parse_rate("fast").unwrap_err().contains("expected a rate"));
        assert!(parse_rate("0mbit").unwrap_err().contains("out of range"));
    }
}
