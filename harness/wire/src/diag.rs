//! inet_diag for MPTCP and its TCP subflows, over `NETLINK_SOCK_DIAG`
//! (`include/uapi/linux/inet_diag.h`, `sock_diag.h`; `mptcp.h` for the subflow attributes).
//! This is what `ss -M` (MPTCP sockets) and `ss -t` (TCP sockets) read.
//!
//! # Messages
//!
//! A request is a `SOCK_DIAG_BY_FAMILY` message: `struct inet_diag_req_v2` (family, protocol,
//! extensions wanted, state mask, `struct inet_diag_sockid`) then optional attributes: a
//! filter program (`INET_DIAG_REQ_BYTECODE`) and the protocol (`INET_DIAG_REQ_PROTOCOL`).
//! `IPPROTO_MPTCP` is 262 and does not fit the `u8` `sdiag_protocol`, so an MPTCP request
//! carries it in `INET_DIAG_REQ_PROTOCOL` ([`DiagRequest::mptcp`] does; `sdiag_protocol`
//! then holds `IPPROTO_TCP`, as in `ss` and the selftests' `mptcp_diag.c`).
//!
//! With `NLM_F_DUMP` the kernel answers one `struct inet_diag_msg` per socket whose state is
//! in the mask and which the filter accepts, then `NLMSG_DONE`. Without it (*dump one*) it
//! looks up one socket, by 4-tuple and cookie for TCP, by token in `idiag_cookie[0]` for MPTCP,
//! and answers one message or an `NLMSG_ERROR` (`ENOENT`).
//!
//! Each answer carries attributes: `INET_DIAG_INFO` holds `struct mptcp_info` for an MPTCP
//! socket and `struct tcp_info` for a TCP one (when asked for in `idiag_ext`), and a TCP
//! subflow has `INET_DIAG_ULP_INFO` (root only) naming its upper-layer protocol `"mptcp"`
//! with the subflow's `MPTCP_SUBFLOW_ATTR_*` (tokens, ids, mapping, flags).
//!
//! # Filters
//!
//! The filter program is a list of `struct inet_diag_bc_op` (`code`, `yes`, `no`: bytes to
//! jump forward when the condition holds or not); the socket is accepted when the program
//! ends exactly at its end, rejected when a jump goes past it. [`Filter::all`] builds the
//! conjunction `ss` builds for `sport 10000` or `src inet:0.0.0.0:10000`: each condition
//! jumps to the next on success and past the end on failure.
//!
//! # Not covered
//!
//! Only the attributes the harness reads have accessors; the others are kept as raw bytes.
//! `INET_DIAG_REQ_SK_BPF_STORAGES`, `struct inet_diag_req` (v1), the UDP/raw families and the
//! `SOCK_DESTROY` command are not encoded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::mptcp_info::MptcpInfo;
use crate::nl::{self, AttrWriter, Attrs, NlError, NlMessage, NlMsgHdr};
use crate::tcp_info::TcpInfo;

/// `NETLINK_SOCK_DIAG`, the netlink protocol.
pub const NETLINK_SOCK_DIAG: i32 = 4;
/// `SOCK_DIAG_BY_FAMILY`, the message type of requests and answers.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u32 = 6;
/// `IPPROTO_MPTCP`.
pub const IPPROTO_MPTCP: u32 = 262;
/// `AF_INET` as `sdiag_family`.
pub const AF_INET: u8 = 2;
/// `AF_INET6` as `sdiag_family`.
pub const AF_INET6: u8 = 10;
/// `INET_DIAG_NOCOOKIE`: an exact TCP lookup that does not check the cookie.
pub const INET_DIAG_NOCOOKIE: u32 = !0;

/// Request attribute `INET_DIAG_REQ_BYTECODE`: the filter program.
pub const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Request attribute `INET_DIAG_REQ_PROTOCOL`: `u32` protocol, overriding `sdiag_protocol`.
pub const INET_DIAG_REQ_PROTOCOL: u16 = 3;

/// Answer attribute `INET_DIAG_INFO`: `mptcp_info` or `tcp_info`.
pub const INET_DIAG_INFO: u16 = 2;
/// Answer attribute `INET_DIAG_SHUTDOWN`: `u8`, `RCV_SHUTDOWN` 1 / `SEND_SHUTDOWN` 2.
pub const INET_DIAG_SHUTDOWN: u16 = 8;
/// Answer attribute `INET_DIAG_MARK`.
pub const INET_DIAG_MARK: u16 = 15;
/// Answer attribute `INET_DIAG_ULP_INFO`: nested `INET_ULP_INFO_*`.
pub const INET_DIAG_ULP_INFO: u16 = 19;
/// Answer attribute `INET_DIAG_CGROUP_ID`.
pub const INET_DIAG_CGROUP_ID: u16 = 21;
/// Answer attribute `INET_DIAG_SOCKOPT`.
pub const INET_DIAG_SOCKOPT: u16 = 22;

/// `INET_ULP_INFO_NAME`: the ULP's name, NUL-terminated (`"mptcp"`).
pub const INET_ULP_INFO_NAME: u16 = 1;
/// `INET_ULP_INFO_TLS`.
pub const INET_ULP_INFO_TLS: u16 = 2;
/// `INET_ULP_INFO_MPTCP`: nested `MPTCP_SUBFLOW_ATTR_*`.
pub const INET_ULP_INFO_MPTCP: u16 = 3;

