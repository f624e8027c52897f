//! Packet capture of a case's links, kept only when the case fails.
//!
//! [`Capture::start`] opens one `AF_PACKET` socket per interface of every host (`lo` too),
//! each created inside its host's namespace on a short-lived thread and bound to its
//! interface (created with protocol 0, so it receives nothing before the bind), non-blocking,
//! with kernel timestamps. One capture thread per case blocks in poll(2) on all of them and
//! on an eventfd that stops it; each packet is cut to the snaplen (`MPTCP_CT_SNAPLEN`, default
//! 256 bytes: every header and TCP option) and kept in a [`Ring`] bounded in bytes
//! (`MPTCP_CT_PCAP_MIB`, default 8 MiB per case), which drops the oldest packets first.
//!
//! [`Capture::finish`] with a folder writes `capture.pcapng` there: one interface per
//! `host/ifname` (link type Ethernet), packets in time order, and a
//! section comment with the packet and drop counts. Wireshark and `tshark -r capture.pcapng
//! -Y mptcp` decode the MPTCP options. Without a folder the packets are discarded.
//! `MPTCP_CT_PCAP=0` disables capture.
//!
//! Only received packets are kept (`PACKET_IGNORE_OUTGOING`): a frame sent on one end of a
//! veth pair is the frame received on the other end, which is captured too, so each packet is
//! in the file once, tagged with the interface (`host/ifname`) that received it, and
//! Wireshark's TCP analysis does not mistake the second copy for a retransmission. A packet a
//! qdisc drops is never handed to the device, so a sender-side capture would not show it
//! either; what the file cannot show is a frame veth itself drops (its peer down).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use mptcp_wire::pcap::{Direction, Interface, LINKTYPE_ETHERNET, Packet, Writer};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::topology::Topology;

/// The file a failed case's capture is written to, inside its artifact folder.
pub const FILE_NAME: &str = "capture.pcapng";

/// One captured packet, cut to the snaplen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Index into the capture's interfaces.
    pub interface: u32,
    /// Kernel receive timestamp, ns since the epoch.
    pub timestamp_ns: u64,
    /// Length on the wire.
    pub original_len: u32,
    /// Direction on its interface.
    pub direction: Direction,
    /// The bytes kept.
    pub data: Vec<u8>,
}

/// Packets kept in arrival order, at most `max_bytes` of packet data (plus a fixed overhead
/// per packet); the oldest go first.
#[derive(Debug, Clone)]
pub struct Ring {
    packets: VecDeque<Captured>,
    bytes: usize,
    max_bytes: usize,
    /// Packets dropped to stay within the bound.
    pub dropped: u64,
    /// Packets ever pushed.
    pub seen: u64,
}

/// What one kept packet costs besides its data (its record).
const PER_PACKET: usize = 48;

impl Ring {
    /// An empty ring of `max_bytes`.
    pub fn new(max_bytes: usize) -> Ring {
        Ring { packets: VecDeque::new(), bytes: 0, max_bytes, dropped: 0, seen: 0 }
    }

    /// Adds a packet, dropping the oldest ones while over the bound.
    pub fn push(&mut self, p: Captured) {
        self.seen += 1;
        self.bytes += p.data.len() + PER_PACKET;
        self.packets.push_back(p);
        while self.bytes > self.max_bytes {
            let Some(old) = self.packets.pop_front() else { break };
            self.bytes -= old.data.len() + PER_PACKET;
            self.dropped += 1;
        }
    }

