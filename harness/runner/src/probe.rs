//! What this machine can run, found out at run time (never from the kernel version).
//!
//! Probed once per process in a scratch namespace: whether we may create namespaces (root),
//! whether MPTCP sockets can be created (`net.mptcp.enabled` present and the protocol
//! registered), and which MIB counters the kernel exposes.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use crate::mib::MibReader;
use crate::netns::Netns;

/// The probe's findings.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Why cases cannot run at all here (no root, no MPTCP), if so.
    pub blocker: Option<String>,
    /// MIB counter names the kernel exposes (nstat-style).
    pub counters: BTreeSet<String>,
}

impl Capabilities {
    /// Whether the kernel exposes a counter.
    pub fn has_counter(&self, name: &str) -> bool {
        self.counters.contains(name)
    }
}

static CAPS: OnceLock<Capabilities> = OnceLock::new();

/// The capabilities of this machine (probed on first use).
pub fn capabilities() -> &'static Capabilities {
    CAPS.get_or_init(probe)
}

fn probe() -> Capabilities {
    let mut caps = Capabilities { blocker: None, counters: BTreeSet::new() };
    if !nix::unistd::geteuid().is_root() {
        caps.blocker = Some("needs root: run as root (e.g. `sudo -E cargo test`) in a VM or disposable machine".into());
        return caps;
    }
    let ns = match Netns::new("probe") {
        Ok(ns) => ns,
        Err(e) => {
            caps.blocker = Some(format!("cannot create a network namespace: {e}"));
            return caps;
        }
    };
    let mptcp = ns.run(|| {
        if !std::path::Path::new("/proc/sys/net/mptcp/enabled").exists() {
            return Err("the kernel has no MPTCP (/proc/sys/net/mptcp/enabled is missing; CONFIG_MPTCP=y needed)".to_owned());
        }
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::MPTCP))
            .map(drop)
            .map_err(|e| format!("socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP) fails in a fresh namespace: {e}"))
    });
    match mptcp {
        Ok(Ok(())) => {}
        Ok(Err(e)) => caps.blocker = Some(e),
        Err(e) => caps.blocker = Some(e.to_string()),
    }
    if let Ok(snap) = MibReader::open(&ns).and_then(|m| m.snapshot()) {
        caps.counters = snap.names().map(str::to_owned).collect();
    }
    caps
}