/// `MPTCP_SUBFLOW_ATTR_TOKEN_REM` (`u32`): the peer's token (MP_JOIN subflows).
pub const MPTCP_SUBFLOW_ATTR_TOKEN_REM: u16 = 1;
/// `MPTCP_SUBFLOW_ATTR_TOKEN_LOC` (`u32`): the token of the connection the subflow belongs to.
pub const MPTCP_SUBFLOW_ATTR_TOKEN_LOC: u16 = 2;
/// `MPTCP_SUBFLOW_ATTR_RELWRITE_SEQ` (`u32`).
pub const MPTCP_SUBFLOW_ATTR_RELWRITE_SEQ: u16 = 3;
/// `MPTCP_SUBFLOW_ATTR_MAP_SEQ` (`u64`).
pub const MPTCP_SUBFLOW_ATTR_MAP_SEQ: u16 = 4;
/// `MPTCP_SUBFLOW_ATTR_MAP_SFSEQ` (`u32`).
pub const MPTCP_SUBFLOW_ATTR_MAP_SFSEQ: u16 = 5;
/// `MPTCP_SUBFLOW_ATTR_SSN_OFFSET` (`u32`).
pub const MPTCP_SUBFLOW_ATTR_SSN_OFFSET: u16 = 6;
/// `MPTCP_SUBFLOW_ATTR_MAP_DATALEN` (`u16`).
pub const MPTCP_SUBFLOW_ATTR_MAP_DATALEN: u16 = 7;
/// `MPTCP_SUBFLOW_ATTR_FLAGS` (`u32`, `MPTCP_SUBFLOW_FLAG_*`).
pub const MPTCP_SUBFLOW_ATTR_FLAGS: u16 = 8;
/// `MPTCP_SUBFLOW_ATTR_ID_REM` (`u8`).
pub const MPTCP_SUBFLOW_ATTR_ID_REM: u16 = 9;
/// `MPTCP_SUBFLOW_ATTR_ID_LOC` (`u8`).
pub const MPTCP_SUBFLOW_ATTR_ID_LOC: u16 = 10;
/// `MPTCP_SUBFLOW_ATTR_PAD`: alignment padding before `MAP_SEQ`.
pub const MPTCP_SUBFLOW_ATTR_PAD: u16 = 11;

/// `MPTCP_SUBFLOW_FLAG_MCAP_REM`: the peer sent MP_CAPABLE.
pub const MPTCP_SUBFLOW_FLAG_MCAP_REM: u32 = 1 << 0;
/// `MPTCP_SUBFLOW_FLAG_MCAP_LOC`: this side sent MP_CAPABLE.
pub const MPTCP_SUBFLOW_FLAG_MCAP_LOC: u32 = 1 << 1;
/// `MPTCP_SUBFLOW_FLAG_JOIN_REM`.
pub const MPTCP_SUBFLOW_FLAG_JOIN_REM: u32 = 1 << 2;
/// `MPTCP_SUBFLOW_FLAG_JOIN_LOC`.
pub const MPTCP_SUBFLOW_FLAG_JOIN_LOC: u32 = 1 << 3;
/// `MPTCP_SUBFLOW_FLAG_BKUP_REM`.
pub const MPTCP_SUBFLOW_FLAG_BKUP_REM: u32 = 1 << 4;
/// `MPTCP_SUBFLOW_FLAG_BKUP_LOC`.
pub const MPTCP_SUBFLOW_FLAG_BKUP_LOC: u32 = 1 << 5;
/// `MPTCP_SUBFLOW_FLAG_FULLY_ESTABLISHED`.
pub const MPTCP_SUBFLOW_FLAG_FULLY_ESTABLISHED: u32 = 1 << 6;
/// `MPTCP_SUBFLOW_FLAG_CONNECTED`.
pub const MPTCP_SUBFLOW_FLAG_CONNECTED: u32 = 1 << 7;
/// `MPTCP_SUBFLOW_FLAG_MAPVALID`.
pub const MPTCP_SUBFLOW_FLAG_MAPVALID: u32 = 1 << 8;

/// `TCP_ESTABLISHED` (socket states are TCP's for MPTCP sockets too).
pub const TCP_ESTABLISHED: u8 = 1;
/// `TCP_TIME_WAIT`.
pub const TCP_TIME_WAIT: u8 = 6;
/// `TCP_CLOSE`.
pub const TCP_CLOSE: u8 = 7;
/// `TCP_LISTEN`.
pub const TCP_LISTEN: u8 = 10;
/// `TCP_SYN_RECV`.
pub const TCP_SYN_RECV: u8 = 3;
/// `TCP_NEW_SYN_RECV` (request sockets).
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// The `idiag_states` bit of a state (`TCPF_*`).
pub const fn state_bit(state: u8) -> u32 {
    1 << state
}
/// Every state.
pub const TCPF_ALL: u32 = !0;
/// `TCPF_LISTEN`: listeners only (`ss -l`).
pub const TCPF_LISTEN: u32 = state_bit(TCP_LISTEN);
/// What `ss` shows without `-a` or `-l` ("connected"): every state except listen, close,
/// time-wait and the SYN-received ones.
pub const SS_CONNECTED: u32 = TCPF_ALL
    & !(state_bit(TCP_LISTEN) | state_bit(TCP_CLOSE) | state_bit(TCP_TIME_WAIT) | state_bit(TCP_SYN_RECV) | state_bit(TCP_NEW_SYN_RECV));

