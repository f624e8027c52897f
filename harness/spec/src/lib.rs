//! The pure half of the harness: what a case *says* and whether observations *match* it.
//!
//! Layers, from the file up:
//!
//! 1. [`source`]: a TOML file with its text kept, so that any error (a serde error with a span,
//!    or a semantic error with a key path) is reported as `file:line: key.path: message`.
//! 2. [`topology`] and [`case`]: for each file kind a raw serde schema (`deny_unknown_fields`,
//!    strings as written) and a validated model (parsed addresses, sizes, durations, flags,
//!    host names checked against the topology). Only the model is used by the runner.
//! 3. [`counters`]: the catalogue of MIB counters the harness knows, each with its class
//!    (activity, error, fallback, noise, gauge); the strict-counter rule is written there once.
//! 4. [`judge`]: the expectation engine. It takes observations as values (counter deltas per
//!    host, ...) and returns mismatches; it never touches the kernel, a clock or the
//!    environment, so it is unit-tested and can be replayed from a recorded run.
//!
//! Nothing here needs root.

pub mod case;
pub mod counters;
pub mod errno;
pub mod events;
pub mod judge;
pub mod linklocal;
pub mod route;
pub mod rule;
pub mod observe;
pub mod source;
pub mod steps;
pub mod throughput;
pub mod topology;
pub mod units;

pub use case::Case;
pub use source::{KeyPath, SpecError, SpecErrors};
pub use topology::Topology;
