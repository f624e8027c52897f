//! Builds a [`mptcp_spec::Topology`] in the kernel, entirely over rtnetlink.
//!
//! Order: one namespace per host; per host the topology's sysctls (IPv6 DAD and rp_filter
//! must be set before interfaces appear); veth pairs created from the first end's namespace
//! with the peer placed straight into the second's (`IFLA_NET_NS_FD` in the peer message),
//! then every interface up; then addresses (IPv6 ones `nodad`), `lo` up, routes. Requests
//! of one phase are sent together and their acks awaited together.
//!
//! Teardown is dropping the [`Topology`]: the namespaces go, and the kernel removes all inside.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use futures::TryStreamExt;
use futures::future::try_join_all;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, State};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use mptcp_spec::topology as spec;

use crate::mib::{MibReadError, MibReader};
use crate::netns::{Netns, NetnsError};
use crate::sysctl::{self, SysctlError};
use crate::wait::{Deadline, poll_until};
use std::time::Duration;

/// A failure while building a topology; names the host, link or route.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// Namespace creation or entry failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A sysctl could not be set.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// Counters could not be opened.
    #[error(transparent)]
    Mib(#[from] MibReadError),
    /// A netlink request was refused.
    #[error("{what}: {source}")]
    Netlink { what: String, source: rtnetlink::Error },
    /// Other I/O.
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// One live host: its namespace, interfaces and counters.
#[derive(Debug)]
pub struct Host {
    /// Host name from the topology.
    pub name: String,
    /// Its namespace.
    pub ns: Netns,
    /// Interface indexes by name.
    pub ifindex: BTreeMap<String, u32>,
    /// MIB counter reader.
    pub mib: MibReader,
}

/// A live topology. Dropping it removes everything.
#[derive(Debug)]
pub struct Topology {
    /// Hosts by name.
    pub hosts: BTreeMap<String, Host>,
}

impl Topology {
    /// Builds `t` in fresh namespaces.
    pub fn build(t: &spec::Topology) -> Result<Topology, TopologyError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| TopologyError::Io { what: "start a tokio runtime".into(), source: e })?;

        // Namespaces, sysctls, an rtnetlink socket and counter files per host.
        let mut nss = BTreeMap::new();
        let mut socks = BTreeMap::new();
        for (name, h) in &t.hosts {
            let ns = Netns::new(name)?;
            sysctl::write_all(&ns, &h.sysctls)?;
            let fd = ns
                .run(route_socket)?
                .map_err(|e| TopologyError::Io { what: format!("open an rtnetlink socket in {}", ns.name()), source: e })?;
            socks.insert(name.clone(), fd);
            nss.insert(name.clone(), ns);
        }

        let (ifindex, handles) = rt.block_on(async {
            let mut handles = BTreeMap::new();
            for (name, fd) in socks {
                // SAFETY: `fd` is an owned, open netlink socket handed over whole.
                let sock = unsafe { netlink_sys::TokioSocket::from_raw_fd(fd.into_raw_fd()) };
                let (conn, handle, _) = rtnetlink::from_socket(sock);
                tokio::spawn(conn);
                handles.insert(name, handle);
            }
            configure(t, &nss, &handles).await.map(|i| (i, handles))
        })?;

        // An interface that is up but whose carrier event the kernel's linkwatch has not yet
        // processed still has the noop qdisc: it drops what it is given (a lost ARP reply or
        // SYN costs a 1 s retransmission). ETHTOOL_GLINK makes the kernel process a pending
        // event of that device at once, under the RTNL (ethtool_op_get_link ->
        // linkwatch_sync_dev): once it returns, the queue is attached. Reading the operstate
        // alone is not enough: linkwatch sets it just before it attaches the queue, and a
        // stalled worker leaves a window where UP is reported but packets are still dropped.
        for (host, ns) in &nss {
            let ifnames: Vec<String> = t
                .links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .filter(|end| &end.host == host)
                .map(|end| end.ifname.clone())
                .collect();
            ns.run(move || sync_link_state(&ifnames))
                .map_err(TopologyError::from)?
                .map_err(|e| TopologyError::Io { what: format!("{host}: ethtool get link state (ETHTOOL_GLINK)"), source: e })?;
        }
        // Then every interface must report operstate UP.
        let deadline = Deadline::after(crate::env::scaled(Duration::from_secs(10), 1));
        let mut last = String::new();
        let ready = poll_until(deadline, || match rt.block_on(links_not_up(t, &handles)) {
            Ok(down) if down.is_empty() => Some(()),
            Ok(down) => {
                last = down.join(", ");
                None
            }
            Err(e) => {
                last = e.to_string();
                None
            }
        });
        if ready.is_err() {
            return Err(TopologyError::Io {
                what: format!("wait for interfaces to be operationally up (still not: {last})"),
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            });
        }

        let mut hosts = BTreeMap::new();
        for (name, ns) in nss {
            let mib = MibReader::open(&ns)?;
            let ifindex = ifindex.get(&name).cloned().unwrap_or_default();
            hosts.insert(name.clone(), Host { name, ns, ifindex, mib });
        }
        Ok(Topology { hosts })
    }

    /// A host by name (the case was validated against the topology, so a miss is a bug).
    pub fn host(&self, name: &str) -> &Host {
        self.hosts.get(name).unwrap_or_else(|| panic!("host {name:?} is not in the built topology"))
    }

    /// Keeps every namespace (named under /run/netns) and returns `(host, name)` pairs.
    pub fn keep(self) -> Vec<(String, Result<String, NetnsError>)> {
        self.hosts.into_iter().map(|(h, host)| (h, host.ns.keep())).collect()
    }
}