/// The `idiag_ext` bit that asks for an answer attribute (`1 << (INET_DIAG_x - 1)`).
pub const fn ext_bit(attr: u16) -> u8 {
    1 << (attr - 1)
}

/// Malformed inet_diag bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiagError {
    /// Netlink framing or attribute errors.
    #[error(transparent)]
    Nl(#[from] NlError),
    /// A fixed struct is cut short.
    #[error("read {what}: need {need} bytes, {got} there")]
    Truncated {
        /// The struct.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes there are.
        got: usize,
    },
    /// A filter program that does not decode.
    #[error("read the filter program at byte {offset}: {problem}")]
    Bytecode {
        /// Where in the program.
        offset: usize,
        /// What is wrong.
        problem: String,
    },
}

fn truncated(what: &'static str, need: usize, got: usize) -> DiagError {
    DiagError::Truncated { what, need, got }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// `struct inet_diag_sockid` (48 bytes): ports and addresses in network order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockId {
    /// `idiag_sport`, host order here.
    pub sport: u16,
    /// `idiag_dport`, host order here.
    pub dport: u16,
    /// `idiag_src`: 4 bytes for IPv4 (then zeros), 16 for IPv6.
    pub src: [u8; 16],
    /// `idiag_dst`.
    pub dst: [u8; 16],
    /// `idiag_if`.
    pub ifindex: u32,
    /// `idiag_cookie`: the socket cookie; for an MPTCP dump-one, `[token, 0]`.
    pub cookie: [u32; 2],
}

/// Size of `struct inet_diag_sockid`.
pub const SOCKID_SIZE: usize = 48;

fn addr_bytes(a: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b = v6.octets(),
    }
    b
}

fn addr_of(family: u8, b: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*b))),
        _ => None,
    }
}

impl SockId {
    /// The id of an MPTCP dump-one by token: `idiag_cookie[0] = token`.
    pub fn token(token: u32) -> Self {
        SockId { cookie: [token, 0], ..Default::default() }
    }

    /// The id of an exact TCP lookup of the socket `local` -> `remote`, any cookie.
    pub fn connection(local: SocketAddr, remote: SocketAddr) -> Self {
        SockId {
            sport: local.port(),
            dport: remote.port(),
            src: addr_bytes(local.ip()),
            dst: addr_bytes(remote.ip()),
            ifindex: 0,
            cookie: [INET_DIAG_NOCOOKIE; 2],
        }
    }

    /// Reads the 48 bytes.
    pub fn parse(b: &[u8]) -> Result<Self, DiagError> {
        if b.len() < SOCKID_SIZE {
            return Err(truncated("struct inet_diag_sockid", SOCKID_SIZE, b.len()));
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&b[4..20]);
        dst.copy_from_slice(&b[20..36]);
        Ok(SockId {
            sport: u16::from_be_bytes([b[0], b[1]]),
            dport: u16::from_be_bytes([b[2], b[3]]),
            src,
            dst,
            ifindex: u32_at(b, 36),
            cookie: [u32_at(b, 40), u32_at(b, 44)],
        })
    }

    /// The 48 bytes.
    pub fn to_bytes(&self) -> [u8; SOCKID_SIZE] {
        let mut b = [0u8; SOCKID_SIZE];
        b[0..2].copy_from_slice(&self.sport.to_be_bytes());
        b[2..4].copy_from_slice(&self.dport.to_be_bytes());
        b[4..20].copy_from_slice(&self.src);
        b[20..36].copy_from_slice(&self.dst);
        b[36..40].copy_from_slice(&self.ifindex.to_ne_bytes());
        b[40..44].copy_from_slice(&self.cookie[0].to_ne_bytes());
        b[44..48].copy_from_slice(&self.cookie[1].to_ne_bytes());
        b
    }

    /// The source address and port, read as `family`.
    pub fn source(&self, family: u8) -> Option<SocketAddr> {
        Some(SocketAddr::new(addr_of(family, &self.src)?, self.sport))
    }

    /// The destination address and port, read as `family`.
    pub fn destination(&self, family: u8) -> Option<SocketAddr> {
        Some(SocketAddr::new(addr_of(family, &self.dst)?, self.dport))
    }
}

/// `struct inet_diag_hostcond`: the operand of `INET_DIAG_BC_S_COND` / `D_COND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCond {
    /// `AF_UNSPEC` (0) matches any address; else the address family of `addr`.
    pub family: u8,
    /// Prefix length of `addr` in bits.
    pub prefix_len: u8,
    /// Port, or -1 for any.
    pub port: i32,
    /// Address bytes (4 or 16; none for `AF_UNSPEC`).
    pub addr: Vec<u8>,
}

impl HostCond {
    /// Any address, this port (`ss ... 'sport 10000'`).
    pub fn port(port: u16) -> Self {
        HostCond { family: 0, prefix_len: 0, port: i32::from(port), addr: Vec::new() }
    }

