//! The per-subflow `SOL_MPTCP` socket options (`include/uapi/linux/mptcp.h`):
//! `MPTCP_TCPINFO` and `MPTCP_SUBFLOW_ADDRS` answer a `struct mptcp_subflow_data` header
//! followed by one entry per subflow; `MPTCP_FULL_INFO` answers a `struct mptcp_full_info`
//! and writes its two arrays through user pointers.
//!
//! # How the kernel sizes the answers (net/mptcp/sockopt.c)
//!
//! The caller writes the header: `size_subflow_data` (its own header size, at least 16),
//! `size_user` (its entry size), and zeros in `num_subflows` and `size_kernel`; the option
//! length is the whole buffer. The kernel refuses (`EINVAL`) an option length under 16, a
//! `size_subflow_data` under 16 or above the option length, and non-zero `num_subflows` or
//! `size_kernel`. It then writes `size_kernel` (its entry size), `size_user = min(size_user,
//! size_kernel)` and `num_subflows` (every subflow, copied or not), copies as many whole
//! entries as fit after the caller's header, and sets the option length to
//! `size_subflow_data + copied bytes`, or to `min(size_subflow_data, 16)` when it copied
//! nothing. Bytes of a header larger than 16 are left as the caller wrote them.
//!
//! `MPTCP_FULL_INFO` (Linux 6.5) checks its 40-byte head the same way and answers the head
//! then `min(remaining length, sizeof(mptcp_info))` bytes of `struct mptcp_info`.
//!
//! Every decoder here is length-gated: what was not returned is `None`, never zero.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::mptcp_info::{MPTCP_INFO_SIZE, MptcpInfo};

/// `sizeof(struct mptcp_subflow_data)`, also the kernel's `MIN_INFO_OPTLEN_SIZE`.
pub const MPTCP_SUBFLOW_DATA_SIZE: usize = 16;
/// `sizeof(struct sockaddr_storage)`: each address of a `mptcp_subflow_addrs` takes this much.
pub const SOCKADDR_STORAGE_SIZE: usize = 128;
/// `sizeof(struct mptcp_subflow_addrs)`: a local and a remote `sockaddr_storage`.
pub const MPTCP_SUBFLOW_ADDRS_SIZE: usize = 2 * SOCKADDR_STORAGE_SIZE;
/// `offsetof(struct mptcp_subflow_info, addrs)`: `addrs` is 8-byte aligned after the `u32 id`.
pub const MPTCP_SUBFLOW_INFO_ADDRS_OFFSET: usize = 8;
/// `sizeof(struct mptcp_subflow_info)`.
pub const MPTCP_SUBFLOW_INFO_SIZE: usize = MPTCP_SUBFLOW_INFO_ADDRS_OFFSET + MPTCP_SUBFLOW_ADDRS_SIZE;
/// `offsetof(struct mptcp_full_info, mptcp_info)`, the kernel's `MIN_FULL_INFO_OPTLEN_SIZE`.
pub const MPTCP_FULL_INFO_HEAD_SIZE: usize = 40;
/// `offsetof(struct mptcp_full_info, tcp_info)`: upstream's test wants more than this back.
pub const MPTCP_FULL_INFO_TCP_INFO_OFFSET: usize = 32;
/// `sizeof(struct mptcp_full_info)` with the `mptcp_info` this crate knows.
pub const MPTCP_FULL_INFO_SIZE: usize = MPTCP_FULL_INFO_HEAD_SIZE + MPTCP_INFO_SIZE;
/// `sizeof(sa_family_t)`: the smallest useful `size_user` for `MPTCP_SUBFLOW_ADDRS`.
pub const SA_FAMILY_SIZE: usize = 2;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// Bytes that do not hold what they should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StructError {
    /// Fewer bytes than a fixed part needs.
    #[error("read {what}: need {need} bytes, {got} returned")]
    Truncated {
        /// The struct being read.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes there are.
        got: usize,
    },
    /// A size field the answer cannot satisfy.
    #[error("read {what}: {field} is {value}, which the {got} bytes returned cannot hold")]
    BadSize {
        /// The struct being read.
        what: &'static str,
        /// The size field.
        field: &'static str,
        /// Its value.
        value: u32,
        /// Bytes there are.
        got: usize,
    },
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(v)
}

