//! Reporters: one stream of per-case events ([`Event`]), several formats.
//!
//! - [`Human`]: a line per case, failure reports, `N passed, N failed, N skipped` (stdout).
//! - [`Ktap`]: KTAP / TAP 13 as kselftest and netdev's NIPA read it (stdout, `--ktap`).
//! - [`Junit`]: JUnit XML for GitHub Actions (`--junit PATH`).
//! - [`JsonLines`]: one JSON object per result plus a summary (`--json PATH`).
//! - [`Timings`]: wall time, parallel speed-up and the slowest cases (`--timings`, stderr).
//!
//! The runner (the CLI) owns the order of events and the totals; [`Totals::exit_code`] turns
//! them into kselftest's exit code.

mod event;
mod human;
mod json;
mod junit;
mod ktap;
mod timings;

pub use event::{
    Event, KSFT_FAIL, KSFT_PASS, KSFT_SKIP, KSFT_XFAIL, KSFT_XPASS, Kind, Repeat, Reporter, Soak, Totals, Unstable,
    XPASS_MESSAGE, headline, one_line, trial_name,
};
pub use human::Human;
pub use json::JsonLines;
pub use junit::Junit;
pub use ktap::{Ktap, PROGRAM};
pub use timings::Timings;