    /// This address with a prefix length, this port (`ss ... 'src inet:0.0.0.0:10000'` is
    /// `0.0.0.0/32` port 10000).
    pub fn prefix(addr: IpAddr, prefix_len: u8, port: u16) -> Self {
        let (family, addr) = match addr {
            IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
            IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
        };
        HostCond { family, prefix_len, port: i32::from(port), addr }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.family, self.prefix_len, 0, 0];
        b.extend_from_slice(&self.port.to_ne_bytes());
        b.extend_from_slice(&self.addr);
        b
    }
}

/// `INET_DIAG_BC_S_COND`: source address/port condition.
pub const INET_DIAG_BC_S_COND: u8 = 7;
/// `INET_DIAG_BC_D_COND`: destination address/port condition.
pub const INET_DIAG_BC_D_COND: u8 = 8;

/// One `struct inet_diag_bc_op` with its operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BcOp {
    /// `INET_DIAG_BC_*`.
    pub code: u8,
    /// Bytes to jump when the condition holds.
    pub yes: u8,
    /// Bytes to jump when it does not.
    pub no: u16,
    /// The operand: a host condition for `S_COND` / `D_COND`, raw bytes otherwise.
    pub operand: Operand,
}

/// The bytes after an op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// `struct inet_diag_hostcond`.
    Host(HostCond),
    /// Another operand (or none), kept as is.
    Raw(Vec<u8>),
}

/// A condition of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The socket's source matches (`src ...`, `sport ...`).
    Source(HostCond),
    /// The socket's destination matches (`dst ...`, `dport ...`).
    Destination(HostCond),
}

/// A filter program.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter(pub Vec<BcOp>);

impl Filter {
    /// The program accepting sockets that satisfy every condition.
    pub fn all(conds: &[Cond]) -> Self {
        let parts: Vec<(u8, &HostCond)> = conds
            .iter()
            .map(|c| match c {
                Cond::Source(h) => (INET_DIAG_BC_S_COND, h),
                Cond::Destination(h) => (INET_DIAG_BC_D_COND, h),
            })
            .collect();
        let size = |h: &HostCond| 4 + 8 + h.addr.len();
        let mut left: usize = parts.iter().map(|(_, h)| size(h)).sum();
        let mut ops = Vec::new();
        for (code, h) in parts {
            ops.push(BcOp {
                code,
                yes: u8::try_from(size(h)).expect("a host condition is at most 28 bytes"),
                no: u16::try_from(left + 4).expect("filter programs are short"),
                operand: Operand::Host(h.clone()),
            });
            left -= size(h);
        }
        Filter(ops)
    }

    /// The program's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for op in &self.0 {
            b.push(op.code);
            b.push(op.yes);
            b.extend_from_slice(&op.no.to_ne_bytes());
            match &op.operand {
                Operand::Host(h) => b.extend_from_slice(&h.to_bytes()),
                Operand::Raw(r) => b.extend_from_slice(r),
            }
        }
        b
    }

    /// Decodes a program: each op's operand runs up to the next op (its `yes` jump for a
    /// host condition, none otherwise).
    pub fn parse(b: &[u8]) -> Result<Self, DiagError> {
        let mut ops = Vec::new();
        let mut off = 0;
        while off < b.len() {
            let head = b.get(off..off + 4).ok_or_else(|| DiagError::Bytecode { offset: off, problem: "an op needs 4 bytes".into() })?;
            let (code, yes, no) = (head[0], head[1], u16::from_ne_bytes([head[2], head[3]]));
            let operand = if code == INET_DIAG_BC_S_COND || code == INET_DIAG_BC_D_COND {
                let body = b.get(off + 4..off + usize::from(yes)).filter(|o| o.len() >= 8).ok_or_else(|| DiagError::Bytecode {
                    offset: off,
                    problem: format!("a host condition with yes = {yes} does not fit"),
                })?;
                off += usize::from(yes);
                Operand::Host(HostCond {
                    family: body[0],
                    prefix_len: body[1],
                    port: i32::from_ne_bytes([body[4], body[5], body[6], body[7]]),
                    addr: body[8..].to_vec(),
                })
            } else {
                off += 4;
                Operand::Raw(Vec::new())
            };
            ops.push(BcOp { code, yes, no, operand });
        }
        Ok(Filter(ops))
    }
}

/// Size of `struct inet_diag_req_v2`.
pub const REQ_V2_SIZE: usize = 8 + SOCKID_SIZE;

/// One `SOCK_DIAG_BY_FAMILY` request: `struct inet_diag_req_v2` and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagRequest {
    /// `sdiag_family`: [`AF_INET`] or [`AF_INET6`] (there is no "any": ask twice).
    pub family: u8,
    /// `sdiag_protocol`.
    pub sdiag_protocol: u8,
    /// `idiag_ext`: answer attributes wanted ([`ext_bit`]).
    pub ext: u8,
    /// `idiag_states`: state mask ([`state_bit`]); ignored by a dump-one.
    pub states: u32,
    /// `id`: the socket to look up (dump-one) or zeros.
    pub id: SockId,
    /// `INET_DIAG_REQ_PROTOCOL`, if sent.
    pub protocol: Option<u32>,
    /// `INET_DIAG_REQ_BYTECODE`, if sent.
    pub filter: Option<Filter>,
}

