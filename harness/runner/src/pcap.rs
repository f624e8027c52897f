//! Packet capture of a case's links, kept only when the case fails.
//!
//! (Stub: the integration work fills this in; the case lifecycle already calls it.)

use std::path::{Path, PathBuf};

use crate::topology::Topology;

/// A running capture of every interface of a topology.
#[derive(Debug)]
pub struct Capture {}

impl Capture {
    /// Starts capturing every link of `topo` (inside its namespaces); `None` when capture
    /// is disabled or impossible (the reason is not fatal to the case).
    pub fn start(_topo: &Topology) -> Option<Capture> {
        None
    }

    /// Stops; with `keep`, writes the pcap file(s) into that folder and returns the path.
    pub fn finish(self, _keep: Option<&Path>) -> Option<PathBuf> {
        None
    }
}
