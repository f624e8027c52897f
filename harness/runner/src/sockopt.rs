//! MPTCP socket options read with getsockopt(2) (socket2 has none of them).

use std::io;
use std::os::fd::AsRawFd;

use mptcp_wire::mptcp_info::{MPTCP_INFO, MptcpInfo, SOL_MPTCP};

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