impl DiagRequest {
    /// A request about MPTCP sockets (`ss -M`): `INET_DIAG_REQ_PROTOCOL` = `IPPROTO_MPTCP`.
    pub fn mptcp(family: u8) -> Self {
        DiagRequest { family, sdiag_protocol: IPPROTO_TCP as u8, ext: 0, states: TCPF_ALL, id: SockId::default(), protocol: Some(IPPROTO_MPTCP), filter: None }
    }

    /// A request about TCP sockets (`ss -t`), MPTCP subflows included.
    pub fn tcp(family: u8) -> Self {
        DiagRequest { family, sdiag_protocol: IPPROTO_TCP as u8, ext: 0, states: TCPF_ALL, id: SockId::default(), protocol: None, filter: None }
    }

    /// Only sockets in these states.
    pub fn states(mut self, states: u32) -> Self {
        self.states = states;
        self
    }

    /// Also `INET_DIAG_INFO` (`mptcp_info` / `tcp_info`) in every answer.
    pub fn with_info(mut self) -> Self {
        self.ext |= ext_bit(INET_DIAG_INFO);
        self
    }

    /// Only sockets the filter accepts.
    pub fn filter(mut self, f: Filter) -> Self {
        self.filter = Some(f);
        self
    }

    /// Look up this socket (a dump-one request).
    pub fn id(mut self, id: SockId) -> Self {
        self.id = id;
        self
    }

    /// The protocol the kernel will use: `INET_DIAG_REQ_PROTOCOL` if sent, else
    /// `sdiag_protocol`.
    pub fn effective_protocol(&self) -> u32 {
        self.protocol.unwrap_or(u32::from(self.sdiag_protocol))
    }

    /// The message payload (after `nlmsghdr`).
    pub fn payload(&self) -> Vec<u8> {
        let mut head = vec![self.family, self.sdiag_protocol, self.ext, 0];
        head.extend_from_slice(&self.states.to_ne_bytes());
        head.extend_from_slice(&self.id.to_bytes());
        let mut w = AttrWriter::with_header(&head);
        if let Some(f) = &self.filter {
            w.put(INET_DIAG_REQ_BYTECODE, &f.to_bytes());
        }
        if let Some(p) = self.protocol {
            w.put_u32(INET_DIAG_REQ_PROTOCOL, p);
        }
        w.into_bytes()
    }

    /// The whole message: a dump (`NLM_F_REQUEST | NLM_F_DUMP`) or, with `dump` false, a
    /// dump-one (`NLM_F_REQUEST` only).
    pub fn encode(&self, dump: bool, seq: u32) -> Vec<u8> {
        let flags = nl::NLM_F_REQUEST | if dump { nl::NLM_F_DUMP } else { 0 };
        NlMsgHdr::new(SOCK_DIAG_BY_FAMILY, flags, seq).encode_message(&self.payload())
    }

    /// Decodes a request payload (after `nlmsghdr`).
    pub fn parse(payload: &[u8]) -> Result<Self, DiagError> {
        if payload.len() < REQ_V2_SIZE {
            return Err(truncated("struct inet_diag_req_v2", REQ_V2_SIZE, payload.len()));
        }
        let mut r = DiagRequest {
            family: payload[0],
            sdiag_protocol: payload[1],
            ext: payload[2],
            states: u32_at(payload, 4),
            id: SockId::parse(&payload[8..])?,
            protocol: None,
            filter: None,
        };
        for a in Attrs::with_base(&payload[REQ_V2_SIZE..], REQ_V2_SIZE) {
            let a = a?;
            match a.attr_type {
                INET_DIAG_REQ_PROTOCOL => r.protocol = Some(a.as_u32()?),
                INET_DIAG_REQ_BYTECODE => r.filter = Some(Filter::parse(a.payload)?),
                _ => {}
            }
        }
        Ok(r)
    }
}

/// Size of `struct inet_diag_msg`.
pub const MSG_SIZE: usize = 4 + SOCKID_SIZE + 20;

/// One answer: `struct inet_diag_msg` and its attributes (kept in order, as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagMsg {
    /// `idiag_family`.
    pub family: u8,
    /// `idiag_state` (`TCP_*`).
    pub state: u8,
    /// `idiag_timer`.
    pub timer: u8,
    /// `idiag_retrans`.
    pub retrans: u8,
    /// `id`.
    pub id: SockId,
    /// `idiag_expires`.
    pub expires: u32,
    /// `idiag_rqueue`.
    pub rqueue: u32,
    /// `idiag_wqueue`.
    pub wqueue: u32,
    /// `idiag_uid`.
    pub uid: u32,
    /// `idiag_inode`.
    pub inode: u32,
    /// Attributes: wire type (flags included) and payload.
    pub attrs: Vec<(u16, Vec<u8>)>,
}

