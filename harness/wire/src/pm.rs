//! The `mptcp_pm` generic netlink family, version 1 (`include/uapi/linux/mptcp_pm.h`,
//! `include/uapi/linux/mptcp.h`): path-manager requests and their replies.
//!
//! # Names: kernel vs `ip mptcp`
//!
//! The kernel and `ip mptcp` name the same things differently. This module keeps the kernel
//! names for constants and the `ip mptcp` names for types, and this table is the only place
//! the mapping is written down:
//!
//! | kernel (uapi / YNL)                                   | `ip mptcp`                                 | here                                 |
//! |-------------------------------------------------------|--------------------------------------------|--------------------------------------|
//! | address (`MPTCP_PM_ATTR_ADDR`, `MPTCP_PM_ADDR_ATTR_*`) | endpoint                                   | [`Endpoint`]                         |
//! | `MPTCP_PM_CMD_ADD_ADDR`                               | `ip mptcp endpoint add`                    | [`PmRequest::AddAddr`]               |
//! | `MPTCP_PM_CMD_DEL_ADDR`                               | `ip mptcp endpoint delete`                 | [`PmRequest::DelAddr`]               |
//! | `MPTCP_PM_CMD_GET_ADDR` (do / dump)                   | `ip mptcp endpoint show [id ID]`           | [`PmRequest::GetAddr`], [`PmRequest::DumpAddrs`] |
//! | `MPTCP_PM_CMD_FLUSH_ADDRS`                            | `ip mptcp endpoint flush`                  | [`PmRequest::FlushAddrs`]            |
//! | `MPTCP_PM_CMD_SET_FLAGS`                              | `ip mptcp endpoint change`                 | [`PmRequest::SetFlags`]              |
//! | `MPTCP_PM_ADDR_FLAG_*`                                | endpoint flag words (`signal`, `backup`...) | [`EndpointFlags`]                    |
//! | `MPTCP_PM_ADDR_ATTR_IF_IDX`                           | `dev IFNAME`                               | [`Endpoint::ifindex`]                |
//! | `MPTCP_PM_ATTR_RCV_ADD_ADDRS`                         | `add_addr_accepted` (`ip mptcp limits`)    | [`Limits::rcv_add_addrs`]            |
//! | `MPTCP_PM_ATTR_SUBFLOWS`                              | `subflows` (`ip mptcp limits`)             | [`Limits::subflows`]                 |
//! | `MPTCP_PM_CMD_ANNOUNCE` / `_REMOVE` / `_SUBFLOW_CREATE` / `_SUBFLOW_DESTROY` | none (selftests' `pm_nl_ctl ann` / `rem` / `csf` / `dsf`) | [`PmRequest::Announce`] ... |
//!
//! # Byte order
//!
//! `MPTCP_PM_ADDR_ATTR_PORT` is a **host-order** `u16`: the kernel reads it with
//! `htons(nla_get_u16())` and writes it with `nla_put_u16(ntohs())`, although the YNL spec
//! once documented it as big-endian. Captured on Linux 6.18: a port sent big-endian as 10100
//! made the kernel listen on 29735. Event ports ([`crate::event`]) are big-endian.
//! `MPTCP_PM_ADDR_ATTR_ADDR4` is the address in network order, like `struct in_addr`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::genl::{self, GenlError, GenlMsgHdr};
use crate::nl::{AttrWriter, Attrs, DataMessage, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NlError};

/// Generic netlink family name.
pub const MPTCP_PM_NAME: &str = "mptcp_pm";
/// Family version.
pub const MPTCP_PM_VER: u8 = 1;
/// Multicast group of command notifications.
pub const MPTCP_PM_CMD_GRP_NAME: &str = "mptcp_pm_cmds";
/// Multicast group of connection events ([`crate::event`]).
pub const MPTCP_PM_EV_GRP_NAME: &str = "mptcp_pm_events";

/// `AF_INET`, as in `MPTCP_PM_ADDR_ATTR_FAMILY`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`, as in `MPTCP_PM_ADDR_ATTR_FAMILY`.
pub const AF_INET6: u16 = 10;

/// Command: add an endpoint.
pub const MPTCP_PM_CMD_ADD_ADDR: u8 = 1;
/// Command: delete an endpoint.
pub const MPTCP_PM_CMD_DEL_ADDR: u8 = 2;
/// Command: get one endpoint (do) or all of them (dump).
pub const MPTCP_PM_CMD_GET_ADDR: u8 = 3;
/// Command: delete every endpoint.
pub const MPTCP_PM_CMD_FLUSH_ADDRS: u8 = 4;
/// Command: set the limits.
pub const MPTCP_PM_CMD_SET_LIMITS: u8 = 5;
/// Command: get the limits.
pub const MPTCP_PM_CMD_GET_LIMITS: u8 = 6;
/// Command: change an endpoint's flags (or, with a token, a subflow's backup flag).
pub const MPTCP_PM_CMD_SET_FLAGS: u8 = 7;
/// Command (userspace PM): announce an address on a connection.
pub const MPTCP_PM_CMD_ANNOUNCE: u8 = 8;
/// Command (userspace PM): remove an announced address.
pub const MPTCP_PM_CMD_REMOVE: u8 = 9;
/// Command (userspace PM): create a subflow.
pub const MPTCP_PM_CMD_SUBFLOW_CREATE: u8 = 10;
/// Command (userspace PM): close a subflow.
pub const MPTCP_PM_CMD_SUBFLOW_DESTROY: u8 = 11;

/// Top-level attribute: an address (nest of `MPTCP_PM_ADDR_ATTR_*`).
pub const MPTCP_PM_ATTR_ADDR: u16 = 1;
/// Top-level attribute: ADD_ADDRs accepted per connection (u32).
pub const MPTCP_PM_ATTR_RCV_ADD_ADDRS: u16 = 2;
/// Top-level attribute: extra subflows per connection (u32).
pub const MPTCP_PM_ATTR_SUBFLOWS: u16 = 3;
/// Top-level attribute: connection token (u32).
pub const MPTCP_PM_ATTR_TOKEN: u16 = 4;
/// Top-level attribute: local address id (u8).
pub const MPTCP_PM_ATTR_LOC_ID: u16 = 5;
/// Top-level attribute: remote address (nest of `MPTCP_PM_ADDR_ATTR_*`).
pub const MPTCP_PM_ATTR_ADDR_REMOTE: u16 = 6;

/// Address attribute: `AF_INET` / `AF_INET6` (u16).
pub const MPTCP_PM_ADDR_ATTR_FAMILY: u16 = 1;
/// Address attribute: id (u8).
pub const MPTCP_PM_ADDR_ATTR_ID: u16 = 2;
/// Address attribute: IPv4 address (4 bytes, network order).
pub const MPTCP_PM_ADDR_ATTR_ADDR4: u16 = 3;
/// Address attribute: IPv6 address (16 bytes).
pub const MPTCP_PM_ADDR_ATTR_ADDR6: u16 = 4;
/// Address attribute: port (u16, **host** byte order).
pub const MPTCP_PM_ADDR_ATTR_PORT: u16 = 5;
/// Address attribute: `MPTCP_PM_ADDR_FLAG_*` (u32).
pub const MPTCP_PM_ADDR_ATTR_FLAGS: u16 = 6;
/// Address attribute: interface index (s32).
pub const MPTCP_PM_ADDR_ATTR_IF_IDX: u16 = 7;