    /// Packets kept, oldest first.
    pub fn packets(&self) -> impl Iterator<Item = &Captured> {
        self.packets.iter()
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

/// One captured interface.
#[derive(Debug, Clone)]
struct Iface {
    host: String,
    ifname: String,
}

/// What the capture thread hands back.
#[derive(Debug)]
struct Collected {
    ring: Ring,
    kernel_drops: u64,
    error: Option<String>,
}

/// A running capture of every interface of a topology.
#[derive(Debug)]
pub struct Capture {
    interfaces: Vec<Iface>,
    snaplen: u32,
    stop: OwnedFd,
    thread: Option<JoinHandle<Collected>>,
}

impl Capture {
    /// Starts capturing every link of `topo` (inside its namespaces); `None` when capture
    /// is disabled or impossible (the reason is not fatal to the case).
    pub fn start(topo: &Topology) -> Option<Capture> {
        if !crate::env::pcap() {
            return None;
        }
        let snaplen = crate::env::snaplen();
        let mut interfaces = Vec::new();
        let mut fds = Vec::new();
        for (name, host) in &topo.hosts {
            let list: Vec<(String, u32)> = host.ifindex.iter().map(|(n, i)| (n.clone(), *i)).collect();
            let opened = host.ns.run(|| list.iter().map(|(n, i)| (n.clone(), packet_socket(*i))).collect::<Vec<_>>());
            let Ok(opened) = opened else { continue };
            for (ifname, fd) in opened {
                let Ok(fd) = fd else { continue };
                interfaces.push(Iface { host: name.clone(), ifname });
                fds.push(fd);
            }
        }
        if fds.is_empty() {
            return None;
        }
        // SAFETY: plain eventfd(2); checked below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor we own.
        let stop = unsafe { OwnedFd::from_raw_fd(raw) };
        let stop_r = stop.try_clone().ok()?;
        let ring = Ring::new(crate::env::pcap_max_bytes());
        let thread = std::thread::Builder::new()
            .name("pcap".into())
            .spawn(move || capture(fds, stop_r, snaplen, ring))
            .ok()?;
        Some(Capture { interfaces, snaplen, stop, thread: Some(thread) })
    }

    /// Stops; with `keep`, writes the pcap file(s) into that folder and returns the path.
    pub fn finish(mut self, keep: Option<&Path>) -> Option<PathBuf> {
        let collected = self.halt()?;
        let dir = keep?;
        match self.write(dir, &collected) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("mptcp-conformance: could not write the packet capture into {}: {e}", dir.display());
                None
            }
        }
    }

    fn halt(&mut self) -> Option<Collected> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), (&raw const one).cast(), 8) };
        self.thread.take().and_then(|t| t.join().ok())
    }

    fn write(&self, dir: &Path, c: &Collected) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut comment = format!(
            "{} packet(s) captured, {} kept, {} dropped by the {} MiB ring (oldest first), {} dropped by the kernel; snaplen {}",
            c.ring.seen,
            c.ring.len(),
            c.ring.dropped,
            crate::env::pcap_max_bytes() >> 20,
            c.kernel_drops,
            self.snaplen
        );
        if let Some(e) = &c.error {
            comment += &format!("; capture stopped early: {e}");
        }
        let file = io::BufWriter::new(std::fs::File::create(&path)?);
        let mut w = Writer::new(file, concat!("mptcp-conformance ", env!("CARGO_PKG_VERSION")), Some(&comment))?;
        for i in &self.interfaces {
            w.interface(&Interface {
                name: format!("{}/{}", i.host, i.ifname),
                description: Some(format!("interface {} of host {} (its own network namespace)", i.ifname, i.host)),
                link_type: LINKTYPE_ETHERNET,
                snaplen: self.snaplen,
            })?;
        }
        let mut order: Vec<&Captured> = c.ring.packets().collect();
        order.sort_by_key(|p| p.timestamp_ns);
        for p in order {
            w.packet(&Packet {
                interface: p.interface,
                timestamp_ns: p.timestamp_ns,
                original_len: p.original_len,
                data: &p.data,
                direction: Some(p.direction),
            })?;
        }
        w.finish()?;
        Ok(path)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// `PACKET_IGNORE_OUTGOING` (not in every libc crate version).
const PACKET_IGNORE_OUTGOING: i32 = 23;

