//! The speed target of the mptcp_join port: the cases of the 18 groups without link impairment
//! (every `join::` case but link_failure, add_addr_timeout, fastclose and fail, whose shaped
//! 16-48 MiB transfers and timeouts are the point of those scenarios), in parallel at the
//! runner's default `-j` (the number of CPUs), must finish within 30 s of wall time in a
//! release build (as root):
//!
//! ```text
//! sudo -E cargo bench -p mptcp-conformance --bench join
//! MPTCP_CT_BENCH_RUNS=3 MPTCP_CT_BENCH_TARGET_S=30 sudo -E cargo bench ... --bench join
//! ```
//!
//! Runs the selection `MPTCP_CT_BENCH_RUNS` times (default 1) through the CLI's `run` (output
//! discarded, JSON lines kept), prints each run's wall time, verdict counts and the 10 slowest
//! cases, and exits 1 if a run is over the target or a case failed (a fast suite that fails
//! proves nothing). Not root: prints why and exits 0.

mod common;

use std::io;
use std::time::{Duration, Instant};

use mptcp_runner::cli::{self, Format, Outputs, RunArgs, Selection};
use mptcp_runner::library::Library;

/// The mptcp_join groups without link impairment.
const GROUPS: [&str; 18] = [
    "subflows", "subflows_error", "signal", "laminar", "add_addr_ports", "remove", "add", "ipv6", "v4mapped",
    "mixed", "backup", "bind", "syncookies", "checksum", "deny_join_id0", "fullmesh", "userspace", "endpoint",
];

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("join bench: needs root (sudo -E cargo bench --bench join); skipped");
        return;
    }
    let runs: usize = std::env::var("MPTCP_CT_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(1).max(1);
    let target = Duration::from_secs_f64(std::env::var("MPTCP_CT_BENCH_TARGET_S").ok().and_then(|t| t.parse().ok()).unwrap_or(30.0));
    let lib = Library::default_location();
    let dir = std::env::temp_dir().join(format!("mptcp-join-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "join bench: the 18 unimpaired join:: groups at the default -j ({cpus} CPU(s)), kernel {}, target {:.0} s",
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        target.as_secs_f64()
    );
    let mut ok = true;
    for run in 1..=runs {
        let json = dir.join(format!("run{run}.jsonl"));
        let args = RunArgs {
            selection: Selection { filters: GROUPS.iter().map(|g| format!("join::{g}::")).collect(), ..Selection::default() },
            json: Some(json.clone()),
            ..RunArgs::default()
        };
        let out = Outputs { format: Format::Human, stdout: Box::new(io::sink()), term: None };
        let t0 = Instant::now();
        let code = match cli::run(&lib, &args, out) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("join bench: run {run}: failed to {e}");
                std::process::exit(1);
            }
        };
        let wall = t0.elapsed();
        let common::RunJson { mut times, counts } = common::read(&json);
        let sum: u64 = times.iter().map(|(_, ms)| ms).sum();
        let verdict = if wall > target { "OVER TARGET" } else { "within target" };
        println!(
            "run {run}: {} cases in {:.2} s wall ({verdict}); case time {:.2} s; pass {} fail {} skip {} xfail {} xpass {}; exit {code}",
            times.len(),
            wall.as_secs_f64(),
            sum as f64 / 1000.0,
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4]
        );
        times.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (case, ms) in times.iter().take(10) {
            println!("  {ms:>7} ms  {case}");
        }
        ok &= wall <= target && counts[1] == 0 && counts[4] == 0;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !ok {
        std::process::exit(1);
    }
}