/// Endpoint flag: announce the address to peers (ADD_ADDR).
pub const MPTCP_PM_ADDR_FLAG_SIGNAL: u32 = 1 << 0;
/// Endpoint flag: create subflows from the address.
pub const MPTCP_PM_ADDR_FLAG_SUBFLOW: u32 = 1 << 1;
/// Endpoint flag: subflows using it are backup.
pub const MPTCP_PM_ADDR_FLAG_BACKUP: u32 = 1 << 2;
/// Endpoint flag: a subflow to every announced remote address.
pub const MPTCP_PM_ADDR_FLAG_FULLMESH: u32 = 1 << 3;
/// Endpoint flag: created by the kernel for an incoming subflow (read-only).
pub const MPTCP_PM_ADDR_FLAG_IMPLICIT: u32 = 1 << 4;
/// Endpoint flag: laminar (Linux 6.18).
pub const MPTCP_PM_ADDR_FLAG_LAMINAR: u32 = 1 << 5;
/// Flags known to Linux 6.18 (newer kernels ignore other bits; older ones keep them).
pub const MPTCP_PM_ADDR_FLAGS_MASK: u32 = 0x3f;

/// A `mptcp_pm` payload or flag list that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PmError {
    /// The generic netlink header is malformed.
    #[error("decode {context}: {source}")]
    Genl {
        /// What was being decoded.
        context: &'static str,
        /// The header error.
        source: GenlError,
    },
    /// An attribute is malformed.
    #[error("decode {context}: {source}")]
    Attr {
        /// What was being decoded (an attribute name).
        context: &'static str,
        /// The framing error.
        source: NlError,
    },
    /// A required attribute is absent.
    #[error("decode {context}: {attr} is missing")]
    Missing {
        /// What was being decoded.
        context: &'static str,
        /// Kernel name of the missing attribute.
        attr: &'static str,
    },
    /// The message carries another command than expected.
    #[error("decode {context}: command is {found}, expected {expected}")]
    UnexpectedCommand {
        /// What was being decoded.
        context: &'static str,
        /// Command found.
        found: Command,
        /// Command expected.
        expected: Command,
    },
    /// An endpoint flag word is not known.
    #[error(
        "parse endpoint flags {input:?}: unknown flag {word:?} (expected signal, subflow, backup, \
         fullmesh, implicit, laminar or a number)"
    )]
    UnknownFlag {
        /// The whole input.
        input: String,
        /// The word not understood.
        word: String,
    },
}

fn attr_err(context: &'static str) -> impl Fn(NlError) -> PmError {
    move |source| PmError::Attr { context, source }
}

/// A `mptcp_pm` command number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `MPTCP_PM_CMD_ADD_ADDR`.
    AddAddr,
    /// `MPTCP_PM_CMD_DEL_ADDR`.
    DelAddr,
    /// `MPTCP_PM_CMD_GET_ADDR`.
    GetAddr,
    /// `MPTCP_PM_CMD_FLUSH_ADDRS`.
    FlushAddrs,
    /// `MPTCP_PM_CMD_SET_LIMITS`.
    SetLimits,
    /// `MPTCP_PM_CMD_GET_LIMITS`.
    GetLimits,
    /// `MPTCP_PM_CMD_SET_FLAGS`.
    SetFlags,
    /// `MPTCP_PM_CMD_ANNOUNCE`.
    Announce,
    /// `MPTCP_PM_CMD_REMOVE`.
    Remove,
    /// `MPTCP_PM_CMD_SUBFLOW_CREATE`.
    SubflowCreate,
    /// `MPTCP_PM_CMD_SUBFLOW_DESTROY`.
    SubflowDestroy,
    /// A command this crate does not know.
    Unknown(u8),
}

const COMMANDS: [(Command, u8, &str); 11] = [
    (
        Command::AddAddr,
        MPTCP_PM_CMD_ADD_ADDR,
        "MPTCP_PM_CMD_ADD_ADDR",
    ),
    (
        Command::DelAddr,
        MPTCP_PM_CMD_DEL_ADDR,
        "MPTCP_PM_CMD_DEL_ADDR",
    ),
    (
        Command::GetAddr,
        MPTCP_PM_CMD_GET_ADDR,
        "MPTCP_PM_CMD_GET_ADDR",
    ),
    (
        Command::FlushAddrs,
        MPTCP_PM_CMD_FLUSH_ADDRS,
        "MPTCP_PM_CMD_FLUSH_ADDRS",
    ),
    (
        Command::SetLimits,
        MPTCP_PM_CMD_SET_LIMITS,
        "MPTCP_PM_CMD_SET_LIMITS",
    ),
    (
        Command::GetLimits,
        MPTCP_PM_CMD_GET_LIMITS,
        "MPTCP_PM_CMD_GET_LIMITS",
    ),
    (
        Command::SetFlags,
        MPTCP_PM_CMD_SET_FLAGS,
        "MPTCP_PM_CMD_SET_FLAGS",
    ),
    (
        Command::Announce,
        MPTCP_PM_CMD_ANNOUNCE,
        "MPTCP_PM_CMD_ANNOUNCE",
    ),
    (Command::Remove, MPTCP_PM_CMD_REMOVE, "MPTCP_PM_CMD_REMOVE"),
    (
        Command::SubflowCreate,
        MPTCP_PM_CMD_SUBFLOW_CREATE,
        "MPTCP_PM_CMD_SUBFLOW_CREATE",
    ),
    (
        Command::SubflowDestroy,
        MPTCP_PM_CMD_SUBFLOW_DESTROY,
        "MPTCP_PM_CMD_SUBFLOW_DESTROY",
    ),
];

impl From<u8> for Command {
    fn from(value: u8) -> Self {
        COMMANDS
            .iter()
            .find(|(_, n, _)| *n == value)
            .map_or(Self::Unknown(value), |(c, _, _)| *c)
    }
}

impl From<Command> for u8 {
    fn from(value: Command) -> Self {
        match value {
            Command::Unknown(n) => n,
            known => COMMANDS
                .iter()
                .find(|(c, _, _)| *c == known)
                .map_or(0, |(_, n, _)| *n),
        }
    }
}

impl fmt::Display for Command {
    /// The uapi name (`MPTCP_PM_CMD_ADD_ADDR`), or the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match COMMANDS.iter().find(|(c, _, _)| c == self) {
            Some((_, _, name)) => f.write_str(name),
            None => write!(f, "{}", u8::from(*self)),
        }
    }
}

/// Endpoint flags (`MPTCP_PM_ADDR_FLAG_*`); unknown bits are kept and printed in hex.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EndpointFlags(pub u32);

impl EndpointFlags {
    /// No flag.
    pub const EMPTY: Self = Self(0);
    /// `signal`: announce the address.
    pub const SIGNAL: Self = Self(MPTCP_PM_ADDR_FLAG_SIGNAL);
    /// `subflow`: create subflows from it.
    pub const SUBFLOW: Self = Self(MPTCP_PM_ADDR_FLAG_SUBFLOW);
    /// `backup`: its subflows are backup.
    pub const BACKUP: Self = Self(MPTCP_PM_ADDR_FLAG_BACKUP);
    /// `fullmesh`: a subflow to every remote address.
    pub const FULLMESH: Self = Self(MPTCP_PM_ADDR_FLAG_FULLMESH);
    /// `implicit`: created by the kernel.
    pub const IMPLICIT: Self = Self(MPTCP_PM_ADDR_FLAG_IMPLICIT);
    /// `laminar` (6.18).
    pub const LAMINAR: Self = Self(MPTCP_PM_ADDR_FLAG_LAMINAR);

    const WORDS: [(Self, &'static str); 6] = [
        (Self::SIGNAL, "signal"),
        (Self::SUBFLOW, "subflow"),
        (Self::BACKUP, "backup"),
        (Self::FULLMESH, "fullmesh"),
        (Self::IMPLICIT, "implicit"),
        (Self::LAMINAR, "laminar"),
    ];

    /// The raw bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// True if every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Bits no known flag covers.
    pub fn unknown_bits(self) -> u32 {
        self.0 & !MPTCP_PM_ADDR_FLAGS_MASK
    }

    /// These flags without those of `other`.
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The `ip mptcp` words of the set flags, then unknown bits as one hex word.
    pub fn words(self) -> Vec<String> {
        let mut words: Vec<String> = Self::WORDS
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, word)| (*word).to_owned())
            .collect();
        if self.unknown_bits() != 0 {
            words.push(format!("{:#x}", self.unknown_bits()));
        }
        words
    }
}

