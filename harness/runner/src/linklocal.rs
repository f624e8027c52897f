//! Link-local address variables (`$ll.<ifname>`, see `mptcp_spec::linklocal`): read the
//! addresses the kernel gave the topology's interfaces, once they are usable, and substitute
//! them in a copy of the case before host setup.
//!
//! An address is usable once it has left the tentative state of duplicate address detection:
//! the runner dumps the interface's IPv6 addresses over rtnetlink (`RTM_GETADDR`, like
//! `ip -6 addr show dev IF scope link`) until a `fe80::/10` one is there without
//! `IFA_F_TENTATIVE` (upstream's `wait_ll_ready`), bounded by a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use mptcp_spec::Case;
use mptcp_spec::linklocal::LinkLocal;
use mptcp_wire::nl::{Attrs, NLM_F_DUMP, NLM_F_REQUEST, NlMsgHdr};

use crate::genl::NlSocket;
use crate::topology::{Host, Topology};
use crate::wait::{Deadline, poll_until};

const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_FLAGS: u16 = 8;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;

/// One IPv6 address of an interface, as `RTM_NEWADDR` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6IfAddr {
    /// Interface index.
    pub ifindex: u32,
    /// The address.
    pub addr: Ipv6Addr,
    /// `ifa_flags` widened by `IFA_FLAGS`.
    pub flags: u32,
}

impl Ipv6IfAddr {
    /// A link-local address that has passed duplicate address detection.
    pub fn usable_link_local(&self) -> bool {
        (self.addr.segments()[0] & 0xffc0) == 0xfe80 && self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0
    }
}

/// Parses one `RTM_NEWADDR` payload (`struct ifaddrmsg` then attributes); `None` if it is
/// not an IPv6 address.
pub fn parse_newaddr(payload: &[u8]) -> Option<Ipv6IfAddr> {
    // ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32
    if payload.len() < 8 || i32::from(payload[0]) != libc::AF_INET6 {
        return None;
    }
    let ifindex = u32::from_ne_bytes(payload[4..8].try_into().ok()?);
    let mut flags = u32::from(payload[2]);
    let mut addr = None;
    for a in Attrs::new(&payload[8..]).flatten() {
        match a.attr_type {
            IFA_ADDRESS => addr = a.as_ipv6().ok(),
            IFA_FLAGS => flags = a.as_u32().unwrap_or(flags),
            _ => {}
        }
    }
    Some(Ipv6IfAddr { ifindex, addr: addr?, flags })
}

fn dump_v6(host: &Host, sock: &NlSocket) -> Result<Vec<Ipv6IfAddr>, String> {
    let seq = sock.next_seq();
    let mut payload = vec![0u8; 8];
    payload[0] = libc::AF_INET6 as u8;
    let req = NlMsgHdr::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq).encode_message(&payload);
    let msgs = sock.request(&req, seq, Duration::from_secs(5)).map_err(|e| format!("{}: ip -6 addr show: {e}", host.name))?;
    Ok(msgs.iter().filter_map(|m| parse_newaddr(&m.payload)).collect())
}

/// The usable link-local address of each interface in `ifaces`, waiting for it until
/// `deadline`.
pub fn addresses(case: &Case, topo: &Topology, ifaces: &BTreeSet<String>, deadline: Deadline) -> Result<BTreeMap<String, Ipv6Addr>, String> {
    let mut out = BTreeMap::new();
    for ifname in ifaces {
        let owner = case.topology.owner_of_interface(ifname).ok_or_else(|| format!("no interface {ifname:?} in the topology"))?;
        let host = topo.host(owner);
        let idx = *host.ifindex.get(ifname).ok_or_else(|| format!("{owner}: no interface {ifname:?}"))?;
        let sock = NlSocket::open_route(&host.ns).map_err(|e| format!("{owner}: {e}"))?;
        let mut last = Vec::new();
        let mut err = None;
        let found = poll_until(deadline, || match dump_v6(host, &sock) {
            Ok(all) => {
                last = all.into_iter().filter(|a| a.ifindex == idx).collect();
                last.iter().find(|a| a.usable_link_local()).map(|a| a.addr)
            }
            Err(e) => {
                err = Some(e);
                None
            }
        });
        match found {
            Ok(a) => {
                out.insert(ifname.clone(), a);
            }
            Err(()) => {
                let seen: Vec<String> = last.iter().map(|a| format!("{} flags {:#x}", a.addr, a.flags)).collect();
                return Err(format!(
                    "{owner}: {ifname} has no usable link-local address before the deadline (IPv6 addresses seen: {}){}",
                    if seen.is_empty() { "none".into() } else { seen.join(", ") },
                    err.map(|e| format!("; last error: {e}")).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

/// The case with every `$ll.*` address replaced by its value.
pub fn substitute(case: &Case, lls: &BTreeMap<String, Ipv6Addr>) -> Case {
    let get = |l: &LinkLocal| IpAddr::V6(lls.get(&l.of).copied().unwrap_or(Ipv6Addr::UNSPECIFIED));
    let mut c = case.clone();
    for h in c.hosts.values_mut() {
        for e in &mut h.endpoints {
            if let Some(l) = &e.addr_ll {
                e.addr = get(l);
            }
        }
        for l in &mut h.listen {
            if let Some(ll) = &l.ll {
                l.addr.set_ip(get(ll));
            }
        }
    }
    for conn in &mut c.connections {
        if let Some(l) = &conn.connect_ll {
            conn.connect = get(l);
        }
        if let Some(l) = &conn.listen_ll {
            conn.listen = get(l);
        }
    }
    c
}

/// `addr:port` with the scope id of `ll`'s `%scope` interface in `host` (0 without one).
pub fn scoped(host: &Host, addr: IpAddr, port: u16, ll: Option<&LinkLocal>) -> SocketAddr {
    let scope = ll.and_then(|l| l.scope.as_ref()).and_then(|s| host.ifindex.get(s)).copied().unwrap_or(0);
    match addr {
        IpAddr::V6(a) if scope != 0 => SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope)),
        a => SocketAddr::new(a, port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWADDR payload as the kernel sends it for a veth's link-local address:
    /// ifaddrmsg (AF_INET6, /64, IFA_F_PERMANENT, scope link 253, ifindex 3), IFA_ADDRESS
    /// fe80::1, IFA_FLAGS (the full 32-bit flags).
    fn newaddr(flags: u32) -> Vec<u8> {
        let mut p = vec![10, 64, 0x80, 253];
        p.extend_from_slice(&3u32.to_ne_bytes());
        p.extend_from_slice(&20u16.to_ne_bytes());
        p.extend_from_slice(&IFA_ADDRESS.to_ne_bytes());
        p.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&8u16.to_ne_bytes());
        p.extend_from_slice(&IFA_FLAGS.to_ne_bytes());
        p.extend_from_slice(&flags.to_ne_bytes());
        p
    }

    #[test]
    fn tentative_link_local_is_not_usable() {
        let a = parse_newaddr(&newaddr(0x80 | IFA_F_TENTATIVE)).unwrap();
        assert_eq!((a.ifindex, a.addr), (3, "fe80::1".parse().unwrap()));
        assert!(!a.usable_link_local());
        assert!(parse_newaddr(&newaddr(0x80)).unwrap().usable_link_local());
        let mut v4 = newaddr(0);
        v4[0] = 2;
        assert_eq!(parse_newaddr(&v4), None);
    }
}
