//! `struct tcp_info` (`include/uapi/linux/tcp.h`), as the kernel returns it for an MPTCP
//! subflow: in `MPTCP_TCPINFO` and `MPTCP_FULL_INFO` arrays, and in the `INET_DIAG_INFO`
//! attribute of a TCP inet_diag message.
//!
//! The struct grows at its end with new kernels (6.18 adds the AccECN counters: 280 bytes).
//! As with [`crate::mptcp_info`], a field is present only if it lies entirely inside the bytes
//! returned; a field the running kernel does not have is `None`, never zero.

use std::fmt;

use crate::fields::{Field, Gated};

/// Name, byte offset and size of the fields this crate reads, in uapi order (6.18 layout).
/// The bit fields of byte 6 and 7 (window scales, `delivery_rate_app_limited`,
/// `fastopen_client_fail`) are not split.
const FIELDS: &[Field] = &[
    ("state", 0, 1),
    ("ca_state", 1, 1),
    ("retransmits", 2, 1),
    ("probes", 3, 1),
    ("backoff", 4, 1),
    ("options", 5, 1),
    ("rto", 8, 4),
    ("ato", 12, 4),
    ("snd_mss", 16, 4),
    ("rcv_mss", 20, 4),
    ("unacked", 24, 4),
    ("sacked", 28, 4),
    ("lost", 32, 4),
    ("retrans", 36, 4),
    ("fackets", 40, 4),
    ("last_data_sent", 44, 4),
    ("last_ack_sent", 48, 4),
    ("last_data_recv", 52, 4),
    ("last_ack_recv", 56, 4),
    ("pmtu", 60, 4),
    ("rcv_ssthresh", 64, 4),
    ("rtt", 68, 4),
    ("rttvar", 72, 4),
    ("snd_ssthresh", 76, 4),
    ("snd_cwnd", 80, 4),
    ("advmss", 84, 4),
    ("reordering", 88, 4),
    ("rcv_rtt", 92, 4),
    ("rcv_space", 96, 4),
    ("total_retrans", 100, 4),
    ("pacing_rate", 104, 8),
    ("max_pacing_rate", 112, 8),
    ("bytes_acked", 120, 8),
    ("bytes_received", 128, 8),
    ("segs_out", 136, 4),
    ("segs_in", 140, 4),
    ("notsent_bytes", 144, 4),
    ("min_rtt", 148, 4),
    ("data_segs_in", 152, 4),
    ("data_segs_out", 156, 4),
    ("delivery_rate", 160, 8),
    ("busy_time", 168, 8),
    ("rwnd_limited", 176, 8),
    ("sndbuf_limited", 184, 8),
    ("delivered", 192, 4),
    ("delivered_ce", 196, 4),
    ("bytes_sent", 200, 8),
    ("bytes_retrans", 208, 8),
    ("dsack_dups", 216, 4),
    ("reord_seen", 220, 4),
    ("rcv_ooopack", 224, 4),
    ("snd_wnd", 228, 4),
    ("rcv_wnd", 232, 4),
    ("rehash", 236, 4),
    ("total_rto", 240, 2),
    ("total_rto_recoveries", 242, 2),
    ("total_rto_time", 244, 4),
    ("received_ce", 248, 4),
    ("delivered_e1_bytes", 252, 4),
    ("delivered_e0_bytes", 256, 4),
    ("delivered_ce_bytes", 260, 4),
    ("received_e1_bytes", 264, 4),
    ("received_e0_bytes", 268, 4),
    ("received_ce_bytes", 272, 4),
    ("accecn_fail_mode", 276, 2),
    ("accecn_opt_seen", 278, 2),
];

/// Size of `struct tcp_info` as this crate knows it (Linux 6.18). It is what the harness
/// passes as `size_user` for `tcp_info` arrays, like `sizeof(struct tcp_info)` in a C program
/// built against 6.18 headers.
pub const TCP_INFO_SIZE: usize = 280;

/// `TCP_ESTABLISHED`, the `state` of a connected subflow.
pub const TCP_ESTABLISHED: u8 = 1;

/// A decoded `struct tcp_info`: the returned bytes, read through length-gated accessors.
#[derive(Clone, PartialEq, Eq)]
pub struct TcpInfo {
    fields: Gated,
}

impl TcpInfo {
    /// Wraps the bytes the kernel returned (exactly the returned length).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        TcpInfo { fields: Gated::new(FIELDS, bytes) }
    }

    /// The bytes, as returned.
    pub fn as_bytes(&self) -> &[u8] {
        self.fields.bytes()
    }

    /// The length the kernel returned.
    pub fn len(&self) -> usize {
        self.fields.bytes().len()
    }

    /// Whether nothing was returned.
    pub fn is_empty(&self) -> bool {
        self.fields.bytes().is_empty()
    }

    /// Whether `name` is a field this crate knows (uapi name without `tcpi_`).
    pub fn is_field(name: &str) -> bool {
        Gated::is_field(FIELDS, name)
    }

    /// A field by name (uapi name without `tcpi_`); `None` if the struct is too short for it
    /// or the name is unknown.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.fields.get(name)
    }

    /// `tcpi_bytes_sent` (Linux 5.5+).
    pub fn bytes_sent(&self) -> Option<u64> {
        self.get("bytes_sent")
    }

    /// `tcpi_bytes_received` (Linux 4.1+).
    pub fn bytes_received(&self) -> Option<u64> {
        self.get("bytes_received")
    }
}

impl fmt::Debug for TcpInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for TcpInfo {
    /// `state=1 ... bytes_sent=5 bytes_received=6 ...` for the fields present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fields.write(f, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockopt_diag_fixtures as fx;

    #[test]
    fn full_info_tcp_info_reads_the_transfer() {
        let t = TcpInfo::from_bytes(fx::FULL_INFO_TCP_INFO);
        assert_eq!(t.len(), TCP_INFO_SIZE);
        assert_eq!(t.get("state"), Some(u64::from(TCP_ESTABLISHED)));
        assert_eq!(t.bytes_sent(), Some(fx::CLIENT_SENT));
        assert_eq!(t.bytes_received(), Some(fx::SERVER_SENT));
        assert_eq!(t.get("total_retrans"), Some(0));
        assert_eq!(t.get("accecn_opt_seen"), Some(0));
        assert_eq!(t.as_bytes(), fx::FULL_INFO_TCP_INFO);
    }

    #[test]
    fn a_short_struct_hides_newer_fields() {
        // Linux 5.4 stopped at tcpi_reord_seen (offset 224): no bytes_sent there.
        let t = TcpInfo::from_bytes(&fx::FULL_INFO_TCP_INFO[..200]);
        assert_eq!(t.bytes_received(), Some(fx::SERVER_SENT));
        assert_eq!(t.bytes_sent(), None);
        assert!(!t.to_string().contains("bytes_sent"));
        assert_eq!(t.get("no_such_field"), None);
        assert!(TcpInfo::is_field("snd_cwnd") && !TcpInfo::is_field("cwnd"));
    }
}