impl std::ops::BitOr for EndpointFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for EndpointFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for EndpointFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Display for EndpointFlags {
    /// Space-separated words as `ip mptcp endpoint show` prints them (`signal backup 0x80`);
    /// empty for no flag.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words().join(" "))
    }
}

impl fmt::Debug for EndpointFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EndpointFlags({:#x}: {})",
            self.0,
            self.words().join("|")
        )
    }
}

impl FromStr for EndpointFlags {
    type Err = PmError;

    /// Words separated by spaces, commas or `|`: `signal`, `subflow`, `backup`, `fullmesh`,
    /// `implicit`, `laminar`, or a number (`0x80`, `128`). An empty string is no flag.
    fn from_str(input: &str) -> Result<Self, PmError> {
        let mut flags = Self::EMPTY;
        for word in input.split(|c: char| c.is_whitespace() || c == ',' || c == '|') {
            if word.is_empty() {
                continue;
            }
            let known = Self::WORDS
                .iter()
                .find(|(_, w)| *w == word)
                .map(|(flag, _)| *flag);
            let number = word
                .strip_prefix("0x")
                .map_or_else(
                    || word.parse().ok(),
                    |hex| u32::from_str_radix(hex, 16).ok(),
                )
                .map(Self);
            flags |= known.or(number).ok_or_else(|| PmError::UnknownFlag {
                input: input.to_owned(),
                word: word.to_owned(),
            })?;
        }
        Ok(flags)
    }
}

/// The address family number of an IP address.
fn family_of(addr: IpAddr) -> u16 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// An endpoint (the kernel's "address"): `ip mptcp endpoint add ADDR [port PORT] [id ID]
/// [FLAGS] [dev IFNAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `MPTCP_PM_ADDR_ATTR_FAMILY` when it is not `addr`'s own; `None`: `addr`'s family
    /// (decoders return `None` whenever the kernel's family matches the address).
    pub family: Option<u16>,
    /// `MPTCP_PM_ADDR_ATTR_ID`; `None`: omitted, the kernel picks one (0 is sent if set).
    pub id: Option<u8>,
    /// `MPTCP_PM_ADDR_ATTR_ADDR4` / `_ADDR6`.
    pub addr: IpAddr,
    /// `MPTCP_PM_ADDR_ATTR_PORT`; the kernel reports port 0 for none, decoded as `None`.
    pub port: Option<u16>,
    /// `MPTCP_PM_ADDR_ATTR_FLAGS` (always encoded).
    pub flags: EndpointFlags,
    /// `MPTCP_PM_ADDR_ATTR_IF_IDX` (`dev`).
    pub ifindex: Option<i32>,
    /// Address attributes this crate does not know, kept raw (type with flags, payload).
    pub unknown: Vec<(u16, Vec<u8>)>,
}

impl Endpoint {
    /// An endpoint for `addr` with no id, port, flag or device.
    pub fn new(addr: IpAddr) -> Self {
        Self {
            family: None,
            id: None,
            addr,
            port: None,
            flags: EndpointFlags::EMPTY,
            ifindex: None,
            unknown: Vec::new(),
        }
    }

    /// Sets the id (`id ID`).
    pub fn with_id(self, id: u8) -> Self {
        Self {
            id: Some(id),
            ..self
        }
    }

    /// Sets the port (`port PORT`).
    pub fn with_port(self, port: u16) -> Self {
        Self {
            port: Some(port),
            ..self
        }
    }

    /// Sets the flags.
    pub fn with_flags(self, flags: EndpointFlags) -> Self {
        Self { flags, ..self }
    }

    /// Sets the interface index (`dev IFNAME`).
    pub fn with_ifindex(self, ifindex: i32) -> Self {
        Self {
            ifindex: Some(ifindex),
            ..self
        }
    }

    /// The family to encode: the explicit one, else the address's.
    pub fn effective_family(&self) -> u16 {
        self.family.unwrap_or_else(|| family_of(self.addr))
    }

    /// Writes the endpoint as a nest of type `attr_type` (`MPTCP_PM_ATTR_ADDR` or
    /// `MPTCP_PM_ATTR_ADDR_REMOTE`), attributes in uapi order.
    pub fn encode_nested(&self, w: &mut AttrWriter, attr_type: u16) {
        w.nested(attr_type, |w| {
            w.put_u16(MPTCP_PM_ADDR_ATTR_FAMILY, self.effective_family());
            if let Some(id) = self.id {
                w.put_u8(MPTCP_PM_ADDR_ATTR_ID, id);
            }
            put_ip(w, self.addr);
            if let Some(port) = self.port {
                w.put_u16(MPTCP_PM_ADDR_ATTR_PORT, port);
            }
            w.put_u32(MPTCP_PM_ADDR_ATTR_FLAGS, self.flags.bits());
            if let Some(ifindex) = self.ifindex {
                w.put_i32(MPTCP_PM_ADDR_ATTR_IF_IDX, ifindex);
            }
            for (raw_type, payload) in &self.unknown {
                w.put(*raw_type, payload);
            }
        });
    }

    /// Decodes the payload of an `MPTCP_PM_ATTR_ADDR` nest.
    pub fn decode_nested(payload: &[u8]) -> Result<Self, PmError> {
        AddrNest::decode(Attrs::new(payload))?.to_endpoint()
    }

    /// Decodes a `MPTCP_PM_CMD_GET_ADDR` reply, or one message of its dump (payload after
    /// `nlmsghdr`).
    pub fn decode_reply(payload: &[u8]) -> Result<Self, PmError> {
        let (_, attrs) = GenlMsgHdr::parse(payload).map_err(|source| PmError::Genl {
            context: "an endpoint reply",
            source,
        })?;
        let addr =
            find(attrs, MPTCP_PM_ATTR_ADDR, "an endpoint reply")?.ok_or(PmError::Missing {
                context: "an endpoint reply",
                attr: "MPTCP_PM_ATTR_ADDR",
            })?;
        AddrNest::decode(addr.nested())?.to_endpoint()
    }

    /// Encodes a `MPTCP_PM_CMD_GET_ADDR` reply payload (for tests and fakes).
    pub fn encode_reply(&self) -> Vec<u8> {
        let mut w = GenlMsgHdr::new(MPTCP_PM_CMD_GET_ADDR, MPTCP_PM_VER).writer();
        self.encode_nested(&mut w, MPTCP_PM_ATTR_ADDR);
        w.into_bytes()
    }
}

impl fmt::Display for Endpoint {
    /// Like `ip mptcp endpoint show`: `10.0.2.1 port 10100 id 5 signal backup ifindex 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(port) = self.port {
            write!(f, " port {port}")?;
        }
        if let Some(id) = self.id {
            write!(f, " id {id}")?;
        }
        if !self.flags.is_empty() {
            write!(f, " {}", self.flags)?;
        }
        if let Some(ifindex) = self.ifindex {
            write!(f, " ifindex {ifindex}")?;
        }
        Ok(())
    }
}

fn put_ip(w: &mut AttrWriter, addr: IpAddr) {
    match addr {
        IpAddr::V4(v4) => w.put(MPTCP_PM_ADDR_ATTR_ADDR4, &v4.octets()),
        IpAddr::V6(v6) => w.put(MPTCP_PM_ADDR_ATTR_ADDR6, &v6.octets()),
    };
}

/// Finds the first top-level attribute of `attr_type`; framing errors are reported.
fn find<'a>(
    attrs: &'a [u8],
    attr_type: u16,
    context: &'static str,
) -> Result<Option<crate::nl::Attr<'a>>, PmError> {
    for attr in Attrs::with_base(attrs, crate::nl::NLMSG_HDRLEN + genl::GENL_HDRLEN) {
        let attr = attr.map_err(attr_err(context))?;
        if attr.attr_type == attr_type {
            return Ok(Some(attr));
        }
    }
    Ok(None)
}

