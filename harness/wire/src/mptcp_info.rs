//! `struct mptcp_info` (`include/uapi/linux/mptcp.h`), as returned by
//! `getsockopt(SOL_MPTCP, MPTCP_INFO)` and in inet_diag `INET_DIAG_INFO`.
//!
//! The kernel copies `min(user length, its size)` bytes and reports its length; a field is
//! present only if it lies entirely inside the returned length. A field the running kernel
//! does not have is `None`, never zero.

use std::fmt;

use crate::fields::{Field, Gated};

/// `SOL_MPTCP`.
pub const SOL_MPTCP: i32 = 284;
/// `MPTCP_INFO` socket option.
pub const MPTCP_INFO: i32 = 1;
/// `MPTCP_TCPINFO` socket option.
pub const MPTCP_TCPINFO: i32 = 2;
/// `MPTCP_SUBFLOW_ADDRS` socket option.
pub const MPTCP_SUBFLOW_ADDRS: i32 = 3;
/// `MPTCP_FULL_INFO` socket option.
pub const MPTCP_FULL_INFO: i32 = 4;
/// `MPTCP_INFO_FLAG_FALLBACK`.
pub const MPTCP_INFO_FLAG_FALLBACK: u32 = 1 << 0;
/// `MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED`.
pub const MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED: u32 = 1 << 1;

/// Kind and byte offset of every field, in uapi order (6.19 layout; holes skipped).
const FIELDS: &[Field] = &[
    ("subflows", 0, 1),
    ("add_addr_signal", 1, 1),
    ("add_addr_accepted", 2, 1),
    ("subflows_max", 3, 1),
    ("add_addr_signal_max", 4, 1),
    ("add_addr_accepted_max", 5, 1),
    ("flags", 8, 4),
    ("token", 12, 4),
    ("write_seq", 16, 8),
    ("snd_una", 24, 8),
    ("rcv_nxt", 32, 8),
    ("local_addr_used", 40, 1),
    ("local_addr_max", 41, 1),
    ("csum_enabled", 42, 1),
    ("retransmits", 44, 4),
    ("bytes_retrans", 48, 8),
    ("bytes_sent", 56, 8),
    ("bytes_received", 64, 8),
    ("bytes_acked", 72, 8),
    ("subflows_total", 80, 1),
    ("endp_laminar_max", 81, 1),
    ("endp_fullmesh_max", 82, 1),
    ("last_data_sent", 84, 4),
    ("last_data_recv", 88, 4),
    ("last_ack_recv", 92, 4),
];

/// Size of `struct mptcp_info` as this crate knows it.
pub const MPTCP_INFO_SIZE: usize = 96;

/// A decoded `struct mptcp_info`: the returned bytes, read through length-gated accessors.
#[derive(Clone, PartialEq, Eq)]
pub struct MptcpInfo {
    fields: Gated,
}

impl MptcpInfo {
    /// Wraps the bytes the kernel returned (exactly the returned length).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        MptcpInfo { fields: Gated::new(FIELDS, bytes) }
    }

    /// The length the kernel returned.
    pub fn len(&self) -> usize {
        self.fields.bytes().len()
    }

    /// Whether nothing was returned.
    pub fn is_empty(&self) -> bool {
        self.fields.bytes().is_empty()
    }

    /// Every field name, in layout order.
    pub fn field_names() -> impl Iterator<Item = &'static str> {
        FIELDS.iter().map(|(n, _, _)| *n)
    }

    /// Whether `name` is a known field.
    pub fn is_field(name: &str) -> bool {
        Gated::is_field(FIELDS, name)
    }

    /// A field by name (uapi name without `mptcpi_`; aliases `extra_subflows`,
    /// `limit_extra_subflows`, `endp_signal_max`, `limit_add_addr_accepted`,
    /// `endp_subflow_max` accepted); `None` if the kernel's struct is too short for it.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.fields.get(Self::canonical(name))
    }

    /// The uapi field name behind a name or one of its aliases (`extra_subflows` is
    /// `subflows`, ...).
    pub fn canonical(name: &str) -> &str {
        match name {
            "extra_subflows" => "subflows",
            "limit_extra_subflows" => "subflows_max",
            "endp_signal_max" => "add_addr_signal_max",
            "limit_add_addr_accepted" => "add_addr_accepted_max",
            "endp_subflow_max" => "local_addr_max",
            n => n,
        }
    }

    /// `mptcpi_token`.
    pub fn token(&self) -> Option<u32> {
        self.get("token").and_then(|v| u32::try_from(v).ok())
    }
}

impl fmt::Debug for MptcpInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for MptcpInfo {
    /// `subflows=1 add_addr_signal=0 ... token=0x1234abcd ...` for the fields present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fields.write(f, &["token", "flags"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layout of a 6.18 `mptcp_info` (96 bytes) built field by field.
    fn sample(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; MPTCP_INFO_SIZE];
        b[0] = 2; // subflows (extra)
        b[3] = 8; // subflows_max
        b[8..12].copy_from_slice(&MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED.to_ne_bytes()); // flags
        b[12..16].copy_from_slice(&0xdead_beef_u32.to_ne_bytes()); // token
        b[56..64].copy_from_slice(&1024u64.to_ne_bytes()); // bytes_sent
        b[80] = 3; // subflows_total
        b[92..96].copy_from_slice(&250u32.to_ne_bytes()); // last_ack_recv
        b.truncate(len);
        b
    }

    #[test]
    fn fields_are_read_at_their_offsets() {
        let i = MptcpInfo::from_bytes(&sample(96));
        assert_eq!(i.get("subflows"), Some(2));
        assert_eq!(i.get("extra_subflows"), Some(2));
        assert_eq!(i.get("limit_extra_subflows"), Some(8));
        assert_eq!(i.get("flags"), Some(u64::from(MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED)));
        assert_eq!(i.token(), Some(0xdead_beef));
        assert_eq!(i.get("bytes_sent"), Some(1024));
        assert_eq!(i.get("subflows_total"), Some(3));
        assert_eq!(i.get("last_ack_recv"), Some(250));
        assert_eq!(i.get("nonsense"), None);
    }

    #[test]
    fn a_short_struct_hides_newer_fields() {
        // A 5.15-era kernel returned 48 bytes: no bytes_* nor subflows_total.
        let i = MptcpInfo::from_bytes(&sample(48));
        assert_eq!(i.token(), Some(0xdead_beef));
        assert_eq!(i.get("retransmits"), Some(0));
        assert_eq!(i.get("bytes_sent"), None);
        assert_eq!(i.get("subflows_total"), None);
        assert!(!i.to_string().contains("bytes_sent"));
    }
}
