//! Per-case host routes (`hosts.<h>.routes`), added over rtnetlink (`RTM_NEWROUTE`) inside
//! the host before traffic; a refusal carries the kernel's errno and extended-ACK text.
//! They live in the host's namespace and go with it.

use std::net::IpAddr;

use mptcp_spec::route::HostRoute;
use mptcp_wire::nl::{AttrWriter, NLM_F_CREATE, NLM_F_EXCL};

use crate::probe::netlink::{RawNl, nl_socket};
use crate::topology::Host;

const RTM_NEWROUTE: u16 = 24;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u32 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_HOST: u8 = 254;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;

pub(crate) fn family(a: IpAddr) -> u8 {
    if a.is_ipv4() { libc::AF_INET as u8 } else { libc::AF_INET6 as u8 }
}

pub(crate) fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The `RTM_NEWROUTE` payload (`struct rtmsg` + attributes) as `ip route add` builds it:
/// protocol boot; scope host for `local`, link for a device route, universe via a gateway.
pub fn encode(r: &HostRoute, oif: Option<u32>) -> Vec<u8> {
    let table = r.table.unwrap_or(RT_TABLE_MAIN);
    let scope = match (r.local, r.via) {
        (true, _) => RT_SCOPE_HOST,
        (false, None) => RT_SCOPE_LINK,
        (false, Some(_)) => RT_SCOPE_UNIVERSE,
    };
    let kind = if r.local { RTN_LOCAL } else { RTN_UNICAST };
    // family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
    let mut hdr = vec![family(r.dst), r.prefix, 0, 0, u8::try_from(table).unwrap_or(0), RTPROT_BOOT, scope, kind];
    hdr.extend_from_slice(&0u32.to_ne_bytes());
    let mut w = AttrWriter::with_header(&hdr);
    w.put_u32(RTA_TABLE, table);
    if r.prefix > 0 {
        w.put(RTA_DST, &addr_bytes(r.dst));
    }
    if let Some(g) = r.via {
        w.put(RTA_GATEWAY, &addr_bytes(g));
    }
    if let Some(i) = oif {
        w.put_u32(RTA_OIF, i);
    }
    if let Some(m) = r.metric {
        w.put_u32(RTA_PRIORITY, m);
    }
    w.into_bytes()
}

/// Opens an rtnetlink socket inside the host.
pub(crate) fn rtnl(host: &Host) -> Result<RawNl, String> {
    let fd = host.ns.run(|| nl_socket(libc::NETLINK_ROUTE)).map_err(|e| e.to_string())?;
    fd.map(RawNl::new).map_err(|e| format!("{}: open an rtnetlink socket: {e}", host.name))
}

/// `ip route add <r>` in the host.
pub fn add(host: &Host, r: &HostRoute) -> Result<(), String> {
    let oif = match &r.dev {
        None => None,
        Some(d) => Some(*host.ifindex.get(d).ok_or_else(|| format!("{}: ip route add {r}: no interface {d}", host.name))?),
    };
    let mut nl = rtnl(host)?;
    nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &encode(r, oif))
        .map(drop)
        .map_err(|e| format!("{}: ip {}route add {r}: {e}", host.name, if r.is_ipv6() { "-6 " } else { "" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_default_route_in_table_100() {
        let r = HostRoute::parse("0.0.0.0/0 dev lo table 100 type local").unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            vec![2, 0, 0, 0, 100, 3, 254, 2], 0u32.to_ne_bytes().to_vec(), // rtmsg: AF_INET /0, table 100, boot, host, RTN_LOCAL
            vec![8, 0, 15, 0], 100u32.to_ne_bytes().to_vec(),              // RTA_TABLE 100
            vec![8, 0, 4, 0], 1u32.to_ne_bytes().to_vec(),                 // RTA_OIF 1 (lo)
        ].concat();
        assert_eq!(encode(&r, Some(1)), want);
    }

    #[test]
    fn a_v6_host_route_via_a_gateway_with_a_metric() {
        let r = HostRoute::parse("dead:beef:2::1 via dead:beef:1::1 metric 7").unwrap();
        let b = encode(&r, None);
        assert_eq!(&b[..8], &[10, 128, 0, 0, 254, 3, 0, 1]);
        assert_eq!(b.len(), 12 + 8 + 20 + 20 + 8);
    }
}
