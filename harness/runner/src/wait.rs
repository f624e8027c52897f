//! Deadlines and the one polling helper.
//!
//! Every wait in the harness is "until this condition holds or this deadline passes". Where
//! the kernel offers a readiness signal (poll(2) on a socket, a netlink multicast message) the
//! harness blocks on it with the remaining time as timeout. Where it does not (a MIB counter,
//! an `mptcp_info` field), [`poll_until`] re-checks with a short interval: that interval is
//! the only sleep in the harness, and it is always bounded by a deadline.

use std::time::{Duration, Instant};

/// A point in time after which a wait gives up.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// `d` from now.
    pub fn after(d: Duration) -> Self {
        Deadline(Instant::now() + d)
    }
    /// Time left (zero when passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
    /// Whether it has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }
    /// Time left in milliseconds for poll(2), at least 1 unless passed, at most `cap`.
    pub fn poll_timeout_ms(&self, cap: Duration) -> u16 {
        let ms = self.remaining().min(cap).as_millis();
        u16::try_from(ms).unwrap_or(u16::MAX)
    }
    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        if self.0 <= other.0 { self } else { other }
    }
}

/// Interval between two checks of a condition that has no readiness signal.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Calls `check` until it returns `Some` or the deadline passes; returns the last `None` as
/// `Err(())` in that case. `check` runs at least once, also with a passed deadline.
pub fn poll_until<T>(deadline: Deadline, mut check: impl FnMut() -> Option<T>) -> Result<T, ()> {
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if deadline.passed() {
            return Err(());
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline.remaining()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_until_returns_value_or_gives_up() {
        let mut n = 0;
        assert_eq!(poll_until(Deadline::after(Duration::from_secs(5)), || { n += 1; (n == 3).then_some(n) }), Ok(3));
        let start = Instant::now();
        assert_eq!(poll_until(Deadline::after(Duration::from_millis(30)), || None::<()>), Err(()));
        assert!(start.elapsed() >= Duration::from_millis(30));
        // A passed deadline still checks once.
        assert_eq!(poll_until(Deadline::after(Duration::ZERO), || Some(1)), Ok(1));
    }
}
