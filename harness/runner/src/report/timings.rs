//! Where the time goes (`run --timings`): the run's wall time, the sum of the case times and
//! the speed-up parallelism bought, and the slowest cases.
//!
//! ```text
//! timings: 39 result(s) in 4.21 s wall on 2 job(s); case time 7.80 s in total (1.85x from parallelism)
//! slowest cases (max over iterations):
//!    1203 ms  join::add::add_multiple_subflows
//!     ...
//! ```
//!
//! With `--repeat`, each case shows its slowest and mean time over the iterations.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use super::event::{Event, Reporter};

/// How many cases the list shows.
pub const SLOWEST: usize = 10;

/// The timings reporter.
#[derive(Debug)]
pub struct Timings<W: Write> {
    out: W,
    jobs: usize,
    times: BTreeMap<String, Vec<Duration>>,
}

impl<W: Write> Timings<W> {
    /// Timings on `out` at the end of the run.
    pub fn new(out: W) -> Self {
        Timings { out, jobs: 1, times: BTreeMap::new() }
    }
}

/// The text of the report.
pub fn text(times: &BTreeMap<String, Vec<Duration>>, jobs: usize, wall: Duration) -> String {
    let results: usize = times.values().map(Vec::len).sum();
    let total: Duration = times.values().flatten().sum();
    let speedup = if wall.is_zero() { 1.0 } else { total.as_secs_f64() / wall.as_secs_f64() };
    let mut t = format!(
        "timings: {results} result(s) in {:.2} s wall on {jobs} job(s); case time {:.2} s in total ({speedup:.2}x from parallelism)\n",
        wall.as_secs_f64(),
        total.as_secs_f64()
    );
    let repeated = times.values().any(|v| v.len() > 1);
    let mut rows: Vec<(&String, Duration, Duration)> = times
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(id, v)| {
            let max = v.iter().copied().max().unwrap_or_default();
            let mean = v.iter().sum::<Duration>() / v.len() as u32;
            (id, max, mean)
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    t.push_str(if repeated { "slowest cases (max over iterations, mean):\n" } else { "slowest cases:\n" });
    for (id, max, mean) in rows.iter().take(SLOWEST) {
        if repeated {
            t.push_str(&format!("  {:>7} ms {:>7} ms  {id}\n", max.as_millis(), mean.as_millis()));
        } else {
            t.push_str(&format!("  {:>7} ms  {id}\n", max.as_millis()));
        }
    }
    t
}

impl<W: Write> Reporter for Timings<W> {
    fn report(&mut self, event: &Event<'_>) -> io::Result<()> {
        match *event {
            Event::RunStarted { jobs, .. } => {
                self.jobs = jobs;
                Ok(())
            }
            Event::CaseStarted { .. } => Ok(()),
            Event::CaseFinished { result, .. } => {
                self.times.entry(result.id.clone()).or_default().push(result.elapsed);
                Ok(())
            }
            Event::RunFinished { elapsed, .. } => {
                let t = text(&self.times, self.jobs, elapsed);
                self.out.write_all(t.as_bytes())?;
                self.out.flush()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowest_first_with_speedup() {
        let mut times = BTreeMap::new();
        for (id, ms) in [("a::fast", vec![10]), ("a::slow", vec![900]), ("b::mid", vec![300])] {
            times.insert(id.to_owned(), ms.into_iter().map(Duration::from_millis).collect::<Vec<_>>());
        }
        assert_eq!(
            text(&times, 2, Duration::from_millis(605)),
            "timings: 3 result(s) in 0.60 s wall on 2 job(s); case time 1.21 s in total (2.00x from parallelism)\n\
             slowest cases:\n      900 ms  a::slow\n      300 ms  b::mid\n       10 ms  a::fast\n"
        );
        times.insert("a::fast".into(), vec![Duration::from_millis(10), Duration::from_millis(30)]);
        let t = text(&times, 1, Duration::from_secs(1));
        assert!(t.contains("slowest cases (max over iterations, mean):\n      900 ms     900 ms  a::slow\n"), "{t}");
        assert!(t.ends_with("       30 ms      20 ms  a::fast\n"), "{t}");
    }
}
