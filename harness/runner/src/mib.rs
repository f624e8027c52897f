//! MIB counters of one namespace: `/proc/thread-self/net/{netstat,snmp}` opened inside it once
//! (procfs net files bind their namespace at open) and re-read from any thread.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Mutex;

use mptcp_wire::mib::Snapshot;

use crate::netns::{Netns, NetnsError};

/// Reads a namespace's counters.
#[derive(Debug)]
pub struct MibReader {
    ns: String,
    files: Mutex<[File; 2]>,
}

/// A failure to read counters.
#[derive(Debug, thiserror::Error)]
pub enum MibReadError {
    /// Opening inside the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// I/O on the procfs file.
    #[error("read MIB counters of {ns}: {source}")]
    Io { ns: String, source: io::Error },
    /// The text did not parse.
    #[error("parse MIB counters of {ns}: {source}")]
    Parse { ns: String, source: mptcp_wire::mib::MibError },
}

impl MibReader {
    /// Opens the counter files inside `ns`.
    pub fn open(ns: &Netns) -> Result<MibReader, MibReadError> {
        let name = ns.name().to_owned();
        let files = ns.run(|| -> io::Result<[File; 2]> {
            Ok([File::open("/proc/thread-self/net/netstat")?, File::open("/proc/thread-self/net/snmp")?])
        })?;
        let files = files.map_err(|e| MibReadError::Io { ns: name.clone(), source: e })?;
        Ok(MibReader { ns: name, files: Mutex::new(files) })
    }

    /// Takes a snapshot of every counter (netstat then snmp).
    pub fn snapshot(&self) -> Result<Snapshot, MibReadError> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let mut snap = Snapshot::default();
        let mut text = String::with_capacity(16 * 1024);
        for f in files.iter_mut() {
            text.clear();
            f.seek(SeekFrom::Start(0))
                .and_then(|_| f.read_to_string(&mut text))
                .map_err(|e| MibReadError::Io { ns: self.ns.clone(), source: e })?;
            snap.add_text(&text).map_err(|e| MibReadError::Parse { ns: self.ns.clone(), source: e })?;
        }
        Ok(snap)
    }
}
