//! The whole suite's wall time at several `-j` (as root):
//!
//! ```text
//! sudo -E cargo bench -p mptcp-conformance --bench suite
//! MPTCP_CT_BENCH_JOBS=1,2,4,8 MPTCP_CT_BENCH_FILTER=join:: sudo -E cargo bench ... --bench suite
//! ```
//!
//! For each `-j` in `MPTCP_CT_BENCH_JOBS` (default `1,2,4,8`) it runs the selection once (the
//! CLI's `run`, output discarded, JSON lines kept), then prints a table: wall time, the sum of
//! case times, the speed-up over the sum, and the verdict counts (a `-j` at which verdicts
//! change is a concurrency bug or a timing-sensitive case: the table shows it). Then the 10
//! slowest cases of the first run. Not root: prints why and exits 0.

mod common;

use std::io;
use std::time::{Duration, Instant};

use mptcp_runner::cli::{self, Format, Outputs, RunArgs, Selection};
use mptcp_runner::library::Library;

struct Row {
    jobs: usize,
    wall: Duration,
    case_time: Duration,
    counts: [u64; 5],
    code: u8,
    times: Vec<(String, u64)>,
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("suite bench: needs root (sudo -E cargo bench --bench suite); skipped");
        return;
    }
    let jobs: Vec<usize> = std::env::var("MPTCP_CT_BENCH_JOBS")
        .unwrap_or_else(|_| "1,2,4,8".into())
        .split(',')
        .filter_map(|j| j.trim().parse().ok())
        .filter(|j| *j > 0)
        .collect();
    let filters: Vec<String> = std::env::var("MPTCP_CT_BENCH_FILTER").map(|f| f.split(',').map(str::to_owned).collect()).unwrap_or_default();
    let lib = Library::default_location();
    let dir = std::env::temp_dir().join(format!("mptcp-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut rows = Vec::new();
    for j in &jobs {
        let json = dir.join(format!("j{j}.jsonl"));
        let args = RunArgs {
            selection: Selection { filters: filters.clone(), ..Selection::default() },
            jobs: Some(*j),
            json: Some(json.clone()),
            ..RunArgs::default()
        };
        let out = Outputs { format: Format::Human, stdout: Box::new(io::sink()), term: None };
        let t0 = Instant::now();
        let code = match cli::run(&lib, &args, out) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("suite bench: -j {j}: failed to {e}");
                continue;
            }
        };
        let wall = t0.elapsed();
        let common::RunJson { times, counts } = common::read(&json);
        let case_time = Duration::from_millis(times.iter().map(|(_, ms)| ms).sum());
        eprintln!("suite bench: -j {j}: {:.2} s", wall.as_secs_f64());
        rows.push(Row { jobs: *j, wall, case_time, counts, code, times });
    }
    let _ = std::fs::remove_dir_all(&dir);

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cases = rows.first().map_or(0, |r| r.times.len());
    println!("suite: {cases} case(s), {cpus} CPU(s), kernel {}", std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim());
    println!("{:>4}  {:>9}  {:>11}  {:>8}  {:>5} {:>5} {:>5} {:>6}  exit", "-j", "wall", "case time", "speed-up", "pass", "fail", "skip", "xfail");
    let base = rows.first().map(|r| r.wall);
    for r in &rows {
        let vs_first = base.map_or(1.0, |b| b.as_secs_f64() / r.wall.as_secs_f64().max(1e-9));
        println!(
            "{:>4}  {:>7.2} s  {:>9.2} s  {:>7.2}x  {:>5} {:>5} {:>5} {:>6}  {}",
            r.jobs,
            r.wall.as_secs_f64(),
            r.case_time.as_secs_f64(),
            vs_first,
            r.counts[0],
            r.counts[1],
            r.counts[2],
            r.counts[3],
            r.code
        );
    }
    if let Some(first) = rows.first() {
        let mut t = first.times.clone();
        t.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        println!("slowest cases at -j {}:", first.jobs);
        for (case, ms) in t.iter().take(10) {
            println!("  {ms:>7} ms  {case}");
        }
    }
}