/// An `AF_PACKET` socket bound to `ifindex` (in the calling thread's namespace): created with
/// protocol 0 (receives nothing), then bound with `ETH_P_ALL`, so no packet of another
/// interface slips in before the bind.
fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); checked below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let set = |level: i32, name: i32, value: i32| {
        // SAFETY: `value` outlives the call; its size is passed.
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (&raw const value).cast(), 4) }
    };
    if set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20) < 0 {
        set(libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
    }
    set(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
    // Linux 4.20+; on older kernels outgoing copies are skipped in `drain` instead.
    set(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
    // SAFETY: zeroed sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` outlives the call; its size is passed.
    let r = unsafe { libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), size_of::<libc::sockaddr_ll>() as u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn capture(fds: Vec<OwnedFd>, stop: OwnedFd, snaplen: u32, mut ring: Ring) -> Collected {
    let mut buf = vec![0u8; snaplen as usize];
    let mut error = None;
    loop {
        let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN)).collect();
        pfds.push(PollFd::new(stop.as_fd(), PollFlags::POLLIN));
        let (ready, stopping) = match poll(&mut pfds, PollTimeout::NONE) {
            Ok(_) => {
                let ready: Vec<bool> = pfds.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
                let stopping = ready.last().copied().unwrap_or(true);
                (ready, stopping)
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                error = Some(format!("poll: {e}"));
                (Vec::new(), true)
            }
        };
        for (i, fd) in fds.iter().enumerate() {
            // At the stop, drain every socket: what was captured until then is kept.
            if stopping || ready.get(i).copied().unwrap_or(false) {
                if let Err(e) = drain(fd.as_raw_fd(), i as u32, &mut buf, &mut ring) {
                    error.get_or_insert_with(|| format!("recvmsg on interface #{i}: {e}"));
                }
            }
        }
        if stopping {
            break;
        }
    }
    let kernel_drops = fds.iter().map(|f| packet_drops(f.as_raw_fd())).sum();
    close_in_background(fds);
    Collected { ring, kernel_drops, error }
}

/// Closes packet sockets off the case's path: closing one waits for an RCU grace period
/// (`synchronize_net()` in `packet_release`, ~10 ms each here), so they are closed together,
/// one short-lived thread each, by a detached thread. A process that exits first has them
/// closed by the kernel.
fn close_in_background(fds: Vec<OwnedFd>) {
    // A failed spawn drops its closure, so that fd is closed right here instead.
    let _ = std::thread::Builder::new().name("pcap-close".into()).spawn(move || {
        std::thread::scope(|s| {
            for fd in fds {
                let _ = std::thread::Builder::new().spawn_scoped(s, move || drop(fd));
            }
        });
    });
}

/// Reads every pending packet of one socket.
fn drain(fd: RawFd, interface: u32, buf: &mut [u8], ring: &mut Ring) -> io::Result<()> {
    loop {
        // SAFETY: zeroed sockaddr_ll / msghdr are valid values.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut cmsg = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut sll).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&cmsg);
        // MSG_TRUNC: the return value is the packet's real length even when cut to `buf`.
        // SAFETY: every pointer in `msg` refers to live buffers of the sizes given.
        let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_TRUNC | libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(()),
                Some(libc::EINTR) => continue,
                _ => Err(e),
            };
        }
        let outgoing = sll.sll_pkttype == libc::PACKET_OUTGOING;
        if outgoing {
            continue;
        }
        let kept = (n as usize).min(buf.len());
        ring.push(Captured {
            interface,
            timestamp_ns: timestamp(&msg).unwrap_or_else(now_ns),
            original_len: n as u32,
            direction: Direction::Inbound,
            data: buf[..kept].to_vec(),
        });
    }
}

/// The `SCM_TIMESTAMPNS` of a received message.
fn timestamp(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its control buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Packets the kernel dropped on a socket (`PACKET_STATISTICS`: full receive buffer).
fn packet_drops(fd: RawFd) -> u64 {
    let mut st = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` and `len` outlive the call.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS, (&raw mut st).cast(), &raw mut len) };
    if r < 0 { 0 } else { u64::from(st.tp_drops) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(n: u8, len: usize) -> Captured {
        Captured { interface: 0, timestamp_ns: u64::from(n), original_len: len as u32, direction: Direction::Inbound, data: vec![n; len] }
    }

    #[test]
    fn the_ring_drops_the_oldest_packets_beyond_its_bound() {
        let mut r = Ring::new(3 * (100 + PER_PACKET));
        for n in 0..5 {
            r.push(pkt(n, 100));
        }
        assert_eq!(r.len(), 3);
        assert_eq!((r.seen, r.dropped), (5, 2));
        let kept: Vec<u64> = r.packets().map(|p| p.timestamp_ns).collect();
        assert_eq!(kept, [2, 3, 4]);
        // One packet larger than the bound leaves the ring empty rather than over it.
        r.push(pkt(9, 1000));
        assert!(r.is_empty());
        assert_eq!(r.dropped, 6);
    }
}
