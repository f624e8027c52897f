//! MPTCP socket options read with getsockopt(2) (socket2 has none of them), and the TCP_INQ
//! option, control message and queue ioctls that `mptcp_inq.c` exercises.

use std::io;
use std::os::fd::AsRawFd;

use mptcp_wire::mptcp_info::{MPTCP_FULL_INFO, MPTCP_INFO, MPTCP_SUBFLOW_ADDRS, MPTCP_TCPINFO, MptcpInfo, SOL_MPTCP};
use mptcp_wire::subflow_data::{FullInfoHead, MPTCP_FULL_INFO_SIZE, MPTCP_SUBFLOW_ADDRS_SIZE, MPTCP_SUBFLOW_DATA_SIZE, MPTCP_SUBFLOW_INFO_SIZE, SubflowData};
use mptcp_wire::tcp_info::TCP_INFO_SIZE;

/// `getsockopt(SOL_MPTCP, MPTCP_INFO)` with a buffer larger than any known struct; the
/// returned length decides which fields exist.
pub fn mptcp_info(sock: &impl AsRawFd) -> io::Result<MptcpInfo> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` and `len` outlive the call; `len` holds the buffer size.
    let r = unsafe { libc::getsockopt(sock.as_raw_fd(), SOL_MPTCP, MPTCP_INFO, buf.as_mut_ptr().cast(), &raw mut len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(MptcpInfo::from_bytes(&buf[..(len as usize).min(buf.len())]))
}

// ---------------------------------------------------------------------------------------------
// Per-subflow SOL_MPTCP options, IP_TOS, TCP_INQ and the queue ioctls (mptcp_sockopt.c and
// mptcp_inq.c territory). The byte layouts are decoded by `mptcp_wire::subflow_data`.


/// `TCP_INQ` (setsockopt) and `TCP_CM_INQ` (its control message type), `include/uapi/linux/tcp.h`.
pub const TCP_INQ: i32 = 36;
/// `TCP_CM_INQ`: the `recvmsg` control message carrying the bytes left to read.
pub const TCP_CM_INQ: i32 = TCP_INQ;
/// `FIONREAD` / `SIOCINQ`: bytes readable now.
pub const FIONREAD: libc::Ioctl = 0x541B;
/// `TIOCOUTQ` / `SIOCOUTQ`: bytes in the send queue not yet acknowledged.
pub const TIOCOUTQ: libc::Ioctl = 0x5411;
/// `SIOCOUTQNSD`: bytes in the send queue not yet sent.
pub const SIOCOUTQNSD: libc::Ioctl = 0x894B;

/// What a `getsockopt(2)` call left: its errno (`None` on success) and the option length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAnswer {
    /// `None` on success, else the errno.
    pub errno: Option<i32>,
    /// The option length after the call (as the kernel left it).
    pub optlen: u32,
}

impl RawAnswer {
    /// `"ok, optlen 16"` or `"EINVAL (22), optlen 16"`.
    pub fn describe(&self) -> String {
        match self.errno {
            None => format!("ok, optlen {}", self.optlen as i32),
            Some(e) => format!("{}, optlen {}", mptcp_spec::errno::describe(e), self.optlen as i32),
        }
    }
}

/// `getsockopt(level, name)` with `buf` as the option buffer (its contents are the input, as
/// for the `mptcp_subflow_data` options) and `optlen` as the length passed in.
///
/// # Panics
/// If `optlen` exceeds `buf` (the kernel may write `optlen` bytes): a harness bug.
pub fn getsockopt_raw(sock: &impl AsRawFd, level: i32, name: i32, buf: &mut [u8], optlen: u32) -> RawAnswer {
    assert!(optlen as usize <= buf.len(), "getsockopt({level}, {name}): optlen {optlen} exceeds the {}-byte buffer", buf.len());
    let mut len = optlen as libc::socklen_t;
    // SAFETY: `buf` holds at least `len` writable bytes and outlives the call.
    let r = unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &raw mut len) };
    let errno = (r < 0).then(|| io::Error::last_os_error().raw_os_error().unwrap_or(0));
    RawAnswer { errno, optlen: len }
}

/// `getsockopt(level, name)` with a negative option length (`-1` in `mptcp_sockopt.c`), which
/// the kernel must refuse before writing anything. The buffer is a private page followed by
/// an inaccessible one, so a kernel that wrote anyway could only scribble into that page or
/// fail with `EFAULT`, never into the harness's memory.
pub fn getsockopt_negative_len(sock: &impl AsRawFd, level: i32, name: i32, optlen: i32) -> RawAnswer {
    assert!(optlen < 0, "getsockopt_negative_len wants a negative length, got {optlen}");
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    // SAFETY: a fresh anonymous private mapping; the result is checked before use.
    let map = unsafe { libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    assert!(map != libc::MAP_FAILED, "mmap of a guarded getsockopt buffer failed: {}", io::Error::last_os_error());
    // SAFETY: the second page lies inside the mapping just made.
    let guard = unsafe { libc::mprotect(map.cast::<u8>().add(page).cast(), page, libc::PROT_NONE) };
    assert_eq!(guard, 0, "mprotect of the guard page failed: {}", io::Error::last_os_error());
    let mut len = optlen as libc::socklen_t;
    // SAFETY: `map` is a valid writable page; `len` outlives the call.
    let r = unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, map, &raw mut len) };
    let errno = (r < 0).then(|| io::Error::last_os_error().raw_os_error().unwrap_or(0));
    // SAFETY: unmapping exactly the mapping made above, no longer referenced.
    unsafe { libc::munmap(map, 2 * page) };
    RawAnswer { errno, optlen: len }
}

/// `MPTCP_TCPINFO` or `MPTCP_SUBFLOW_ADDRS` with a well-formed header asking for `entries`
/// entries of `size_user` bytes; returns the answer, cut at the option length the kernel
/// set. Decode it with `mptcp_wire::subflow_data::SubflowArray`.
pub fn subflow_array(sock: &impl AsRawFd, name: i32, size_user: usize, entries: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; MPTCP_SUBFLOW_DATA_SIZE + entries * size_user];
    buf[..MPTCP_SUBFLOW_DATA_SIZE].copy_from_slice(&SubflowData::request(size_user as u32).to_bytes());
    let len = buf.len() as u32;
    let a = getsockopt_raw(sock, SOL_MPTCP, name, &mut buf, len);
    if let Some(e) = a.errno {
        return Err(io::Error::from_raw_os_error(e));
    }
    buf.truncate((a.optlen as usize).min(buf.len()));
    Ok(buf)
}

/// `getsockopt(SOL_MPTCP, MPTCP_TCPINFO)` for up to `entries` subflows, entries of this
/// crate's `tcp_info` size.
pub fn mptcp_tcpinfo(sock: &impl AsRawFd, entries: usize) -> io::Result<Vec<u8>> {
    subflow_array(sock, MPTCP_TCPINFO, TCP_INFO_SIZE, entries)
}

/// `getsockopt(SOL_MPTCP, MPTCP_SUBFLOW_ADDRS)` for up to `entries` subflows.
pub fn mptcp_subflow_addrs(sock: &impl AsRawFd, entries: usize) -> io::Result<Vec<u8>> {
    subflow_array(sock, MPTCP_SUBFLOW_ADDRS, MPTCP_SUBFLOW_ADDRS_SIZE, entries)
}

/// An `MPTCP_FULL_INFO` answer: the `mptcp_full_info` bytes (cut at the returned option
/// length) and the two user arrays the kernel wrote through the pointers.
#[derive(Debug, Clone)]
pub struct FullInfoAnswer {
    /// `struct mptcp_full_info` as returned.
    pub info: Vec<u8>,
    /// The `mptcp_subflow_info` array (`size_arrays_user` entries of the size asked for).
    pub subflow_info: Vec<u8>,
    /// The `tcp_info` array.
    pub tcp_info: Vec<u8>,
}

/// `getsockopt(SOL_MPTCP, MPTCP_FULL_INFO)` with arrays for `entries` subflows, entries of
/// this crate's `mptcp_subflow_info` and `tcp_info` sizes.
pub fn mptcp_full_info(sock: &impl AsRawFd, entries: usize) -> io::Result<FullInfoAnswer> {
    let mut subflow_info = vec![0u8; entries * MPTCP_SUBFLOW_INFO_SIZE];
    let mut tcp_info = vec![0u8; entries * TCP_INFO_SIZE];
    let head = FullInfoHead::request(
        TCP_INFO_SIZE as u32,
        MPTCP_SUBFLOW_INFO_SIZE as u32,
        entries as u32,
        subflow_info.as_mut_ptr() as u64,
        tcp_info.as_mut_ptr() as u64,
    );
    let mut buf = vec![0u8; MPTCP_FULL_INFO_SIZE];
    buf[..head.to_bytes().len()].copy_from_slice(&head.to_bytes());
    let len = buf.len() as u32;
    // The kernel writes the arrays through the pointers in `head`: both vectors are alive and
    // sized for `entries` entries of the sizes announced, and are not touched until it returns.
    let a = getsockopt_raw(sock, SOL_MPTCP, MPTCP_FULL_INFO, &mut buf, len);
    if let Some(e) = a.errno {
        return Err(io::Error::from_raw_os_error(e));
    }
    buf.truncate((a.optlen as usize).min(buf.len()));
    Ok(FullInfoAnswer { info: buf, subflow_info, tcp_info })
}

/// `setsockopt(SOL_IP, IP_TOS)` with a one-byte value, as `mptcp_sockopt.c` does.
pub fn set_ip_tos(sock: &impl AsRawFd, tos: u8) -> io::Result<()> {
    // SAFETY: one readable byte, its size passed.
    let r = unsafe { libc::setsockopt(sock.as_raw_fd(), libc::SOL_IP, libc::IP_TOS, (&raw const tos).cast(), 1) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `setsockopt(IPPROTO_TCP, TCP_INQ, on)`: `recvmsg` then carries a `TCP_CM_INQ` message.
pub fn set_tcp_inq(sock: &impl AsRawFd, on: bool) -> io::Result<()> {
    let v: libc::c_int = on.into();
    // SAFETY: an int, its size passed.
    let r = unsafe { libc::setsockopt(sock.as_raw_fd(), libc::IPPROTO_TCP, TCP_INQ, (&raw const v).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// An `ioctl` that reads an `int` ([`FIONREAD`], [`TIOCOUTQ`], [`SIOCOUTQNSD`]).
pub fn ioctl_int(sock: &impl AsRawFd, request: libc::Ioctl) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these requests write one int to the pointer given.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), request, &raw mut v) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(v) }
}

/// What one `recvmsg` with `TCP_INQ` on returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InqRead {
    /// Bytes read (0: end of stream).
    pub len: usize,
    /// The `TCP_CM_INQ` value, if the control message came.
    pub inq: Option<i32>,
    /// `msg_controllen` after the call.
    pub controllen: usize,
}

/// `recvmsg` into `buf` with room for control messages; picks the `TCP_CM_INQ` one.
pub fn recv_with_inq(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<InqRead> {
    let mut control = [0u64; 64];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut inq = None;
    // SAFETY: walking the control buffer the kernel filled, with the libc macros, bounded by
    // `msg_controllen`; each CMSG_DATA read is of an int the kernel wrote for TCP_CM_INQ.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_TCP && (*c).cmsg_type == TCP_CM_INQ {
                inq = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>()));
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok(InqRead { len: n as usize, inq, controllen: msg.msg_controllen as usize })
}
