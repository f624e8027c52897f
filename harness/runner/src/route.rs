//! Installs a case's host routes (`hosts.<h>.routes`, `ip route add ...` syntax parsed by
//! `mptcp_spec::route`) in the host's namespace: one `RTM_NEWROUTE` request each
//! (`NLM_F_CREATE | NLM_F_EXCL`, like `ip route add`) on a `NETLINK_ROUTE` socket opened
//! inside the namespace, with extended ACKs on so that a refusal carries the kernel's text.

use std::net::IpAddr;
use std::time::Duration;

use mptcp_spec::route::{HostRoute, RouteType};
use mptcp_wire::nl::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NlMsgHdr};
use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType as Rtn};
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_core::Emitable;

use crate::genl::NlSocket;
use crate::topology::Host;

/// `RTM_NEWROUTE` (linux/rtnetlink.h).
const RTM_NEWROUTE: u16 = 24;

/// Adds every route of `routes` to `host`, in order. The error names the route as written,
/// the errno and the kernel's extended-ACK text.
pub fn add_all(host: &Host, routes: &[HostRoute]) -> Result<(), String> {
    if routes.is_empty() {
        return Ok(());
    }
    let sock = NlSocket::open_route(&host.ns).map_err(|e| format!("{}: ip route add: {e}", host.name))?;
    for r in routes {
        let oif = match &r.dev {
            None => None,
            Some(d) => Some(*host.ifindex.get(d).ok_or_else(|| format!("{}: ip route add {r}: no interface {d:?}", host.name))?),
        };
        let seq = sock.next_seq();
        let bytes = request(r, oif, seq);
        sock.request(&bytes, seq, Duration::from_secs(5)).map_err(|e| format!("{}: ip route add {r}: {e}", host.name))?;
    }
    Ok(())
}

/// The `RTM_NEWROUTE` request for a route, as `ip route add` builds it (protocol boot,
/// scope link for a gateway-less unicast route through a device, host for local).
pub fn request(r: &HostRoute, oif: Option<u32>, seq: u32) -> Vec<u8> {
    let msg = message(r, oif);
    let mut payload = vec![0u8; msg.buffer_len()];
    msg.emit(&mut payload);
    NlMsgHdr::new(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq).encode_message(&payload)
}

fn message(r: &HostRoute, oif: Option<u32>) -> RouteMessage {
    let kind = match r.kind {
        RouteType::Unicast => Rtn::Unicast,
        RouteType::Local => Rtn::Local,
        RouteType::Blackhole => Rtn::BlackHole,
        RouteType::Unreachable => Rtn::Unreachable,
        RouteType::Prohibit => Rtn::Prohibit,
    };
    let scope = match r.kind {
        RouteType::Local => RouteScope::Host,
        RouteType::Unicast if r.via.is_none() && oif.is_some() => RouteScope::Link,
        _ => RouteScope::Universe,
    };
    macro_rules! finish {
        ($b:expr) => {{
            let mut b = $b.kind(kind).scope(scope).protocol(RouteProtocol::Boot);
            if let Some(i) = oif {
                b = b.output_interface(i);
            }
            if let Some(m) = r.metric {
                b = b.priority(m);
            }
            if let Some(t) = r.table {
                b = b.table_id(t);
            }
            b.build()
        }};
    }
    match (r.dst, r.via) {
        (IpAddr::V6(d), via) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new().destination_prefix(d, r.prefix_len);
            if let Some(IpAddr::V6(g)) = via {
                b = b.gateway(g);
            }
            finish!(b)
        }
        (IpAddr::V4(d), via) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new().destination_prefix(d, r.prefix_len);
            if let Some(IpAddr::V4(g)) = via {
                b = b.gateway(g);
            }
            finish!(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_route_request_bytes() {
        let r: HostRoute = "10.0.2.1 via 10.0.1.1 dev ns2eth1".parse().unwrap();
        let b = request(&r, Some(3), 7);
        // nlmsghdr: len, type 24, flags REQUEST|ACK|EXCL|CREATE, seq 7, pid 0
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize, b.len());
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), RTM_NEWROUTE);
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0x0605);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // rtmsg: family AF_INET, dst_len 32, src_len 0, tos 0, table main, protocol boot,
        // scope universe (a gateway), type unicast
        assert_eq!(&b[16..24], &[2, 32, 0, 0, 254, 3, 0, 1]);
        let attrs = &b[28..];
        // RTA_DST 10.0.2.1, RTA_GATEWAY 10.0.1.1, RTA_OIF 3 (in some order)
        let find = |ty: u16| {
            let mut i = 0;
            while i + 4 <= attrs.len() {
                let len = u16::from_ne_bytes(attrs[i..i + 2].try_into().unwrap()) as usize;
                if u16::from_ne_bytes(attrs[i + 2..i + 4].try_into().unwrap()) == ty {
                    return Some(attrs[i + 4..i + len].to_vec());
                }
                i += (len + 3) & !3;
            }
            None
        };
        assert_eq!(find(1), Some(vec![10, 0, 2, 1]));
        assert_eq!(find(5), Some(vec![10, 0, 1, 1]));
        assert_eq!(find(4), Some(3u32.to_ne_bytes().to_vec()));
    }

    #[test]
    fn local_route_in_a_table() {
        let r: HostRoute = "local 0.0.0.0/0 dev lo table 100".parse().unwrap();
        let b = request(&r, Some(1), 1);
        // family, dst_len 0, .., table 100 (fits the header), boot, scope host, type local
        assert_eq!(&b[16..24], &[2, 0, 0, 0, 100, 3, 254, 2]);
    }
}