/// `struct mptcp_subflow_data`, the header of `MPTCP_TCPINFO` and `MPTCP_SUBFLOW_ADDRS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubflowData {
    /// Size of the caller's header (the kernel keeps the caller's value).
    pub size_subflow_data: u32,
    /// Subflows of the connection, copied or not (set by the kernel; 0 in a request).
    pub num_subflows: u32,
    /// The kernel's entry size (set by the kernel; 0 in a request).
    pub size_kernel: u32,
    /// Entry size: the caller's in a request, `min(caller's, kernel's)` in the answer.
    pub size_user: u32,
}

impl SubflowData {
    /// A well-formed request for entries of `size_user` bytes.
    pub fn request(size_user: u32) -> Self {
        SubflowData { size_subflow_data: MPTCP_SUBFLOW_DATA_SIZE as u32, size_user, ..Default::default() }
    }

    /// Reads the first 16 bytes.
    pub fn parse(buf: &[u8]) -> Result<Self, StructError> {
        if buf.len() < MPTCP_SUBFLOW_DATA_SIZE {
            return Err(StructError::Truncated { what: "struct mptcp_subflow_data", need: MPTCP_SUBFLOW_DATA_SIZE, got: buf.len() });
        }
        Ok(SubflowData {
            size_subflow_data: u32_at(buf, 0),
            num_subflows: u32_at(buf, 4),
            size_kernel: u32_at(buf, 8),
            size_user: u32_at(buf, 12),
        })
    }

    /// The 16 bytes.
    pub fn to_bytes(&self) -> [u8; MPTCP_SUBFLOW_DATA_SIZE] {
        let mut b = [0u8; MPTCP_SUBFLOW_DATA_SIZE];
        for (i, v) in [self.size_subflow_data, self.num_subflows, self.size_kernel, self.size_user].into_iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

/// An `MPTCP_TCPINFO` or `MPTCP_SUBFLOW_ADDRS` answer: the header, what the caller's header
/// had beyond 16 bytes (left untouched by the kernel), and the entries copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubflowArray<'a> {
    /// The header as the kernel left it.
    pub header: SubflowData,
    /// Bytes 16..`size_subflow_data` of the answer (the caller's, unchanged).
    pub header_tail: &'a [u8],
    /// One `size_user`-byte slice per entry copied.
    pub entries: Vec<&'a [u8]>,
}

impl<'a> SubflowArray<'a> {
    /// Splits the answer (exactly the returned option length). Entries start at the caller's
    /// `size_subflow_data`; as many whole `size_user` entries as the answer holds are taken,
    /// at most `num_subflows`.
    pub fn parse(answer: &'a [u8]) -> Result<Self, StructError> {
        let header = SubflowData::parse(answer)?;
        let hdr = header.size_subflow_data as usize;
        if hdr < MPTCP_SUBFLOW_DATA_SIZE {
            return Err(StructError::BadSize { what: "struct mptcp_subflow_data", field: "size_subflow_data", value: header.size_subflow_data, got: answer.len() });
        }
        let header_tail = answer.get(MPTCP_SUBFLOW_DATA_SIZE..hdr.min(answer.len())).unwrap_or_default();
        let body = answer.get(hdr..).unwrap_or_default();
        let size = header.size_user as usize;
        let entries = if size == 0 {
            Vec::new()
        } else {
            body.chunks_exact(size).take(header.num_subflows as usize).collect()
        };
        Ok(SubflowArray { header, header_tail, entries })
    }

    /// The bytes of the answer again: header, header tail, entries.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.header.to_bytes().to_vec();
        b.extend_from_slice(self.header_tail);
        for e in &self.entries {
            b.extend_from_slice(e);
        }
        b
    }
}