/// `ETHTOOL_GLINK` on each interface (`ethtool DEV | grep Link`), run inside the namespace:
/// for a veth this processes the device's pending linkwatch event synchronously.
fn sync_link_state(ifnames: &[String]) -> std::io::Result<()> {
    const ETHTOOL_GLINK: u32 = 0x0000_000a;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    // SAFETY: plain socket(2) call; the result is checked before being owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    for name in ifnames {
        let mut value = EthtoolValue { cmd: ETHTOOL_GLINK, data: 0 };
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = (&raw mut value).cast();
        // SAFETY: `ifr` and the `value` it points to outlive the call.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL as _, &raw mut ifr) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return Err(std::io::Error::new(e.kind(), format!("{name}: {e}")));
        }
    }
    Ok(())
}

/// First ends of veth pairs whose operstate is not UP yet, as `host:ifname`.
///
/// The first end of a pair to come up has no carrier at its open; it gets carrier when its
/// peer comes up, and its queue is attached (until then it drops every packet) by the
/// kernel's linkwatch, which sets the operstate in the same step. That event is urgent, so
/// this wait is short. (The second end's operstate may lag up to a second behind, as a
/// non-urgent linkwatch event, but its queue was attached in its own open: not waited for.)
async fn links_not_up(t: &spec::Topology, handles: &BTreeMap<String, Handle>) -> Result<Vec<String>, TopologyError> {
    let mut down = Vec::new();
    for (host, handle) in handles {
        let firsts: Vec<&str> = t.links.iter().filter(|l| &l.a.host == host).map(|l| l.a.ifname.as_str()).collect();
        let links: Vec<_> = handle.link().get().execute().try_collect().await.map_err(nl(format!("list links of {host}")))?;
        for l in links {
            let mut name = None;
            let mut up = false;
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::OperState(s) => up = matches!(s, State::Up | State::Unknown),
                    _ => {}
                }
            }
            if let Some(n) = name
                && firsts.contains(&n.as_str())
                && !up
            {
                down.push(format!("{host}:{n}"));
            }
        }
    }
    Ok(down)
}