impl DiagMsg {
    /// Decodes an answer payload (after `nlmsghdr`).
    pub fn parse(payload: &[u8]) -> Result<Self, DiagError> {
        if payload.len() < MSG_SIZE {
            return Err(truncated("struct inet_diag_msg", MSG_SIZE, payload.len()));
        }
        let attrs = Attrs::with_base(&payload[MSG_SIZE..], MSG_SIZE)
            .map(|a| a.map(|a| (a.raw_type, a.payload.to_vec())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DiagMsg {
            family: payload[0],
            state: payload[1],
            timer: payload[2],
            retrans: payload[3],
            id: SockId::parse(&payload[4..])?,
            expires: u32_at(payload, 52),
            rqueue: u32_at(payload, 56),
            wqueue: u32_at(payload, 60),
            uid: u32_at(payload, 64),
            inode: u32_at(payload, 68),
            attrs,
        })
    }

    /// The payload bytes again.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = vec![self.family, self.state, self.timer, self.retrans];
        head.extend_from_slice(&self.id.to_bytes());
        for v in [self.expires, self.rqueue, self.wqueue, self.uid, self.inode] {
            head.extend_from_slice(&v.to_ne_bytes());
        }
        let mut w = AttrWriter::with_header(&head);
        for (t, p) in &self.attrs {
            w.put(*t, p);
        }
        w.into_bytes()
    }

    /// An attribute's payload by type (flags ignored).
    pub fn attr(&self, kind: u16) -> Option<&[u8]> {
        self.attrs.iter().find(|(t, _)| t & nl::NLA_TYPE_MASK == kind).map(|(_, p)| p.as_slice())
    }

    /// The socket's local address (`idiag_src`, `idiag_sport`).
    pub fn local(&self) -> Option<SocketAddr> {
        self.id.source(self.family)
    }

    /// The socket's peer address (`idiag_dst`, `idiag_dport`).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.id.destination(self.family)
    }

    /// `INET_DIAG_INFO` of an MPTCP answer.
    pub fn mptcp_info(&self) -> Option<MptcpInfo> {
        self.attr(INET_DIAG_INFO).map(MptcpInfo::from_bytes)
    }

    /// `INET_DIAG_INFO` of a TCP answer.
    pub fn tcp_info(&self) -> Option<TcpInfo> {
        self.attr(INET_DIAG_INFO).map(TcpInfo::from_bytes)
    }

    /// `INET_DIAG_ULP_INFO`, decoded; `None` if absent.
    pub fn ulp_info(&self) -> Option<Result<UlpInfo, DiagError>> {
        self.attr(INET_DIAG_ULP_INFO).map(UlpInfo::parse)
    }
}

/// `INET_DIAG_ULP_INFO` of a TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UlpInfo {
    /// `INET_ULP_INFO_NAME` (`"mptcp"` for a subflow).
    pub name: Option<String>,
    /// `INET_ULP_INFO_MPTCP`, for an MPTCP subflow.
    pub mptcp: Option<SubflowDiag>,
}

impl UlpInfo {
    /// Decodes the nested attributes.
    pub fn parse(b: &[u8]) -> Result<Self, DiagError> {
        let mut u = UlpInfo::default();
        for a in Attrs::new(b) {
            let a = a?;
            match a.attr_type {
                INET_ULP_INFO_NAME => u.name = Some(a.to_string_lossy()),
                INET_ULP_INFO_MPTCP => u.mptcp = Some(SubflowDiag::parse(a.payload)?),
                _ => {}
            }
        }
        Ok(u)
    }
}

/// `INET_ULP_INFO_MPTCP`: the subflow's `MPTCP_SUBFLOW_ATTR_*`, each `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubflowDiag {
    /// `TOKEN_REM`.
    pub token_rem: Option<u32>,
    /// `TOKEN_LOC`: the owning connection's token.
    pub token_loc: Option<u32>,
    /// `RELWRITE_SEQ`.
    pub relwrite_seq: Option<u32>,
    /// `MAP_SEQ`.
    pub map_seq: Option<u64>,
    /// `MAP_SFSEQ`.
    pub map_sfseq: Option<u32>,
    /// `SSN_OFFSET`.
    pub ssn_offset: Option<u32>,
    /// `MAP_DATALEN`.
    pub map_datalen: Option<u16>,
    /// `FLAGS` (`MPTCP_SUBFLOW_FLAG_*`).
    pub flags: Option<u32>,
    /// `ID_REM`.
    pub id_rem: Option<u8>,
    /// `ID_LOC`.
    pub id_loc: Option<u8>,
    /// Attributes this crate does not know (a newer kernel's), type and payload.
    pub other: Vec<(u16, Vec<u8>)>,
}

impl SubflowDiag {
    /// Decodes the nested attributes.
    pub fn parse(b: &[u8]) -> Result<Self, DiagError> {
        let mut s = SubflowDiag::default();
        for a in Attrs::new(b) {
            let a = a?;
            match a.attr_type {
                MPTCP_SUBFLOW_ATTR_TOKEN_REM => s.token_rem = Some(a.as_u32()?),
                MPTCP_SUBFLOW_ATTR_TOKEN_LOC => s.token_loc = Some(a.as_u32()?),
                MPTCP_SUBFLOW_ATTR_RELWRITE_SEQ => s.relwrite_seq = Some(a.as_u32()?),
                MPTCP_SUBFLOW_ATTR_MAP_SEQ => s.map_seq = Some(a.as_u64()?),
                MPTCP_SUBFLOW_ATTR_MAP_SFSEQ => s.map_sfseq = Some(a.as_u32()?),
                MPTCP_SUBFLOW_ATTR_SSN_OFFSET => s.ssn_offset = Some(a.as_u32()?),
                MPTCP_SUBFLOW_ATTR_MAP_DATALEN => s.map_datalen = Some(a.as_u16()?),
                MPTCP_SUBFLOW_ATTR_FLAGS => s.flags = Some(a.as_u32()?),
                MPTCP_SUBFLOW_ATTR_ID_REM => s.id_rem = Some(a.as_u8()?),
                MPTCP_SUBFLOW_ATTR_ID_LOC => s.id_loc = Some(a.as_u8()?),
                MPTCP_SUBFLOW_ATTR_PAD => {}
                t => s.other.push((t, a.payload.to_vec())),
            }
        }
        Ok(s)
    }

