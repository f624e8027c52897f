//! Built-in check routines that case files select with `check = "<name>"`.
//!
//! Some kernel behaviour is only reachable through code: socket-option corner cases
//! (malformed `mptcp_subflow_data` headers), ioctls, inet_diag requests. A check is a routine
//! of this module that runs inside a host, does the syscalls and returns every mismatch as
//! a line "what: expected X, observed Y". The case file still states which check runs where
//! and with which arguments; the expected values live in the routine, next to the upstream
//! source they come from.

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

/// Every check, by name.
pub const CHECKS: &[(&str, CheckFn)] = &[];

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