/// Encodes `addr` as the kernel fills a `sockaddr_storage` (`sockaddr_in` or `sockaddr_in6`,
/// ports and addresses in network order, the rest zero).
pub fn sockaddr_storage(addr: SocketAddr) -> [u8; SOCKADDR_STORAGE_SIZE] {
    let mut b = [0u8; SOCKADDR_STORAGE_SIZE];
    match addr {
        SocketAddr::V4(a) => {
            b[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            b[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
        }
    }
    b
}

/// Decodes a `sockaddr_in` / `sockaddr_in6` at the start of `b`; `None` for another family
/// or too few bytes.
pub fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    match family {
        AF_INET if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(b[4], b[5], b[6], b[7]), port)))
        }
        AF_INET6 if b.len() >= 28 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[8..24]);
            let scope = u32_at(b, 24);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope)))
        }
        _ => None,
    }
}

/// `struct mptcp_subflow_addrs`, as many bytes as were returned.
#[derive(Clone, PartialEq, Eq)]
pub struct SubflowAddrs {
    bytes: Vec<u8>,
}

impl SubflowAddrs {
    /// Wraps the bytes of one entry (its `size_user` bytes).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        SubflowAddrs { bytes: bytes.to_vec() }
    }

    /// The entry the kernel writes for a subflow from `local` to `remote`.
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Self {
        let mut bytes = sockaddr_storage(local).to_vec();
        bytes.extend_from_slice(&sockaddr_storage(remote));
        SubflowAddrs { bytes }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `sa_family` of the local address (the first two bytes), if returned.
    pub fn family(&self) -> Option<u16> {
        Some(u16::from_ne_bytes([*self.bytes.first()?, *self.bytes.get(1)?]))
    }

    /// The local `sockaddr_storage`, if all 128 bytes were returned.
    pub fn local_storage(&self) -> Option<&[u8]> {
        self.bytes.get(..SOCKADDR_STORAGE_SIZE)
    }

    /// The remote `sockaddr_storage`, if all 128 bytes were returned.
    pub fn remote_storage(&self) -> Option<&[u8]> {
        self.bytes.get(SOCKADDR_STORAGE_SIZE..MPTCP_SUBFLOW_ADDRS_SIZE)
    }

    /// The local address, if returned.
    pub fn local(&self) -> Option<SocketAddr> {
        parse_sockaddr(&self.bytes)
    }

    /// The remote address, if returned.
    pub fn remote(&self) -> Option<SocketAddr> {
        parse_sockaddr(self.bytes.get(SOCKADDR_STORAGE_SIZE..)?)
    }
}

impl std::fmt::Debug for SubflowAddrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.local(), self.remote()) {
            (Some(l), Some(r)) => write!(f, "{l} -> {r}"),
            _ => write!(f, "family {:?} ({} bytes)", self.family(), self.bytes.len()),
        }
    }
}

/// `struct mptcp_subflow_info`, one entry of `MPTCP_FULL_INFO`'s `subflow_info` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubflowInfo {
    /// The subflow id (the initial subflow is 1).
    pub id: u32,
    /// Its addresses, when the entry is larger than `offsetof(addrs)` (the kernel fills them
    /// only then).
    pub addrs: Option<SubflowAddrs>,
}

impl SubflowInfo {
    /// Reads one entry of `size_sfinfo_user` bytes.
    pub fn parse(b: &[u8]) -> Result<Self, StructError> {
        if b.len() < 4 {
            return Err(StructError::Truncated { what: "struct mptcp_subflow_info", need: 4, got: b.len() });
        }
        let addrs = b.get(MPTCP_SUBFLOW_INFO_ADDRS_OFFSET..).filter(|a| !a.is_empty()).map(SubflowAddrs::from_bytes);
        Ok(SubflowInfo { id: u32_at(b, 0), addrs })
    }