/// The attributes of an address nest, as found.
#[derive(Debug, Default)]
struct AddrNest {
    family: Option<u16>,
    id: Option<u8>,
    addr: Option<IpAddr>,
    port: Option<u16>,
    flags: Option<u32>,
    ifindex: Option<i32>,
    unknown: Vec<(u16, Vec<u8>)>,
}

impl AddrNest {
    fn decode(attrs: Attrs<'_>) -> Result<Self, PmError> {
        let mut nest = Self::default();
        let (mut addr4, mut addr6) = (None, None);
        for attr in attrs {
            let attr = attr.map_err(attr_err("MPTCP_PM_ATTR_ADDR"))?;
            match attr.attr_type {
                MPTCP_PM_ADDR_ATTR_FAMILY => {
                    nest.family = Some(
                        attr.as_u16()
                            .map_err(attr_err("MPTCP_PM_ADDR_ATTR_FAMILY"))?,
                    );
                }
                MPTCP_PM_ADDR_ATTR_ID => {
                    nest.id = Some(attr.as_u8().map_err(attr_err("MPTCP_PM_ADDR_ATTR_ID"))?);
                }
                MPTCP_PM_ADDR_ATTR_ADDR4 => {
                    addr4 = Some(
                        attr.as_ipv4()
                            .map_err(attr_err("MPTCP_PM_ADDR_ATTR_ADDR4"))?,
                    );
                }
                MPTCP_PM_ADDR_ATTR_ADDR6 => {
                    addr6 = Some(
                        attr.as_ipv6()
                            .map_err(attr_err("MPTCP_PM_ADDR_ATTR_ADDR6"))?,
                    );
                }
                MPTCP_PM_ADDR_ATTR_PORT => {
                    let port = attr.as_u16().map_err(attr_err("MPTCP_PM_ADDR_ATTR_PORT"))?;
                    nest.port = (port != 0).then_some(port);
                }
                MPTCP_PM_ADDR_ATTR_FLAGS => {
                    nest.flags = Some(
                        attr.as_u32()
                            .map_err(attr_err("MPTCP_PM_ADDR_ATTR_FLAGS"))?,
                    );
                }
                MPTCP_PM_ADDR_ATTR_IF_IDX => {
                    nest.ifindex = Some(
                        attr.as_i32()
                            .map_err(attr_err("MPTCP_PM_ADDR_ATTR_IF_IDX"))?,
                    );
                }
                _ => nest.unknown.push(attr.to_raw()),
            }
        }
        // The family says which address counts; without it, take the one present.
        nest.addr = match nest.family {
            Some(AF_INET) => addr4.map(IpAddr::V4),
            Some(AF_INET6) => addr6.map(IpAddr::V6),
            _ => addr4.map(IpAddr::V4).or(addr6.map(IpAddr::V6)),
        };
        Ok(nest)
    }

    fn missing_addr(&self) -> PmError {
        let attr = match self.family {
            Some(AF_INET6) => "MPTCP_PM_ADDR_ATTR_ADDR6",
            _ => "MPTCP_PM_ADDR_ATTR_ADDR4",
        };
        PmError::Missing {
            context: "MPTCP_PM_ATTR_ADDR",
            attr,
        }
    }

    fn to_endpoint(&self) -> Result<Endpoint, PmError> {
        let addr = self.addr.ok_or_else(|| self.missing_addr())?;
        Ok(Endpoint {
            family: self.family.filter(|f| *f != family_of(addr)),
            id: self.id,
            addr,
            port: self.port,
            flags: EndpointFlags(self.flags.unwrap_or(0)),
            ifindex: self.ifindex,
            unknown: self.unknown.clone(),
        })
    }

    fn id(&self, context: &'static str) -> Result<u8, PmError> {
        self.id.ok_or(PmError::Missing {
            context,
            attr: "MPTCP_PM_ADDR_ATTR_ID",
        })
    }

    fn socket_addr(&self, context: &'static str) -> Result<SocketAddr, PmError> {
        let addr = self.addr.ok_or_else(|| self.missing_addr())?;
        let port = self.port.ok_or(PmError::Missing {
            context,
            attr: "MPTCP_PM_ADDR_ATTR_PORT",
        })?;
        Ok(SocketAddr::new(addr, port))
    }
}

/// `ip mptcp limits`: per-connection limits of the in-kernel path manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Limits {
    /// `MPTCP_PM_ATTR_RCV_ADD_ADDRS` (`add_addr_accepted`): ADD_ADDRs accepted.
    pub rcv_add_addrs: u32,
    /// `MPTCP_PM_ATTR_SUBFLOWS` (`subflows`): extra subflows.
    pub subflows: u32,
}

impl Limits {
    /// Decodes a `MPTCP_PM_CMD_GET_LIMITS` reply payload.
    pub fn decode_reply(payload: &[u8]) -> Result<Self, PmError> {
        let context = "a limits reply";
        let (_, attrs) =
            GenlMsgHdr::parse(payload).map_err(|source| PmError::Genl { context, source })?;
        let (mut rcv_add_addrs, mut subflows) = (None, None);
        for attr in Attrs::with_base(attrs, crate::nl::NLMSG_HDRLEN + genl::GENL_HDRLEN) {
            let attr = attr.map_err(attr_err(context))?;
            match attr.attr_type {
                MPTCP_PM_ATTR_RCV_ADD_ADDRS => {
                    rcv_add_addrs = Some(
                        attr.as_u32()
                            .map_err(attr_err("MPTCP_PM_ATTR_RCV_ADD_ADDRS"))?,
                    );
                }
                MPTCP_PM_ATTR_SUBFLOWS => {
                    subflows = Some(attr.as_u32().map_err(attr_err("MPTCP_PM_ATTR_SUBFLOWS"))?);
                }
                _ => {}
            }
        }
        Ok(Self {
            rcv_add_addrs: rcv_add_addrs.ok_or(PmError::Missing {
                context,
                attr: "MPTCP_PM_ATTR_RCV_ADD_ADDRS",
            })?,
            subflows: subflows.ok_or(PmError::Missing {
                context,
                attr: "MPTCP_PM_ATTR_SUBFLOWS",
            })?,
        })
    }

    /// Encodes a `MPTCP_PM_CMD_GET_LIMITS` reply payload as the kernel does.
    pub fn encode_reply(&self) -> Vec<u8> {
        let mut w = GenlMsgHdr::new(MPTCP_PM_CMD_GET_LIMITS, MPTCP_PM_VER).writer();
        w.put_u32(MPTCP_PM_ATTR_RCV_ADD_ADDRS, self.rcv_add_addrs)
            .put_u32(MPTCP_PM_ATTR_SUBFLOWS, self.subflows);
        w.into_bytes()
    }
}

impl fmt::Display for Limits {
    /// Like `ip mptcp limits show`: `add_addr_accepted 2 subflows 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "add_addr_accepted {} subflows {}",
            self.rcv_add_addrs, self.subflows
        )
    }
}

/// An address and an optional port (port 0 / absent: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrPort {
    /// The address.
    pub addr: IpAddr,
    /// The port, if any.
    pub port: Option<u16>,
}

/// Which endpoint `MPTCP_PM_CMD_SET_FLAGS` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrTarget {
    /// By id: `ip mptcp endpoint change id ID ...`.
    Id(u8),
    /// By address (and port): `ip mptcp endpoint change ADDR [port PORT] ...`.
    Addr(AddrPort),
}

