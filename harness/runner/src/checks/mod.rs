//! Built-in check routines that case files select with `check = "<name>"`.
//!
//! Some kernel behaviour is only reachable through code: socket-option corner cases
//! (malformed `mptcp_subflow_data` headers), ioctls, inet_diag requests. A check is a routine
//! of this module that runs inside a host, does the syscalls and returns every mismatch as
//! a line "what: expected X, observed Y". The case file still states which check runs where
//! and with which arguments; the expected values live in the routine, next to the upstream
//! source they come from.

mod common;
mod diag;
mod inq;
mod protocols;
mod sock_diag;
mod sockopt;

pub(crate) use protocols::parse_sockets as protocols_sockets;
/// The prefix of a check's result line that means "cannot run on this kernel".
pub(crate) const SKIP_PREFIX: &str = common::SKIP;

use crate::topology::Host;
use crate::wait::Deadline;

/// What a check gets.
#[derive(Debug)]
pub struct CheckCtx<'a> {
    /// The host it runs in.
    pub host: &'a Host,
    /// Its arguments from the case file.
    pub args: &'a toml::Table,
    /// When it must be done.
    pub deadline: Deadline,
}

/// A check routine: `Ok(())` or the list of mismatches.
pub type CheckFn = fn(&CheckCtx<'_>) -> Result<(), Vec<String>>;

/// Every check, by name. A result line starting with `SKIP:` means the running kernel lacks
/// what the check needs (an older struct, an unsupported option); it is never mixed with
/// mismatches.
pub const CHECKS: &[(&str, CheckFn)] = &[
    // mptcp_sockopt.c
    ("sockopt_info", sockopt::sockopt_info),
    ("sockopt_tcpinfo", sockopt::sockopt_tcpinfo),
    ("sockopt_subflow_addrs", sockopt::sockopt_subflow_addrs),
    ("sockopt_bogus_subflow_data", sockopt::sockopt_bogus_subflow_data),
    ("sockopt_full_info", sockopt::sockopt_full_info),
    ("sockopt_ip_tos", sockopt::sockopt_ip_tos),
    // mptcp_inq.c
    ("inq", inq::inq),
    // diag.sh
    ("diag_no_msk", diag::diag_no_msk),
    ("diag_listen_filters", diag::diag_listen_filters),
    ("diag_msk_flags", diag::diag_msk_flags),
    ("diag_last_time_info", diag::diag_last_time_info),
    ("diag_msk_inuse", diag::diag_msk_inuse),
    ("diag_cestab", diag::diag_cestab),
    ("diag_dump_one", diag::diag_dump_one),
    ("diag_dump_subflow", diag::diag_dump_subflow),
    ("diag_many_msk", diag::diag_many_msk),
    ("diag_listeners", diag::diag_listeners),
];

/// Runs a check by name.
pub fn run(name: &str, ctx: &CheckCtx<'_>) -> Result<(), Vec<String>> {
    match CHECKS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => f(ctx),
        None => Err(vec![format!(
            "unknown check {name:?}; known: {}",
            CHECKS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )]),
    }
}
