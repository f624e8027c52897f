//! Path-manager configuration of a host (limits, endpoints) over generic netlink.

use mptcp_spec::case::HostSetup;

use crate::topology::Host;

/// Applies a host's PM limits and endpoints.
pub fn apply(_host: &Host, setup: &HostSetup) -> Result<(), String> {
    if setup.limits.is_some() || !setup.endpoints.is_empty() {
        return Err("path-manager configuration is not available yet".into());
    }
    Ok(())
}
