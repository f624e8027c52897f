//! The kernel-facing half of mptcp-conformance: the only crate that touches the kernel.
//!
//! Layers, bottom up:
//!
//! - [`netns`]: namespaces owned by guards; in-namespace work on short-lived threads; the
//!   sweeper for leftovers of killed runs.
//! - [`sysctl`], [`mib`]: per-namespace sysctls and MIB counters.
//! - [`topology`]: a topology file built over rtnetlink (veth, addresses, routes).
//! - [`traffic`]: IPPROTO_MPTCP (or TCP) sockets created inside namespaces, bidirectional
//!   transfers checked byte by byte, every blocking call under a deadline.
//! - [`case`]: one case's life: probe, build, configure, traffic, observe, judge, tear down.
//! - [`probe`]: what this machine can run (every capability a case may need), found out at
//!   run time; [`coverage`]: what the case library asserts on against what the kernel exposes.
//! - [`pcap`], [`kmsg`]: a failed case's packet capture; kernel splats during a case.
//! - [`wait`], [`env`]: deadlines, the polling helper, environment variables.
//!
//! The judging itself is pure and lives in `mptcp-spec`; codecs live in `mptcp-wire`.

pub mod case;
pub mod checks;
pub mod cli;
pub mod coverage;
pub mod daemon_lock;
pub mod env;
pub mod events;
pub mod genl;
pub mod library;
pub mod linklocal;
pub mod linkstats;
pub mod kmsg;
pub mod mib;
pub mod netns;
pub mod nft;
pub mod offload;
pub mod pcap;
pub mod pm;
pub mod probe;
pub mod report;
pub mod route;
pub mod rule;
pub mod sockopt;
pub mod steps;
pub mod sysctl;
pub mod tc;
pub mod topology;
pub mod traffic;
pub mod vm;
pub mod wait;