/// A `mptcp_pm` request; [`PmRequest::encode`] gives the bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmRequest {
    /// `ip mptcp endpoint add ADDR [port PORT] [id ID] [FLAGS] [dev IFNAME]`.
    AddAddr(Endpoint),
    /// `ip mptcp endpoint delete id ID [ADDR]`; id 0 needs the address.
    DelAddr {
        /// Endpoint id.
        id: u8,
        /// The address, for id 0 (the initial subflow's address).
        addr: Option<IpAddr>,
    },
    /// `ip mptcp endpoint show id ID`; with a token, the userspace PM's view of a connection.
    GetAddr {
        /// Endpoint id.
        id: u8,
        /// Connection token (userspace PM).
        token: Option<u32>,
    },
    /// `ip mptcp endpoint show` (a dump); with a token, the userspace PM's addresses.
    DumpAddrs {
        /// Connection token (userspace PM).
        token: Option<u32>,
    },
    /// `ip mptcp endpoint flush`.
    FlushAddrs,
    /// `ip mptcp limits set [add_addr_accepted N] [subflows N]`.
    SetLimits {
        /// `add_addr_accepted`.
        rcv_add_addrs: Option<u32>,
        /// `subflows`.
        subflows: Option<u32>,
    },
    /// `ip mptcp limits show`.
    GetLimits,
    /// `ip mptcp endpoint change (id ID | ADDR [port PORT]) [backup|nobackup] [fullmesh|...]`;
    /// with a token and a remote address: the userspace PM's MP_PRIO on one subflow.
    SetFlags {
        /// The endpoint (or local address) to change.
        target: AddrTarget,
        /// The new flags.
        flags: EndpointFlags,
        /// Connection token (userspace PM).
        token: Option<u32>,
        /// Remote address of the subflow (userspace PM).
        remote: Option<AddrPort>,
    },
    /// Userspace PM: announce an address on a connection (ADD_ADDR; needs `signal` and an id).
    Announce {
        /// The announced address, id, flags, port, device.
        endpoint: Endpoint,
        /// Connection token.
        token: u32,
    },
    /// Userspace PM: withdraw an announced address (RM_ADDR); also closes its subflows.
    Remove {
        /// Connection token.
        token: u32,
        /// Local address id.
        loc_id: u8,
    },
    /// Userspace PM: open a subflow from `local` (address, id, optional port/device) to `remote`.
    SubflowCreate {
        /// Local address, id, flags, optional port and device.
        local: Endpoint,
        /// Remote address and port.
        remote: SocketAddr,
        /// Connection token.
        token: u32,
    },
    /// Userspace PM: close the subflow between `local` and `remote` (both ports needed).
    SubflowDestroy {
        /// Local address and port.
        local: SocketAddr,
        /// Remote address and port.
        remote: SocketAddr,
        /// Connection token.
        token: u32,
    },
}

fn put_addr_nest(
    w: &mut AttrWriter,
    attr_type: u16,
    id: Option<u8>,
    addr: Option<AddrPort>,
    flags: Option<EndpointFlags>,
) {
    w.nested(attr_type, |w| {
        if let Some(a) = addr {
            w.put_u16(MPTCP_PM_ADDR_ATTR_FAMILY, family_of(a.addr));
        }
        if let Some(id) = id {
            w.put_u8(MPTCP_PM_ADDR_ATTR_ID, id);
        }
        if let Some(a) = addr {
            put_ip(w, a.addr);
            if let Some(port) = a.port {
                w.put_u16(MPTCP_PM_ADDR_ATTR_PORT, port);
            }
        }
        if let Some(flags) = flags {
            w.put_u32(MPTCP_PM_ADDR_ATTR_FLAGS, flags.bits());
        }
    });
}

fn sock(addr: SocketAddr) -> AddrPort {
    AddrPort {
        addr: addr.ip(),
        port: Some(addr.port()),
    }
}

impl PmRequest {
    /// The command this request carries.
    pub fn command(&self) -> Command {
        match self {
            Self::AddAddr(_) => Command::AddAddr,
            Self::DelAddr { .. } => Command::DelAddr,
            Self::GetAddr { .. } | Self::DumpAddrs { .. } => Command::GetAddr,
            Self::FlushAddrs => Command::FlushAddrs,
            Self::SetLimits { .. } => Command::SetLimits,
            Self::GetLimits => Command::GetLimits,
            Self::SetFlags { .. } => Command::SetFlags,
            Self::Announce { .. } => Command::Announce,
            Self::Remove { .. } => Command::Remove,
            Self::SubflowCreate { .. } => Command::SubflowCreate,
            Self::SubflowDestroy { .. } => Command::SubflowDestroy,
        }
    }

    /// True for a dump (the replies end with `NLMSG_DONE`).
    pub fn is_dump(&self) -> bool {
        matches!(self, Self::DumpAddrs { .. })
    }

    /// The `nlmsg_flags` of the request: `NLM_F_REQUEST | NLM_F_ACK` (`| NLM_F_DUMP`).
    pub fn flags(&self) -> u16 {
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        if self.is_dump() {
            flags | NLM_F_DUMP
        } else {
            flags
        }
    }