    /// The entry's bytes (a full entry when `addrs` is complete).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.id.to_ne_bytes().to_vec();
        if let Some(a) = &self.addrs {
            b.extend_from_slice(&[0; MPTCP_SUBFLOW_INFO_ADDRS_OFFSET - 4]);
            b.extend_from_slice(a.as_bytes());
        }
        b
    }
}

/// The 40-byte head of `struct mptcp_full_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FullInfoHead {
    /// The kernel's `tcp_info` size (0 in a request).
    pub size_tcpinfo_kernel: u32,
    /// The caller's `tcp_info` entry size; `min(caller's, kernel's)` in the answer.
    pub size_tcpinfo_user: u32,
    /// The kernel's `mptcp_subflow_info` size (0 in a request).
    pub size_sfinfo_kernel: u32,
    /// The caller's `mptcp_subflow_info` entry size; `min(caller's, kernel's)` in the answer.
    pub size_sfinfo_user: u32,
    /// Subflows of the connection (0 in a request).
    pub num_subflows: u32,
    /// Entries the caller's arrays hold.
    pub size_arrays_user: u32,
    /// User pointer to the `mptcp_subflow_info` array.
    pub subflow_info: u64,
    /// User pointer to the `tcp_info` array.
    pub tcp_info: u64,
}

impl FullInfoHead {
    /// A well-formed request: entry sizes, array length, and where the arrays are.
    pub fn request(size_tcpinfo_user: u32, size_sfinfo_user: u32, size_arrays_user: u32, subflow_info: u64, tcp_info: u64) -> Self {
        FullInfoHead { size_tcpinfo_user, size_sfinfo_user, size_arrays_user, subflow_info, tcp_info, ..Default::default() }
    }

    /// Reads the first 40 bytes.
    pub fn parse(b: &[u8]) -> Result<Self, StructError> {
        if b.len() < MPTCP_FULL_INFO_HEAD_SIZE {
            return Err(StructError::Truncated { what: "struct mptcp_full_info", need: MPTCP_FULL_INFO_HEAD_SIZE, got: b.len() });
        }
        Ok(FullInfoHead {
            size_tcpinfo_kernel: u32_at(b, 0),
            size_tcpinfo_user: u32_at(b, 4),
            size_sfinfo_kernel: u32_at(b, 8),
            size_sfinfo_user: u32_at(b, 12),
            num_subflows: u32_at(b, 16),
            size_arrays_user: u32_at(b, 20),
            subflow_info: u64_at(b, 24),
            tcp_info: u64_at(b, 32),
        })
    }

    /// The 40 bytes.
    pub fn to_bytes(&self) -> [u8; MPTCP_FULL_INFO_HEAD_SIZE] {
        let mut b = [0u8; MPTCP_FULL_INFO_HEAD_SIZE];
        let words = [self.size_tcpinfo_kernel, self.size_tcpinfo_user, self.size_sfinfo_kernel, self.size_sfinfo_user, self.num_subflows, self.size_arrays_user];
        for (i, v) in words.into_iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b[24..32].copy_from_slice(&self.subflow_info.to_ne_bytes());
        b[32..40].copy_from_slice(&self.tcp_info.to_ne_bytes());
        b
    }
}

/// An `MPTCP_FULL_INFO` answer: the head, then the `mptcp_info` bytes that were returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullInfo {
    /// The head as the kernel left it.
    pub head: FullInfoHead,
    /// The `struct mptcp_info` bytes after the head (empty if the answer stopped there).
    pub mptcp_info_bytes: Vec<u8>,
}

impl FullInfo {
    /// Reads the answer (exactly the returned option length).
    pub fn parse(answer: &[u8]) -> Result<Self, StructError> {
        let head = FullInfoHead::parse(answer)?;
        Ok(FullInfo { head, mptcp_info_bytes: answer[MPTCP_FULL_INFO_HEAD_SIZE..].to_vec() })
    }

