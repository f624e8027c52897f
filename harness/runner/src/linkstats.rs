//! Interface statistics of a host (`ip -s link show DEV`): `IFLA_STATS64` over rtnetlink, read
//! before and after a case for `[expect.<host>.links.<dev>]`.

use std::os::fd::{FromRawFd, IntoRawFd};

use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;

use mptcp_spec::observe::LinkStats;

use crate::topology::Host;

/// Reads the statistics of `dev` in `host`; the error names the host, the device and the call.
pub fn read(host: &Host, dev: &str) -> Result<LinkStats, String> {
    let what = format!("{}: ip -s link show {dev}", host.name);
    let idx = *host.ifindex.get(dev).ok_or_else(|| format!("{what}: no such interface"))?;
    let fd = host
        .ns
        .run(crate::topology::route_socket)
        .map_err(|e| format!("{what}: {e}"))?
        .map_err(|e| format!("{what}: open an rtnetlink socket: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|e| format!("{what}: start a tokio runtime: {e}"))?;
    rt.block_on(async {
        // SAFETY: `fd` is an owned, open netlink socket handed over whole.
        let sock = unsafe { netlink_sys::TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(sock);
        tokio::spawn(conn);
        let links: Vec<_> = handle.link().get().match_index(idx).execute().try_collect().await.map_err(|e| format!("{what}: {e}"))?;
        for l in links {
            for a in l.attributes {
                if let LinkAttribute::Stats64(s) = a {
                    return Ok(LinkStats { tx_bytes: s.tx_bytes, rx_bytes: s.rx_bytes, tx_packets: s.tx_packets, rx_packets: s.rx_packets });
                }
            }
        }
        Err(format!("{what}: the answer carries no IFLA_STATS64"))
    })
}
