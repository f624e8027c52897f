//! Per-namespace sysctls under /proc/sys/net (written from a thread inside the namespace).

use std::fs;
use std::io;

use crate::netns::{Netns, NetnsError};

/// A sysctl write that failed.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The namespace thread could not run.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The file could not be written.
    #[error("write sysctl {name}={value} in {ns}: {source}")]
    Write { ns: String, name: String, value: String, source: io::Error },
    /// The file could not be read.
    #[error("read sysctl {name} in {ns}: {source}")]
    Read { ns: String, name: String, source: io::Error },
}

/// `net.mptcp.enabled` -> `/proc/sys/net/mptcp/enabled`.
pub fn path_of(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

/// Writes sysctls in order inside the namespace.
pub fn write_all(ns: &Netns, items: &[(String, String)]) -> Result<(), SysctlError> {
    if items.is_empty() {
        return Ok(());
    }
    let nsname = ns.name().to_owned();
    ns.run(|| {
        for (k, v) in items {
            fs::write(path_of(k), v.as_bytes()).map_err(|e| SysctlError::Write {
                ns: nsname.clone(),
                name: k.clone(),
                value: v.clone(),
                source: e,
            })?;
        }
        Ok(())
    })?
}

/// Reads one sysctl inside the namespace (trimmed).
pub fn read(ns: &Netns, name: &str) -> Result<String, SysctlError> {
    let nsname = ns.name().to_owned();
    ns.run(|| {
        fs::read_to_string(path_of(name))
            .map(|s| s.trim().to_owned())
            .map_err(|e| SysctlError::Read { ns: nsname, name: name.to_owned(), source: e })
    })?
}