    /// `struct mptcp_info`, `None` if the answer stopped at the head.
    pub fn mptcp_info(&self) -> Option<MptcpInfo> {
        (!self.mptcp_info_bytes.is_empty()).then(|| MptcpInfo::from_bytes(&self.mptcp_info_bytes))
    }

    /// The bytes of the answer again.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.head.to_bytes().to_vec();
        b.extend_from_slice(&self.mptcp_info_bytes);
        b
    }
}

/// The address family number of `addr` (`AF_INET` or `AF_INET6`).
pub fn family_of(addr: IpAddr) -> u16 {
    if addr.is_ipv4() { AF_INET } else { AF_INET6 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockopt_diag_fixtures as fx;
    use crate::tcp_info::{TCP_ESTABLISHED, TCP_INFO_SIZE, TcpInfo};

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tcpinfo_request_encodes_like_the_capture() {
        let r = SubflowData::request(TCP_INFO_SIZE as u32);
        assert_eq!(r.to_bytes().as_slice(), fx::TCPINFO_REQUEST);
        assert_eq!(SubflowData::parse(fx::TCPINFO_REQUEST), Ok(r));
    }

    #[test]
    fn tcpinfo_answer_has_one_whole_entry() {
        let a = SubflowArray::parse(fx::TCPINFO_REPLY).unwrap();
        assert_eq!(a.header, SubflowData { size_subflow_data: 16, num_subflows: 1, size_kernel: 280, size_user: 280 });
        assert!(a.header_tail.is_empty());
        assert_eq!(a.entries.len(), 1);
        let t = TcpInfo::from_bytes(a.entries[0]);
        assert_eq!(t.get("state"), Some(u64::from(TCP_ESTABLISHED)));
        assert_eq!(t.bytes_sent(), Some(fx::CLIENT_SENT));
        assert_eq!(t.bytes_received(), Some(fx::SERVER_SENT));
        assert_eq!(a.to_bytes(), fx::TCPINFO_REPLY);
    }

    #[test]
    fn odd_headers_keep_the_callers_bytes() {
        // A larger header (forward compatibility) and nothing copied: the option length is
        // min(size_subflow_data, 16) and size_subflow_data stays the caller's 18.
        let a = SubflowArray::parse(fx::TCPINFO_REPLY_LARGER_HEADER).unwrap();
        assert_eq!(a.header.size_subflow_data, 18);
        assert_eq!((a.header.num_subflows, a.header.size_user), (1, 0));
        assert!(a.entries.is_empty() && a.header_tail.is_empty());
        assert_eq!(a.to_bytes(), fx::TCPINFO_REPLY_LARGER_HEADER);
        // A 17-byte header with 1-byte entries: byte 16 is the caller's canary, byte 17 the
        // first byte of tcp_info (tcpi_state).
        let a = SubflowArray::parse(fx::TCPINFO_REPLY_ODD_HEADER).unwrap();
        assert_eq!(a.header_tail, &[0xaa]);
        assert_eq!(a.entries, vec![&[TCP_ESTABLISHED][..]]);
        assert_eq!(a.to_bytes(), fx::TCPINFO_REPLY_ODD_HEADER);
    }

    #[test]
    fn subflow_addrs_decode_and_encode_both_families() {
        let a = SubflowArray::parse(fx::SUBFLOW_ADDRS_REPLY_V4).unwrap();
        assert_eq!((a.header.size_kernel, a.header.size_user, a.entries.len()), (256, 256, 1));
        let e = SubflowAddrs::from_bytes(a.entries[0]);
        assert_eq!(e.family(), Some(AF_INET));
        assert_eq!(e.local(), Some(v4("127.0.0.1:20000")));
        assert_eq!(e.remote(), Some(v4("127.0.0.1:10000")));
        assert_eq!(SubflowAddrs::new(v4("127.0.0.1:20000"), v4("127.0.0.1:10000")), e);
        assert_eq!(a.to_bytes(), fx::SUBFLOW_ADDRS_REPLY_V4);

        let a = SubflowArray::parse(fx::SUBFLOW_ADDRS_REPLY_V6).unwrap();
        let e = SubflowAddrs::from_bytes(a.entries[0]);
        assert_eq!(e.family(), Some(AF_INET6));
        assert_eq!(e.local(), Some(v4("[::1]:20001")));
        assert_eq!(e.remote(), Some(v4("[::1]:10001")));
        assert_eq!(SubflowAddrs::new(v4("[::1]:20001"), v4("[::1]:10001")).as_bytes(), e.as_bytes());
    }

    #[test]
    fn family_only_entry_has_no_addresses() {
        let a = SubflowArray::parse(fx::SUBFLOW_ADDRS_REPLY_FAMILY_ONLY).unwrap();
        assert_eq!(a.header.size_user as usize, SA_FAMILY_SIZE);
        let e = SubflowAddrs::from_bytes(a.entries[0]);
        assert_eq!(e.family(), Some(AF_INET));
        assert_eq!((e.local(), e.remote(), e.local_storage()), (None, None, None));
    }

    #[test]
    fn full_info_head_and_arrays() {
        let req = FullInfoHead::parse(fx::FULL_INFO_REQUEST).unwrap();
        assert_eq!(req, FullInfoHead::request(280, 264, 2, req.subflow_info, req.tcp_info));
        assert_eq!(req.to_bytes().as_slice(), fx::FULL_INFO_REQUEST);

        let f = FullInfo::parse(fx::FULL_INFO_REPLY).unwrap();
        assert_eq!(fx::FULL_INFO_REPLY.len(), MPTCP_FULL_INFO_SIZE);
        let h = f.head;
        assert_eq!((h.size_tcpinfo_kernel, h.size_tcpinfo_user, h.size_sfinfo_kernel, h.size_sfinfo_user), (280, 280, 264, 264));
        assert_eq!((h.num_subflows, h.size_arrays_user), (1, 2));
        assert_eq!((h.subflow_info, h.tcp_info), (req.subflow_info, req.tcp_info));
        let mi = f.mptcp_info().unwrap();
        assert_eq!(mi.token(), Some(fx::CLIENT_TOKEN));
        assert_eq!(mi.get("subflows"), Some(0));
        assert_eq!(mi.get("bytes_sent"), Some(fx::CLIENT_SENT));
        assert_eq!(f.to_bytes(), fx::FULL_INFO_REPLY);

        let sf = SubflowInfo::parse(fx::FULL_INFO_SUBFLOW_INFO).unwrap();
        assert_eq!(sf.id, 1);
        assert_eq!(sf.addrs, Some(SubflowAddrs::new(v4("127.0.0.1:20000"), v4("127.0.0.1:10000"))));
        assert_eq!(sf.to_bytes(), fx::FULL_INFO_SUBFLOW_INFO);
    }

    #[test]
    fn short_answers_are_errors_or_absent_fields() {
        assert!(matches!(SubflowData::parse(&[0; 15]), Err(StructError::Truncated { need: 16, got: 15, .. })));
        assert!(matches!(SubflowArray::parse(&[0; 16]), Err(StructError::BadSize { field: "size_subflow_data", value: 0, .. })));
        assert!(FullInfo::parse(&fx::FULL_INFO_REPLY[..39]).is_err());
        let f = FullInfo::parse(&fx::FULL_INFO_REPLY[..40]).unwrap();
        assert_eq!(f.mptcp_info(), None);
        // An old kernel's 48-byte mptcp_info: no byte counters, never zeros.
        let f = FullInfo::parse(&fx::FULL_INFO_REPLY[..40 + 48]).unwrap();
        assert_eq!(f.mptcp_info().unwrap().get("bytes_sent"), None);
        assert_eq!(SubflowInfo::parse(&[1, 0, 0, 0]).unwrap(), SubflowInfo { id: 1, addrs: None });
    }
}