    /// The genl header and attributes.
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut w = GenlMsgHdr::new(self.command().into(), MPTCP_PM_VER).writer();
        let w_ref = &mut w;
        match self {
            Self::AddAddr(endpoint) => endpoint.encode_nested(w_ref, MPTCP_PM_ATTR_ADDR),
            Self::DelAddr { id, addr } => {
                let addr = addr.map(|addr| AddrPort { addr, port: None });
                put_addr_nest(w_ref, MPTCP_PM_ATTR_ADDR, Some(*id), addr, None);
            }
            Self::GetAddr { id, token } => {
                put_addr_nest(w_ref, MPTCP_PM_ATTR_ADDR, Some(*id), None, None);
                if let Some(token) = token {
                    w_ref.put_u32(MPTCP_PM_ATTR_TOKEN, *token);
                }
            }
            Self::DumpAddrs { token } => {
                if let Some(token) = token {
                    w_ref.put_u32(MPTCP_PM_ATTR_TOKEN, *token);
                }
            }
            Self::FlushAddrs | Self::GetLimits => {}
            Self::SetLimits {
                rcv_add_addrs,
                subflows,
            } => {
                if let Some(n) = rcv_add_addrs {
                    w_ref.put_u32(MPTCP_PM_ATTR_RCV_ADD_ADDRS, *n);
                }
                if let Some(n) = subflows {
                    w_ref.put_u32(MPTCP_PM_ATTR_SUBFLOWS, *n);
                }
            }
            Self::SetFlags {
                target,
                flags,
                token,
                remote,
            } => {
                let (id, addr) = match target {
                    AddrTarget::Id(id) => (Some(*id), None),
                    AddrTarget::Addr(addr) => (None, Some(*addr)),
                };
                put_addr_nest(w_ref, MPTCP_PM_ATTR_ADDR, id, addr, Some(*flags));
                if let Some(token) = token {
                    w_ref.put_u32(MPTCP_PM_ATTR_TOKEN, *token);
                }
                if let Some(remote) = remote {
                    put_addr_nest(w_ref, MPTCP_PM_ATTR_ADDR_REMOTE, None, Some(*remote), None);
                }
            }
            Self::Announce { endpoint, token } => {
                endpoint.encode_nested(w_ref, MPTCP_PM_ATTR_ADDR);
                w_ref.put_u32(MPTCP_PM_ATTR_TOKEN, *token);
            }
            Self::Remove { token, loc_id } => {
                w_ref
                    .put_u32(MPTCP_PM_ATTR_TOKEN, *token)
                    .put_u8(MPTCP_PM_ATTR_LOC_ID, *loc_id);
            }
            Self::SubflowCreate {
                local,
                remote,
                token,
            } => {
                local.encode_nested(w_ref, MPTCP_PM_ATTR_ADDR);
                w_ref.put_u32(MPTCP_PM_ATTR_TOKEN, *token);
                put_addr_nest(
                    w_ref,
                    MPTCP_PM_ATTR_ADDR_REMOTE,
                    None,
                    Some(sock(*remote)),
                    None,
                );
            }
            Self::SubflowDestroy {
                local,
                remote,
                token,
            } => {
                put_addr_nest(w_ref, MPTCP_PM_ATTR_ADDR, None, Some(sock(*local)), None);
                w_ref.put_u32(MPTCP_PM_ATTR_TOKEN, *token);
                put_addr_nest(
                    w_ref,
                    MPTCP_PM_ATTR_ADDR_REMOTE,
                    None,
                    Some(sock(*remote)),
                    None,
                );
            }
        }
        w.into_bytes()
    }

    /// The complete message: `nlmsghdr` (type `family_id`, [`Self::flags`], `seq`), genl
    /// header (version 1) and attributes.
    pub fn encode(&self, family_id: u16, seq: u32) -> Vec<u8> {
        crate::nl::NlMsgHdr::new(family_id, self.flags(), seq)
            .encode_message(&self.encode_payload())
    }

    /// Decodes a request (e.g. in a fake kernel, or to read back what was sent).
    pub fn decode(msg: &DataMessage) -> Result<Self, PmError> {
        let context = "a mptcp_pm request";
        let (hdr, attrs) =
            GenlMsgHdr::parse(&msg.payload).map_err(|source| PmError::Genl { context, source })?;
        let mut addr = None;
        let mut remote = None;
        let (mut token, mut loc_id, mut rcv_add_addrs, mut subflows) = (None, None, None, None);
        for attr in Attrs::with_base(attrs, crate::nl::NLMSG_HDRLEN + genl::GENL_HDRLEN) {
            let attr = attr.map_err(attr_err(context))?;
            match attr.attr_type {
                MPTCP_PM_ATTR_ADDR => addr = Some(AddrNest::decode(attr.nested())?),
                MPTCP_PM_ATTR_ADDR_REMOTE => remote = Some(AddrNest::decode(attr.nested())?),
                MPTCP_PM_ATTR_TOKEN => {
                    token = Some(attr.as_u32().map_err(attr_err("MPTCP_PM_ATTR_TOKEN"))?);
                }
                MPTCP_PM_ATTR_LOC_ID => {
                    loc_id = Some(attr.as_u8().map_err(attr_err("MPTCP_PM_ATTR_LOC_ID"))?);
                }
                MPTCP_PM_ATTR_RCV_ADD_ADDRS => {
                    rcv_add_addrs = Some(
                        attr.as_u32()
                            .map_err(attr_err("MPTCP_PM_ATTR_RCV_ADD_ADDRS"))?,
                    );
                }
                MPTCP_PM_ATTR_SUBFLOWS => {
                    subflows = Some(attr.as_u32().map_err(attr_err("MPTCP_PM_ATTR_SUBFLOWS"))?);
                }
                _ => {}
            }
        }
        let command = Command::from(hdr.cmd);
        let missing = |attr| PmError::Missing { context, attr };
        let need_addr = || addr.as_ref().ok_or(missing("MPTCP_PM_ATTR_ADDR"));
        let need_remote = || remote.as_ref().ok_or(missing("MPTCP_PM_ATTR_ADDR_REMOTE"));
        let need_token = || token.ok_or(missing("MPTCP_PM_ATTR_TOKEN"));
        Ok(match command {
            Command::AddAddr => Self::AddAddr(need_addr()?.to_endpoint()?),
            Command::DelAddr => {
                let a = need_addr()?;
                Self::DelAddr {
                    id: a.id(context)?,
                    addr: a.addr,
                }
            }
            Command::GetAddr if msg.header.flags & NLM_F_DUMP == NLM_F_DUMP => {
                Self::DumpAddrs { token }
            }
            Command::GetAddr => Self::GetAddr {
                id: need_addr()?.id(context)?,
                token,
            },
            Command::FlushAddrs => Self::FlushAddrs,
            Command::SetLimits => Self::SetLimits {
                rcv_add_addrs,
                subflows,
            },
            Command::GetLimits => Self::GetLimits,
            Command::SetFlags => {
                let a = need_addr()?;
                let target = match a.addr {
                    Some(addr) => AddrTarget::Addr(AddrPort { addr, port: a.port }),
                    None => AddrTarget::Id(a.id(context)?),
                };
                let remote = match &remote {
                    Some(r) => Some(AddrPort {
                        addr: r.addr.ok_or_else(|| r.missing_addr())?,
                        port: r.port,
                    }),
                    None => None,
                };
                let flags = EndpointFlags(a.flags.unwrap_or(0));
                Self::SetFlags {
                    target,
                    flags,
                    token,
                    remote,
                }
            }
            Command::Announce => Self::Announce {
                endpoint: need_addr()?.to_endpoint()?,
                token: need_token()?,
            },
            Command::Remove => Self::Remove {
                token: need_token()?,
                loc_id: loc_id.ok_or(missing("MPTCP_PM_ATTR_LOC_ID"))?,
            },
            Command::SubflowCreate => Self::SubflowCreate {
                local: need_addr()?.to_endpoint()?,
                remote: need_remote()?.socket_addr("MPTCP_PM_ATTR_ADDR_REMOTE")?,
                token: need_token()?,
            },
            Command::SubflowDestroy => Self::SubflowDestroy {
                local: need_addr()?.socket_addr("MPTCP_PM_ATTR_ADDR")?,
                remote: need_remote()?.socket_addr("MPTCP_PM_ATTR_ADDR_REMOTE")?,
                token: need_token()?,
            },
            Command::Unknown(_) => {
                return Err(PmError::UnexpectedCommand {
                    context,
                    found: command,
                    expected: Command::AddAddr,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::nl::{NlMessage, parse_messages};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const LOCALHOST_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const LOCALHOST_3: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

    fn data(bytes: &[u8]) -> DataMessage {
        match NlMessage::decode(bytes) {
            Ok(NlMessage::Data(m)) => m,
            other => panic!("expected a data message, got {other:?}"),
        }
    }

    /// Encodes `request` with the capture's family id and seq, compares with the captured
    /// bytes, and decodes the captured bytes back to `request`.
    fn check_request(request: PmRequest, captured: &[u8]) {
        let seq = data(captured).header.seq;
        assert_eq!(
            request.encode(MPTCP_PM_FAMILY_ID, seq),
            captured,
            "{request:?}"
        );
        assert_eq!(PmRequest::decode(&data(captured)), Ok(request));
    }

    #[test]
    fn captured_requests_round_trip() {
        let signal = Endpoint::new(LOCALHOST_2)
            .with_id(1)
            .with_flags(EndpointFlags::SIGNAL);
        check_request(PmRequest::AddAddr(signal.clone()), ADD_ADDR_SIGNAL);
        check_request(
            PmRequest::AddAddr(Endpoint {
                id: None,
                ..signal.clone()
            }),
            ADD_ADDR_DUPLICATE,
        );
        check_request(
            PmRequest::AddAddr(
                Endpoint::new("127.0.0.9".parse().unwrap())
                    .with_flags(EndpointFlags::SIGNAL | EndpointFlags::FULLMESH),
            ),
            ADD_ADDR_SIGNAL_FULLMESH,
        );
        check_request(
            PmRequest::AddAddr(
                Endpoint::new(IpAddr::V6(Ipv6Addr::LOCALHOST))
                    .with_id(5)
                    .with_port(10100)
                    .with_flags(EndpointFlags::SIGNAL),
            ),
            ADD_ADDR_V6_PORT,
        );
        check_request(
            PmRequest::AddAddr(
                Endpoint::new(LOCALHOST_3)
                    .with_id(3)
                    .with_flags(EndpointFlags::SUBFLOW | EndpointFlags::BACKUP)
                    .with_ifindex(1),
            ),
            ADD_ADDR_SUBFLOW,
        );
        check_request(PmRequest::GetAddr { id: 1, token: None }, GET_ADDR);
        check_request(PmRequest::DumpAddrs { token: None }, DUMP_ADDRS);
        check_request(
            PmRequest::DumpAddrs {
                token: Some(0xdead_beef),
            },
            DUMP_ADDRS_BAD_TOKEN,
        );
        check_request(PmRequest::DelAddr { id: 5, addr: None }, DEL_ADDR_V6);
        check_request(PmRequest::DelAddr { id: 1, addr: None }, DEL_ADDR_SIGNAL);
        check_request(
            PmRequest::SetLimits {
                rcv_add_addrs: Some(2),
                subflows: Some(2),
            },
            SET_LIMITS,
        );
        check_request(PmRequest::GetLimits, GET_LIMITS);
        check_request(
            PmRequest::SetFlags {
                target: AddrTarget::Id(1),
                flags: EndpointFlags::BACKUP,
                token: None,
                remote: None,
            },
            SET_FLAGS_BACKUP,
        );
        check_request(PmRequest::FlushAddrs, FLUSH);
        check_request(
            PmRequest::AddAddr(
                Endpoint::new("127.0.0.8".parse().unwrap())
                    .with_id(1)
                    .with_flags(EndpointFlags::SIGNAL),
            ),
            ADD_ADDR_DUPLICATE_ID,
        );
        check_request(PmRequest::DelAddr { id: 42, addr: None }, DEL_ADDR_MISSING);
    }

    /// Each captured request with the kernel's answer to it: the ack or error names the
    /// request by its header.
    #[test]
    fn captured_answers_match_requests() {
        let pairs = [
            (SET_LIMITS, SET_LIMITS_REPLY, 0),
            (ADD_ADDR_SIGNAL, ADD_ADDR_SIGNAL_REPLY, 0),
            (ADD_ADDR_DUPLICATE, ADD_ADDR_DUPLICATE_REPLY, 17),
            (ADD_ADDR_DUPLICATE_ID, ADD_ADDR_DUPLICATE_ID_REPLY, 16),
            (ADD_ADDR_SIGNAL_FULLMESH, ADD_ADDR_SIGNAL_FULLMESH_REPLY, 22),
            (ADD_ADDR_V6_PORT, ADD_ADDR_V6_PORT_REPLY, 0),
            (ADD_ADDR_SUBFLOW, ADD_ADDR_SUBFLOW_REPLY, 0),
            (DEL_ADDR_V6, DEL_ADDR_V6_REPLY, 0),
            (DEL_ADDR_MISSING, DEL_ADDR_MISSING_REPLY, 22),
            (SET_FLAGS_BACKUP, SET_FLAGS_BACKUP_REPLY, 0),
            (DEL_ADDR_SIGNAL, DEL_ADDR_SIGNAL_REPLY, 0),
            (FLUSH, FLUSH_REPLY, 0),
        ];
        for (request, reply, errno) in pairs {
            let sent = data(request).header;
            let msgs = parse_messages(reply).unwrap();
            let (got_errno, answered) = match &msgs[..] {
                [NlMessage::Ack(ack)] => (0, ack.request),
                [NlMessage::Error(err)] => (err.errno, err.request),
                other => panic!("expected one ack or error, got {other:?}"),
            };
            assert_eq!((got_errno, answered), (errno, sent));
        }
    }

    #[test]
    fn captured_refusals_explain_themselves() {
        let texts: Vec<String> = [
            ADD_ADDR_DUPLICATE_REPLY,
            ADD_ADDR_DUPLICATE_ID_REPLY,
            ADD_ADDR_SIGNAL_FULLMESH_REPLY,
            DEL_ADDR_MISSING_REPLY,
        ]
        .iter()
        .map(|bytes| match &parse_messages(bytes).unwrap()[..] {
            [NlMessage::Error(err)] => err.to_string(),
            other => panic!("expected an error, got {other:?}"),
        })
        .collect();
        assert_eq!(
            texts,
            [
                "errno 17 for request seq 6: \"too many addresses or duplicate one: -17\"",
                "errno 16 for request seq 7: \"too many addresses or duplicate one: -16\"",
                "errno 22 for request seq 8: \"flags mustn't have both signal and fullmesh\" \
                 (attribute at byte 20)",
                "errno 22 for request seq 15: \"address not found\" (attribute at byte 20)",
            ]
        );
    }

    #[test]
    fn userspace_pm_requests_round_trip() {
        let local: SocketAddr = "10.0.1.2:4000".parse().unwrap();
        let remote: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let requests = [
            PmRequest::DelAddr {
                id: 0,
                addr: Some(LOCALHOST_2),
            },
            PmRequest::GetAddr {
                id: 3,
                token: Some(7),
            },
            PmRequest::SetLimits {
                rcv_add_addrs: None,
                subflows: Some(8),
            },
            PmRequest::SetFlags {
                target: AddrTarget::Addr(AddrPort {
                    addr: local.ip(),
                    port: Some(4000),
                }),
                flags: EndpointFlags::BACKUP,
                token: Some(0x1234_5678),
                remote: Some(AddrPort {
                    addr: remote.ip(),
                    port: None,
                }),
            },
            PmRequest::Announce {
                endpoint: Endpoint::new(local.ip())
                    .with_id(12)
                    .with_port(4000)
                    .with_flags(EndpointFlags::SIGNAL)
                    .with_ifindex(3),
                token: 0x1234_5678,
            },
            PmRequest::Remove {
                token: 0x1234_5678,
                loc_id: 12,
            },
            PmRequest::SubflowCreate {
                local: Endpoint::new(local.ip()).with_id(23),
                remote,
                token: 0x1234_5678,
            },
            PmRequest::SubflowDestroy {
                local,
                remote,
                token: 0x1234_5678,
            },
        ];
        for request in requests {
            let bytes = request.encode(MPTCP_PM_FAMILY_ID, 42);
            assert_eq!(PmRequest::decode(&data(&bytes)), Ok(request.clone()));
        }
    }

    #[test]
    fn remove_request_layout() {
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x24, 0x00, 0x00, 0x00, // nlmsg_len 36
            0x1c, 0x00, // nlmsg_type 28 (mptcp_pm)
            0x05, 0x00, // NLM_F_REQUEST|NLM_F_ACK
            0x2a, 0x00, 0x00, 0x00, // seq 42
            0x00, 0x00, 0x00, 0x00, // pid 0
            0x09, 0x01, 0x00, 0x00, // MPTCP_PM_CMD_REMOVE, version 1
            0x08, 0x00, 0x04, 0x00, // nla_len 8, MPTCP_PM_ATTR_TOKEN
                0x78, 0x56, 0x34, 0x12, // 0x12345678
            0x05, 0x00, 0x05, 0x00, // nla_len 5, MPTCP_PM_ATTR_LOC_ID
                0x0c, 0x00, 0x00, 0x00, // 12 + padding
        ];
        let request = PmRequest::Remove {
            token: 0x1234_5678,
            loc_id: 12,
        };
        assert_eq!(request.encode(MPTCP_PM_FAMILY_ID, 42), expected);
    }

    #[test]
    fn get_addr_reply() {
        let endpoint = Endpoint::decode_reply(&data(GET_ADDR_REPLY_0).payload).unwrap();
        let expected = Endpoint::new(LOCALHOST_2)
            .with_id(1)
            .with_flags(EndpointFlags::SIGNAL);
        assert_eq!(endpoint, expected);
        assert_eq!(endpoint.to_string(), "127.0.0.2 id 1 signal");
        assert_eq!(
            Endpoint::decode_reply(&endpoint.encode_reply()),
            Ok(endpoint)
        );
        assert!(matches!(
            parse_messages(GET_ADDR_REPLY_1).unwrap()[..],
            [NlMessage::Ack(_)]
        ));
    }

    #[test]
    fn dump_reply() {
        let buf = DUMP_ADDRS_REPLY_ALL.concat();
        let mut endpoints = Vec::new();
        for msg in parse_messages(&buf).unwrap() {
            match msg {
                NlMessage::Data(m) => endpoints.push(Endpoint::decode_reply(&m.payload).unwrap()),
                NlMessage::Done(done) => assert_eq!(done.errno, 0),
                other => panic!("unexpected {other:?}"),
            }
        }
        let expected = [
            Endpoint::new(LOCALHOST_2)
                .with_id(1)
                .with_flags(EndpointFlags::SIGNAL),
            Endpoint::new(LOCALHOST_3)
                .with_id(3)
                .with_flags(EndpointFlags::SUBFLOW | EndpointFlags::BACKUP)
                .with_ifindex(1),
            // Port 10100, sent and reported in host byte order (bytes 0x74 0x27).
            Endpoint::new(IpAddr::V6(Ipv6Addr::LOCALHOST))
                .with_id(5)
                .with_port(10100)
                .with_flags(EndpointFlags::SIGNAL),
        ];
        assert_eq!(endpoints, expected);
        let shown: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.2 id 1 signal",
                "127.0.0.3 id 3 subflow backup ifindex 1",
                "::1 port 10100 id 5 signal"
            ]
        );
        for endpoint in endpoints {
            assert_eq!(
                Endpoint::decode_reply(&endpoint.encode_reply()),
                Ok(endpoint)
            );
        }
    }

    #[test]
    fn limits_reply() {
        let payload = data(GET_LIMITS_REPLY_0).payload;
        let limits = Limits::decode_reply(&payload).unwrap();
        assert_eq!(
            limits,
            Limits {
                rcv_add_addrs: 2,
                subflows: 2
            }
        );
        assert_eq!(limits.to_string(), "add_addr_accepted 2 subflows 2");
        // The kernel's attribute order: the captured payload is re-encoded byte for byte.
        assert_eq!(limits.encode_reply(), payload);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let payload = data(GET_LIMITS_REPLY_0).payload;
        assert_eq!(
            Limits::decode_reply(&payload[..12])
                .unwrap_err()
                .to_string(),
            "decode a limits reply: MPTCP_PM_ATTR_SUBFLOWS is missing"
        );
        assert!(matches!(
            Limits::decode_reply(&payload[..10]),
            Err(PmError::Attr {
                context: "a limits reply",
                ..
            })
        ));
        assert!(matches!(
            Limits::decode_reply(&[]),
            Err(PmError::Genl { .. })
        ));

        let reply = data(GET_ADDR_REPLY_0).payload;
        // The ADDR nest claims 44 bytes, fewer remain.
        assert!(matches!(
            Endpoint::decode_reply(&reply[..30]),
            Err(PmError::Attr {
                context: "an endpoint reply",
                ..
            })
        ));
        // An address nest without the address.
        let mut w = GenlMsgHdr::new(MPTCP_PM_CMD_GET_ADDR, 1).writer();
        w.nested(MPTCP_PM_ATTR_ADDR, |w| {
            w.put_u16(MPTCP_PM_ADDR_ATTR_FAMILY, AF_INET6)
                .put_u8(MPTCP_PM_ADDR_ATTR_ID, 1);
        });
        assert_eq!(
            Endpoint::decode_reply(w.as_bytes())
                .unwrap_err()
                .to_string(),
            "decode MPTCP_PM_ATTR_ADDR: MPTCP_PM_ADDR_ATTR_ADDR6 is missing"
        );
        // An IPv4 address of 3 bytes.
        let mut w = GenlMsgHdr::new(MPTCP_PM_CMD_GET_ADDR, 1).writer();
        w.nested(MPTCP_PM_ATTR_ADDR, |w| {
            w.put(MPTCP_PM_ADDR_ATTR_ADDR4, &[127, 0, 0]);
        });
        assert_eq!(
            Endpoint::decode_reply(w.as_bytes())
                .unwrap_err()
                .to_string(),
            "decode MPTCP_PM_ADDR_ATTR_ADDR4: read attribute type 3 at offset 24 as IPv4 address: \
             payload has 3 bytes"
        );
    }

    #[test]
    fn unknown_address_attributes_are_kept() {
        let endpoint = Endpoint {
            unknown: vec![(42, vec![1, 2, 3, 4])],
            ..Endpoint::new(LOCALHOST_2).with_id(9)
        };
        let decoded = Endpoint::decode_reply(&endpoint.encode_reply()).unwrap();
        assert_eq!(decoded.unknown, [(42, vec![1, 2, 3, 4])]);
    }

    #[test]
    fn flags_words() {
        let flags: EndpointFlags = "signal backup".parse().unwrap();
        assert_eq!(flags, EndpointFlags::SIGNAL | EndpointFlags::BACKUP);
        assert_eq!(flags.to_string(), "signal backup");
        assert_eq!("subflow,fullmesh|laminar".parse(), Ok(EndpointFlags(0x2a)));
        assert_eq!("implicit".parse(), Ok(EndpointFlags::IMPLICIT));
        assert_eq!("".parse(), Ok(EndpointFlags::EMPTY));
        assert_eq!(EndpointFlags::EMPTY.to_string(), "");

        let with_unknown = EndpointFlags(0x81);
        assert_eq!(with_unknown.unknown_bits(), 0x80);
        assert_eq!(with_unknown.to_string(), "signal 0x80");
        assert_eq!(with_unknown.to_string().parse(), Ok(with_unknown));
        assert_eq!("signal 128".parse(), Ok(with_unknown));
        assert_eq!(
            format!("{with_unknown:?}"),
            "EndpointFlags(0x81: signal|0x80)"
        );
        assert!(with_unknown.contains(EndpointFlags::SIGNAL));
        assert_eq!(
            with_unknown.without(EndpointFlags::SIGNAL),
            EndpointFlags(0x80)
        );

        assert_eq!(
            "signal nobackup"
                .parse::<EndpointFlags>()
                .unwrap_err()
                .to_string(),
            "parse endpoint flags \"signal nobackup\": unknown flag \"nobackup\" (expected \
             signal, subflow, backup, fullmesh, implicit, laminar or a number)"
        );
    }

    #[test]
    fn command_numbers() {
        for n in 0..=12u8 {
            assert_eq!(u8::from(Command::from(n)), n);
        }
        assert_eq!(Command::from(10), Command::SubflowCreate);
        assert_eq!(Command::from(12), Command::Unknown(12));
        assert_eq!(Command::SetFlags.to_string(), "MPTCP_PM_CMD_SET_FLAGS");
        assert_eq!(Command::Unknown(12).to_string(), "12");
    }

    #[test]
    fn requests_missing_attributes_are_errors() {
        let msg = |cmd: u8, flags| {
            let w = GenlMsgHdr::new(cmd, 1).writer();
            data(&crate::genl::encode_message(
                MPTCP_PM_FAMILY_ID,
                flags,
                1,
                &w,
            ))
        };
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        assert_eq!(
            PmRequest::decode(&msg(MPTCP_PM_CMD_REMOVE, flags))
                .unwrap_err()
                .to_string(),
            "decode a mptcp_pm request: MPTCP_PM_ATTR_TOKEN is missing"
        );
        assert_eq!(
            PmRequest::decode(&msg(MPTCP_PM_CMD_ADD_ADDR, flags))
                .unwrap_err()
                .to_string(),
            "decode a mptcp_pm request: MPTCP_PM_ATTR_ADDR is missing"
        );
        assert_eq!(
            PmRequest::decode(&msg(MPTCP_PM_CMD_GET_ADDR, flags | NLM_F_DUMP)),
            Ok(PmRequest::DumpAddrs { token: None })
        );
        assert!(matches!(
            PmRequest::decode(&msg(99, flags)),
            Err(PmError::UnexpectedCommand {
                found: Command::Unknown(99),
                ..
            })
        ));
    }
}
