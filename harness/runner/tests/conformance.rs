//! The conformance suite as a `cargo test` target: one trial per `cases/**/*.toml`, named by
//! its path (`connect::v4_basic`), run in parallel by libtest-mimic.
//!
//! - A case that cannot run here (no root, no MPTCP, a missing capability) is *ignored* with
//!   the reason, unless `MPTCP_CT_REQUIRE=1` (every skip fails: CI can never pass by skipping
//!   everything) or `MPTCP_CT_STRICT=1` (a skip fails unless each capability it misses is in
//!   the allow-list `MPTCP_CT_ALLOW_MISSING` / `MPTCP_CT_ALLOW_FILE`).
//! - A case file that does not parse is a failed trial with the located error.
//! - Known-broken cases (`xfail`) pass while they fail as declared, and fail once they pass.

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use mptcp_runner::case::{self, RunContext, Verdict};
use mptcp_runner::library::Library;
use mptcp_runner::probe::{Strictness, capabilities};
use mptcp_runner::{env, netns};

fn main() {
    let args = Arguments::from_args();
    let lib = Library::default_location();
    let files = match lib.case_files() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot list cases in {}: {e}", lib.cases.display());
            std::process::exit(101);
        }
    };
    // Leftovers of killed runs go first (only entries of dead pids; live runs are untouched).
    if !args.list && nix::unistd::geteuid().is_root() {
        for n in netns::sweep() {
            eprintln!("swept leftover namespace {n}");
        }
    }
    let threads = args.test_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let ctx = RunContext::from_env(threads);
    let strictness = Strictness::from_env(false).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(101);
    });
    let verbose = env::verbose();
    let trials = files
        .into_iter()
        .map(|file| {
            let id = lib.case_id(&file);
            let lib = lib.clone();
            let ctx = ctx.clone();
            let strictness = strictness.clone();
            Trial::ignorable_test(id, move || {
                let case = lib.load(&file).map_err(|e| Failed::from(format!("invalid case file:\n{e}")))?;
                let r = strictness.apply(capabilities(), Some(&case), case::run(&case, &ctx));
                let time = format!("({} ms)", r.elapsed.as_millis());
                if verbose {
                    eprintln!("{}: {:?} {time}", r.id, r.verdict);
                }
                match r.verdict {
                    Verdict::Pass => Ok(Completion::Completed),
                    Verdict::XFail(why) => {
                        eprintln!("{}: failed as expected (xfail: {why})", r.id);
                        Ok(Completion::Completed)
                    }
                    Verdict::XPass => Err(format!("{}: marked xfail but passed: remove the xfail marker {time}", r.id).into()),
                    Verdict::Skip(reason) => Ok(Completion::ignored_with(reason)),
                    Verdict::Fail => Err(format!("{} {time}\n{}", r.id, r.report).into()),
                }
            })
            .with_kind("case")
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
