//! `mptcp-conformance`: runs the MPTCP conformance cases against the running kernel.
//!
//! Everything but process set-up lives in [`mptcp_runner::cli`] (`mptcp-conformance help`
//! prints the usage). Usable as a kselftest program: with no subcommand it runs every case,
//! prints KTAP under the kselftest runner and exits with kselftest's codes.

use std::process::ExitCode;

use mptcp_runner::cli::{self, Command, EXIT_USAGE};

fn main() -> ExitCode {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                eprintln!("mptcp-conformance: failed to parse the command line: {a:?} is not UTF-8");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    // `mptcp-conformance vm ...`: boot another kernel with virtme-ng and run the suite inside.
    if args.first().is_some_and(|a| a == "vm") {
        return ExitCode::from(mptcp_runner::vm::main(args.split_off(1)));
    }
    let command = match cli::parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mptcp-conformance: failed to {e}\n(`mptcp-conformance help` prints the usage)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Command::Run(run) = &command
        && let Some(factor) = run.slow
    {
        // SAFETY: the process is still single-threaded (only the arguments were parsed), so
        // nothing can read the environment concurrently; every deadline computed later sees it.
        unsafe { std::env::set_var("MPTCP_CT_SLOW", factor.to_string()) };
    }
    ExitCode::from(cli::execute(&command))
}