/// Sets an interface of a host down or up (`ip link set DEV down|up`) over rtnetlink.
pub fn set_link(host: &Host, dev: &str, up: bool) -> Result<(), TopologyError> {
    let idx = *host.ifindex.get(dev).ok_or_else(|| TopologyError::Io {
        what: format!("{}: no interface {dev}", host.name),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let fd = host.ns.run(route_socket)?.map_err(|e| TopologyError::Io { what: format!("open an rtnetlink socket in {}", host.ns.name()), source: e })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| TopologyError::Io { what: "start a tokio runtime".into(), source: e })?;
    let what = format!("{}: ip link set {dev} {}", host.name, if up { "up" } else { "down" });
    rt.block_on(async {
        // SAFETY: `fd` is an owned, open netlink socket handed over whole.
        let sock = unsafe { netlink_sys::TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(sock);
        tokio::spawn(conn);
        let b = LinkUnspec::new_with_index(idx);
        let msg = if up { b.up() } else { b.down() }.build();
        handle.link().set(msg).execute().await.map_err(nl(what))
    })
}

pub(crate) fn route_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before being owned.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Connect to the kernel (nl_pid 0) so that plain send() works.
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `sa` outlives the call and its size is passed.
    let r = unsafe {
        libc::connect(fd.as_raw_fd(), (&raw const sa).cast(), std::mem::size_of::<libc::sockaddr_nl>() as u32)
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> TopologyError {
    let what = what.into();
    move |source| TopologyError::Netlink { what, source }
}

async fn configure(
    t: &spec::Topology,
    nss: &BTreeMap<String, Netns>,
    handles: &BTreeMap<String, Handle>,
) -> Result<BTreeMap<String, BTreeMap<String, u32>>, TopologyError> {
    // 1. veth pairs, the peer created directly in its namespace. (Neither end can be set up
    // in the same request: veth opens the peer before the pair is linked, -ENOTCONN.)
    try_join_all(t.links.iter().map(|l| {
        let handle = &handles[&l.a.host];
        let peer_ns = nss[&l.b.host].fd().as_raw_fd();
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name(l.b.ifname.clone()).setns_by_fd(peer_ns);
        let mut link = LinkVeth::new(&l.a.ifname, &l.b.ifname);
        if let Some(mtu) = l.mtu {
            link = link.mtu(mtu);
            peer = peer.mtu(mtu);
        }
        let msg = link.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build()))).build();
        let what = format!("create veth {}:{} <-> {}:{} (ip link add ... type veth peer ... netns ...)", l.a.host, l.a.ifname, l.b.host, l.b.ifname);
        async move { handle.link().add(msg).execute().await.map_err(nl(what)) }
    }))
    .await?;

    // 2. interface indexes per host; then every interface up: `lo` and the first end of
    // each pair, then the second ends. The second end finds its peer up, gets carrier in its
    // own open and is activated there; the first end gets carrier only through the kernel's
    // linkwatch (see `links_not_up`).
    let mut ifindex = BTreeMap::new();
    for (host, handle) in handles {
        let links: Vec<_> = handle.link().get().execute().try_collect().await.map_err(nl(format!("list links of {host}")))?;
        let mut map = BTreeMap::new();
        for l in links {
            let name = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            if let Some(n) = name {
                map.insert(n, l.header.index);
            }
        }
        ifindex.insert(host.clone(), map);
    }
    let up = |host: &str, name: &str| {
        let idx = ifindex[host].get(name).copied().unwrap_or(0);
        let msg = LinkUnspec::new_with_index(idx).up().build();
        let what = format!("{host}: ip link set {name} up");
        let handle = &handles[host];
        async move { handle.link().set(msg).execute().await.map_err(nl(what)) }
    };
    let firsts = t.hosts.keys().map(|h| (h.as_str(), "lo")).chain(t.links.iter().map(|l| (l.a.host.as_str(), l.a.ifname.as_str())));
    try_join_all(firsts.map(|(h, n)| up(h, n))).await?;
    try_join_all(t.links.iter().map(|l| up(&l.b.host, &l.b.ifname))).await?;

    // 3. addresses.
    let mut addr_reqs = Vec::new();
    for l in &t.links {
        for end in [&l.a, &l.b] {
            let idx = ifindex[&end.host].get(&end.ifname).copied().unwrap_or(0);
            for a in &end.addrs {
                addr_reqs.push((end.host.clone(), end.ifname.clone(), idx, *a));
            }
        }
    }
    for (host, h) in &t.hosts {
        for a in &h.lo_addrs {
            addr_reqs.push((host.clone(), "lo".into(), ifindex[host].get("lo").copied().unwrap_or(1), *a));
        }
    }
    try_join_all(addr_reqs.into_iter().map(|(host, ifname, idx, a)| {
        let mut req = handles[&host].address().add(idx, a.addr, a.prefix);
        if a.addr.is_ipv6() {
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let what = format!("{host}: ip addr add {a} dev {ifname}{}", if a.addr.is_ipv6() { " nodad" } else { "" });
        async move { req.execute().await.map_err(nl(what)) }
    }))
    .await?;

    // 4. routes.
    let mut route_reqs = Vec::new();
    for (host, h) in &t.hosts {
        for r in &h.routes {
            let oif = r.dev.as_ref().and_then(|d| ifindex[host].get(d).copied());
            let msg = route_message(r, oif);
            let what = format!("{host}: ip route add {}", describe_route(r));
            let handle = &handles[host];
            route_reqs.push(async move { handle.route().add(msg).execute().await.map_err(nl(what)) });
        }
    }
    try_join_all(route_reqs).await?;
    Ok(ifindex)
}

fn route_message(r: &spec::Route, oif: Option<u32>) -> netlink_packet_route::route::RouteMessage {
    macro_rules! common {
        ($b:expr) => {{
            let mut b = $b;
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
    if r.v6 {
        let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new();
        if let Some(d) = r.dst
            && let IpAddr::V6(a) = d.addr
        {
            b = b.destination_prefix(a, d.prefix);
        }
        if let Some(IpAddr::V6(g)) = r.via {
            b = b.gateway(g);
        }
        common!(b)
    } else {
        let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new();
        if let Some(d) = r.dst
            && let IpAddr::V4(a) = d.addr
        {
            b = b.destination_prefix(a, d.prefix);
        }
        if let Some(IpAddr::V4(g)) = r.via {
            b = b.gateway(g);
        }
        common!(b)
    }
}

fn describe_route(r: &spec::Route) -> String {
    let mut s = r.dst.map_or_else(|| if r.v6 { "default (v6)".to_owned() } else { "default".to_owned() }, |d| d.to_string());
    if let Some(v) = r.via {
        s += &format!(" via {v}");
    }
    if let Some(d) = &r.dev {
        s += &format!(" dev {d}");
    }
    if let Some(m) = r.metric {
        s += &format!(" metric {m}");
    }
    if let Some(t) = r.table {
        s += &format!(" table {t}");
    }
    s
}