    /// As `ss -ti` prints it: `token:<rem>(id:<n>)/<loc>(id:<n>)`, `None` unless all four
    /// attributes are present (the selftest compares this text).
    pub fn ss_token(&self) -> Option<String> {
        Some(format!("token:{:04x}(id:{})/{:04x}(id:{})", self.token_rem?, self.id_rem?, self.token_loc?, self.id_loc?))
    }
}

/// One message of an answer stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagReply {
    /// A socket.
    Sock(NlMsgHdr, DiagMsg),
    /// `NLMSG_DONE`: end of a dump (errno 0 on success).
    Done(i32),
    /// `NLMSG_ERROR` with an errno (positive): the request was refused.
    Error(i32),
    /// `NLMSG_ERROR` 0: an acknowledgement.
    Ack,
    /// Another message type (`NLMSG_NOOP`, `NLMSG_OVERRUN`), by type.
    Other(u16),
}

/// Decodes every message of a receive buffer.
pub fn parse_replies(buf: &[u8]) -> Result<Vec<DiagReply>, DiagError> {
    nl::messages(buf)
        .map(|m| {
            Ok(match m? {
                NlMessage::Data(d) if d.header.msg_type == SOCK_DIAG_BY_FAMILY => DiagReply::Sock(d.header, DiagMsg::parse(&d.payload)?),
                NlMessage::Data(d) => DiagReply::Other(d.header.msg_type),
                NlMessage::Error(e) => DiagReply::Error(e.errno),
                NlMessage::Ack(_) => DiagReply::Ack,
                NlMessage::Done(d) => DiagReply::Done(d.errno),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mptcp_info::MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED;
    use crate::sockopt_diag_fixtures as fx;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn one(bytes: &[u8]) -> (NlMsgHdr, DiagMsg) {
        match parse_replies(bytes).unwrap().as_slice() {
            [DiagReply::Sock(h, m)] => (*h, m.clone()),
            other => panic!("expected one socket, got {other:?}"),
        }
    }

    /// Decodes a request fixture and checks it encodes back to the same bytes.
    fn request(bytes: &[u8], dump: bool) -> DiagRequest {
        let h = NlMsgHdr::parse(bytes).unwrap();
        assert_eq!(h.msg_type, SOCK_DIAG_BY_FAMILY);
        let r = DiagRequest::parse(&bytes[16..]).unwrap();
        assert_eq!(r.encode(dump, h.seq), bytes);
        r
    }

    #[test]
    fn mptcp_dump_request_is_what_ss_sends() {
        let want = DiagRequest::mptcp(AF_INET).with_info();
        assert_eq!(want.encode(true, 1), fx::DIAG_MPTCP_DUMP_REQUEST);
        let r = request(fx::DIAG_MPTCP_DUMP_REQUEST, true);
        assert_eq!(r, want);
        assert_eq!(r.effective_protocol(), IPPROTO_MPTCP);
    }

    #[test]
    fn mptcp_dump_answers_client_server_and_listener() {
        let replies: Vec<DiagReply> = fx::DIAG_MPTCP_DUMP_REPLY_ALL.iter().flat_map(|m| parse_replies(m).unwrap()).collect();
        let socks: Vec<&DiagMsg> = replies.iter().filter_map(|r| if let DiagReply::Sock(_, m) = r { Some(m) } else { None }).collect();
        assert_eq!(replies.last(), Some(&DiagReply::Done(0)));
        assert_eq!(socks.len(), 3);
        let client = socks.iter().find(|m| m.local() == Some(sa("127.0.0.1:20000"))).unwrap();
        assert_eq!((client.state, client.remote()), (TCP_ESTABLISHED, Some(sa("127.0.0.1:10000"))));
        let ci = client.mptcp_info().unwrap();
        assert_eq!(ci.token(), Some(fx::CLIENT_TOKEN));
        assert_eq!(ci.get("flags"), Some(u64::from(MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED)));
        assert_eq!((ci.get("bytes_sent"), ci.get("bytes_received")), (Some(fx::CLIENT_SENT), Some(fx::SERVER_SENT)));
        let server = socks.iter().find(|m| m.remote() == Some(sa("127.0.0.1:20000"))).unwrap();
        assert_eq!(server.mptcp_info().unwrap().token(), Some(fx::SERVER_TOKEN));
        let listener = socks.iter().find(|m| m.state == TCP_LISTEN).unwrap();
        assert_eq!(listener.local(), Some(sa("0.0.0.0:10000")));
        // Every message encodes back to the kernel's bytes.
        for bytes in fx::DIAG_MPTCP_DUMP_REPLY_ALL.iter().take(3) {
            let (h, m) = one(bytes);
            assert_eq!(h.encode_message(&m.to_bytes()), *bytes);
        }
    }

    #[test]
    fn listener_filters_encode_like_ss() {
        let sport = DiagRequest::mptcp(AF_INET).states(TCPF_LISTEN).filter(Filter::all(&[Cond::Source(HostCond::port(10000))]));
        assert_eq!(sport.encode(true, 2), fx::DIAG_LISTEN_SPORT_REQUEST);
        assert_eq!(request(fx::DIAG_LISTEN_SPORT_REQUEST, true), sport);
        let src = DiagRequest::mptcp(AF_INET)
            .states(TCPF_LISTEN)
            .filter(Filter::all(&[Cond::Source(HostCond::prefix(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 32, 10000))]));
        assert_eq!(src.encode(true, 3), fx::DIAG_LISTEN_SRC_REQUEST);
        assert_eq!(request(fx::DIAG_LISTEN_SRC_REQUEST, true), src);
        let replies: Vec<DiagReply> = fx::DIAG_LISTEN_SPORT_REPLY_ALL.iter().flat_map(|m| parse_replies(m).unwrap()).collect();
        assert!(matches!(replies.as_slice(), [DiagReply::Sock(_, m), DiagReply::Done(0)] if m.state == TCP_LISTEN && m.id.sport == 10000));
    }

    #[test]
    fn conjunction_jumps_past_the_end_on_failure() {
        // Two conditions: the first goes to the second or 4 bytes past the end; the second
        // to the end or 4 past it.
        let f = Filter::all(&[Cond::Source(HostCond::port(1)), Cond::Destination(HostCond::port(2))]);
        assert_eq!(f.0.iter().map(|o| (o.code, o.yes, o.no)).collect::<Vec<_>>(), vec![(INET_DIAG_BC_S_COND, 12, 28), (INET_DIAG_BC_D_COND, 12, 16)]);
        assert_eq!(Filter::parse(&f.to_bytes()), Ok(f));
        assert!(matches!(Filter::parse(&[7, 40, 0, 0]), Err(DiagError::Bytecode { offset: 0, .. })));
    }

    #[test]
    fn dump_one_by_token_answers_that_connection() {
        let want = DiagRequest::mptcp(AF_INET).with_info().states(0).id(SockId::token(fx::CLIENT_TOKEN));
        assert_eq!(want.encode(false, 4), fx::DIAG_DUMP_ONE_REQUEST);
        assert_eq!(request(fx::DIAG_DUMP_ONE_REQUEST, false), want);
        let (h, m) = one(fx::DIAG_DUMP_ONE_REPLY);
        assert_eq!(h.flags & nl::NLM_F_MULTI, 0);
        assert_eq!(m.mptcp_info().unwrap().token(), Some(fx::CLIENT_TOKEN));
        assert_eq!(h.encode_message(&m.to_bytes()), fx::DIAG_DUMP_ONE_REPLY);
        assert_eq!(parse_replies(fx::DIAG_DUMP_ONE_UNKNOWN_REPLY).unwrap(), vec![DiagReply::Error(2)]);
    }

    #[test]
    fn tcp_exact_lookup_shows_the_subflow_ulp_info() {
        let want = DiagRequest::tcp(AF_INET).with_info().id(SockId::connection(sa("127.0.0.1:20000"), sa("127.0.0.1:10000")));
        assert_eq!(want.encode(false, 6), fx::DIAG_TCP_EXACT_REQUEST);
        assert_eq!(request(fx::DIAG_TCP_EXACT_REQUEST, false), want);
        let (h, m) = one(fx::DIAG_TCP_EXACT_REPLY);
        assert_eq!(m.tcp_info().unwrap().bytes_sent(), Some(fx::CLIENT_SENT));
        let ulp = m.ulp_info().unwrap().unwrap();
        assert_eq!(ulp.name.as_deref(), Some("mptcp"));
        let sf = ulp.mptcp.unwrap();
        assert_eq!((sf.token_rem, sf.token_loc, sf.id_rem, sf.id_loc), (Some(0), Some(fx::CLIENT_TOKEN), Some(0), Some(0)));
        let flags = sf.flags.unwrap();
        assert_ne!(flags & MPTCP_SUBFLOW_FLAG_MCAP_LOC, 0);
        assert_ne!(flags & MPTCP_SUBFLOW_FLAG_CONNECTED, 0);
        assert!(sf.map_seq.is_some() && sf.other.is_empty());
        assert_eq!(sf.ss_token(), Some(format!("token:0000(id:0)/{:04x}(id:0)", fx::CLIENT_TOKEN)));
        assert_eq!(h.encode_message(&m.to_bytes()), fx::DIAG_TCP_EXACT_REPLY);
    }

    #[test]
    fn short_messages_are_errors() {
        assert!(matches!(DiagMsg::parse(&[0; 71]), Err(DiagError::Truncated { need: 72, got: 71, .. })));
        assert!(matches!(DiagRequest::parse(&[0; 55]), Err(DiagError::Truncated { need: 56, .. })));
        // A subflow attribute of the wrong size is an error naming it, not a zero.
        assert!(SubflowDiag::parse(&[5, 0, 2, 0, 1, 0, 0, 0]).is_err());
        // Unknown subflow attributes are kept.
        let s = SubflowDiag::parse(&[8, 0, 99, 0, 1, 2, 3, 4]).unwrap();
        assert_eq!(s.other, vec![(99, vec![1, 2, 3, 4])]);
    }
}
