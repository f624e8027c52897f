//! `mptcp_pm_events` multicast messages (`enum mptcp_event_type`, `enum mptcp_event_attr` in
//! `include/uapi/linux/mptcp_pm.h`): what the kernel reports about connections, subflows,
//! addresses and PM listeners.
//!
//! An event is a `mptcp_pm` message whose genl command is the event type. Every attribute is
//! optional: the kernel sends a different subset per type (and per version), and attributes
//! this crate does not know are kept raw. Ports (`MPTCP_ATTR_SPORT` / `_DPORT`) are
//! big-endian, unlike the PM's `MPTCP_PM_ADDR_ATTR_PORT`.
//!
//! [`Event::attr`] reads an attribute by name as an [`AttrValue`], for matching events
//! against expectations written in case files.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::genl::{GENL_HDRLEN, GenlError, GenlMsgHdr};
use crate::nl::{AttrWriter, Attrs, NLMSG_HDRLEN, NlError, NlMessage, NlMsgHdr};
use crate::pm::MPTCP_PM_VER;

/// Event: a connection was created.
pub const MPTCP_EVENT_CREATED: u8 = 1;
/// Event: a connection is established (can start new subflows).
pub const MPTCP_EVENT_ESTABLISHED: u8 = 2;
/// Event: a connection was closed.
pub const MPTCP_EVENT_CLOSED: u8 = 3;
/// Event: the peer announced an address (ADD_ADDR).
pub const MPTCP_EVENT_ANNOUNCED: u8 = 6;
/// Event: the peer removed an address (RM_ADDR).
pub const MPTCP_EVENT_REMOVED: u8 = 7;
/// Event: a subflow was established.
pub const MPTCP_EVENT_SUB_ESTABLISHED: u8 = 10;
/// Event: a subflow was closed.
pub const MPTCP_EVENT_SUB_CLOSED: u8 = 11;
/// Event: a subflow's priority (backup) changed.
pub const MPTCP_EVENT_SUB_PRIORITY: u8 = 13;
/// Event: a PM listener was created (`listen()`, or a signal endpoint with a port).
pub const MPTCP_EVENT_LISTENER_CREATED: u8 = 15;
/// Event: a PM listener was closed.
pub const MPTCP_EVENT_LISTENER_CLOSED: u8 = 16;

/// Event attribute: connection token (u32).
pub const MPTCP_ATTR_TOKEN: u16 = 1;
/// Event attribute: address family (u16).
pub const MPTCP_ATTR_FAMILY: u16 = 2;
/// Event attribute: local address id (u8).
pub const MPTCP_ATTR_LOC_ID: u16 = 3;
/// Event attribute: remote address id (u8).
pub const MPTCP_ATTR_REM_ID: u16 = 4;
/// Event attribute: source IPv4 address (be32).
pub const MPTCP_ATTR_SADDR4: u16 = 5;
/// Event attribute: source IPv6 address.
pub const MPTCP_ATTR_SADDR6: u16 = 6;
/// Event attribute: destination IPv4 address (be32).
pub const MPTCP_ATTR_DADDR4: u16 = 7;
/// Event attribute: destination IPv6 address.
pub const MPTCP_ATTR_DADDR6: u16 = 8;
/// Event attribute: source port (be16).
pub const MPTCP_ATTR_SPORT: u16 = 9;
/// Event attribute: destination port (be16).
pub const MPTCP_ATTR_DPORT: u16 = 10;
/// Event attribute: backup flag of a subflow (u8).
pub const MPTCP_ATTR_BACKUP: u16 = 11;
/// Event attribute: `sk_err` of a closed subflow (u8).
pub const MPTCP_ATTR_ERROR: u16 = 12;
/// Event attribute: `MPTCP_PM_EV_FLAG_*` (u16), sent only when non-zero.
pub const MPTCP_ATTR_FLAGS: u16 = 13;
/// Event attribute: timeout (u32).
pub const MPTCP_ATTR_TIMEOUT: u16 = 14;
/// Event attribute: interface index (s32), only for bound subflows.
pub const MPTCP_ATTR_IF_IDX: u16 = 15;
/// Event attribute: MP_TCPRST reason (u32).
pub const MPTCP_ATTR_RESET_REASON: u16 = 16;
/// Event attribute: MP_TCPRST flags (u32).
pub const MPTCP_ATTR_RESET_FLAGS: u16 = 17;
/// Event attribute: the connection is on the server side (u8), sent only then (deprecated
/// for `MPTCP_PM_EV_FLAG_SERVER_SIDE`).
pub const MPTCP_ATTR_SERVER_SIDE: u16 = 18;

/// `MPTCP_ATTR_FLAGS` bit: the peer refuses joins to its address id 0.
pub const MPTCP_PM_EV_FLAG_DENY_JOIN_ID0: u16 = 1 << 0;
/// `MPTCP_ATTR_FLAGS` bit: the connection is on the server side (6.18).
pub const MPTCP_PM_EV_FLAG_SERVER_SIDE: u16 = 1 << 1;

/// An event that cannot be decoded, or an event name not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The netlink framing is malformed.
    #[error("decode an mptcp_pm event: {0}")]
    Nl(NlError),
    /// The netlink message is a control message, not an event.
    #[error("decode an mptcp_pm event: got {found}, not a data message")]
    NotData {
        /// What was found (`"NLMSG_ERROR"`, `"NLMSG_DONE"`).
        found: &'static str,
    },
    /// The generic netlink header is malformed.
    #[error("decode an mptcp_pm event: {0}")]
    Genl(GenlError),
    /// An attribute is malformed.
    #[error("decode {context} of an mptcp_pm event: {source}")]
    Attr {
        /// The attribute (kernel name).
        context: &'static str,
        /// The framing error.
        source: NlError,
    },
    /// An event type name not known.
    #[error(
        "parse event type {name:?}: expected created, established, closed, announced, removed, \
         sub_established, sub_closed, sub_priority, listener_created, listener_closed or a number"
    )]
    UnknownKind {
        /// The name given.
        name: String,
    },
}

fn attr_err(context: &'static str) -> impl Fn(NlError) -> EventError {
    move |source| EventError::Attr { context, source }
}

/// `enum mptcp_event_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `MPTCP_EVENT_CREATED`.
    Created,
    /// `MPTCP_EVENT_ESTABLISHED`.
    Established,
    /// `MPTCP_EVENT_CLOSED`.
    Closed,
    /// `MPTCP_EVENT_ANNOUNCED`.
    Announced,
    /// `MPTCP_EVENT_REMOVED`.
    Removed,
    /// `MPTCP_EVENT_SUB_ESTABLISHED`.
    SubEstablished,
    /// `MPTCP_EVENT_SUB_CLOSED`.
    SubClosed,
    /// `MPTCP_EVENT_SUB_PRIORITY`.
    SubPriority,
    /// `MPTCP_EVENT_LISTENER_CREATED`.
    ListenerCreated,
    /// `MPTCP_EVENT_LISTENER_CLOSED`.
    ListenerClosed,
    /// An event type this crate does not know.
    Unknown(u8),
}

const KINDS: [(EventKind, u8, &str); 10] = [
    (EventKind::Created, MPTCP_EVENT_CREATED, "created"),
    (
        EventKind::Established,
        MPTCP_EVENT_ESTABLISHED,
        "established",
    ),
    (EventKind::Closed, MPTCP_EVENT_CLOSED, "closed"),
    (EventKind::Announced, MPTCP_EVENT_ANNOUNCED, "announced"),
    (EventKind::Removed, MPTCP_EVENT_REMOVED, "removed"),
    (
        EventKind::SubEstablished,
        MPTCP_EVENT_SUB_ESTABLISHED,
        "sub_established",
    ),
    (EventKind::SubClosed, MPTCP_EVENT_SUB_CLOSED, "sub_closed"),
    (
        EventKind::SubPriority,
        MPTCP_EVENT_SUB_PRIORITY,
        "sub_priority",
    ),
    (
        EventKind::ListenerCreated,
        MPTCP_EVENT_LISTENER_CREATED,
        "listener_created",
    ),
    (
        EventKind::ListenerClosed,
        MPTCP_EVENT_LISTENER_CLOSED,
        "listener_closed",
    ),
];

impl EventKind {
    /// Every known event type, in uapi order.
    pub const ALL: [Self; 10] = [
        Self::Created,
        Self::Established,
        Self::Closed,
        Self::Announced,
        Self::Removed,
        Self::SubEstablished,
        Self::SubClosed,
        Self::SubPriority,
        Self::ListenerCreated,
        Self::ListenerClosed,
    ];

    /// The lower-case name (`sub_established`), `None` for an unknown type.
    pub fn name(self) -> Option<&'static str> {
        KINDS
            .iter()
            .find(|(k, _, _)| *k == self)
            .map(|(_, _, name)| *name)
    }
}

impl From<u8> for EventKind {
    fn from(value: u8) -> Self {
        KINDS
            .iter()
            .find(|(_, n, _)| *n == value)
            .map_or(Self::Unknown(value), |(k, _, _)| *k)
    }
}

impl From<EventKind> for u8 {
    fn from(value: EventKind) -> Self {
        match value {
            EventKind::Unknown(n) => n,
            known => KINDS
                .iter()
                .find(|(k, _, _)| *k == known)
                .map_or(0, |(_, n, _)| *n),
        }
    }
}

impl fmt::Display for EventKind {
    /// The name (`sub_established`), or the number of an unknown type.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", u8::from(*self)),
        }
    }
}

impl FromStr for EventKind {
    type Err = EventError;

    /// A name as [`Display`](fmt::Display) writes it, or a number.
    fn from_str(s: &str) -> Result<Self, EventError> {
        KINDS
            .iter()
            .find(|(_, _, name)| *name == s)
            .map(|(k, _, _)| *k)
            .or_else(|| s.parse::<u8>().ok().map(Self::from))
            .ok_or_else(|| EventError::UnknownKind { name: s.to_owned() })
    }
}

/// An attribute value, as [`Event::attr`] gives it for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrValue {
    /// Unsigned integers: token, family, ids, ports, error, flags, timeout, reset codes.
    Uint(u64),
    /// Signed integers: `if_idx`.
    Int(i64),
    /// Booleans: `backup`, `server_side`, `deny_join_id0`.
    Bool(bool),
    /// Addresses: `saddr`, `daddr`.
    Addr(IpAddr),
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uint(v) => write!(f, "{v}"),
            Self::Int(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Addr(v) => write!(f, "{v}"),
        }
    }
}

/// One `mptcp_pm_events` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type (genl command).
    pub kind: EventKind,
    /// `MPTCP_ATTR_TOKEN`.
    pub token: Option<u32>,
    /// `MPTCP_ATTR_FAMILY`.
    pub family: Option<u16>,
    /// `MPTCP_ATTR_LOC_ID`.
    pub loc_id: Option<u8>,
    /// `MPTCP_ATTR_REM_ID`.
    pub rem_id: Option<u8>,
    /// `MPTCP_ATTR_SADDR4` or `MPTCP_ATTR_SADDR6`.
    pub saddr: Option<IpAddr>,
    /// `MPTCP_ATTR_DADDR4` or `MPTCP_ATTR_DADDR6`.
    pub daddr: Option<IpAddr>,
    /// `MPTCP_ATTR_SPORT` (big-endian on the wire).
    pub sport: Option<u16>,
    /// `MPTCP_ATTR_DPORT` (big-endian on the wire).
    pub dport: Option<u16>,
    /// `MPTCP_ATTR_BACKUP`.
    pub backup: Option<u8>,
    /// `MPTCP_ATTR_ERROR`.
    pub error: Option<u8>,
    /// `MPTCP_ATTR_FLAGS` (`MPTCP_PM_EV_FLAG_*`).
    pub flags: Option<u16>,
    /// `MPTCP_ATTR_TIMEOUT`.
    pub timeout: Option<u32>,
    /// `MPTCP_ATTR_IF_IDX`.
    pub if_idx: Option<i32>,
    /// `MPTCP_ATTR_RESET_REASON`.
    pub reset_reason: Option<u32>,
    /// `MPTCP_ATTR_RESET_FLAGS`.
    pub reset_flags: Option<u32>,
    /// `MPTCP_ATTR_SERVER_SIDE`.
    pub server_side: Option<u8>,
    /// Attributes this crate does not know, kept raw (type with flags, payload).
    pub unknown: Vec<(u16, Vec<u8>)>,
}

impl Event {
    /// Names accepted by [`Event::attr`].
    pub const ATTR_NAMES: [&'static str; 17] = [
        "token",
        "family",
        "loc_id",
        "rem_id",
        "saddr",
        "daddr",
        "sport",
        "dport",
        "backup",
        "error",
        "flags",
        "timeout",
        "if_idx",
        "reset_reason",
        "reset_flags",
        "server_side",
        "deny_join_id0",
    ];

    /// An event of `kind` with no attribute.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            token: None,
            family: None,
            loc_id: None,
            rem_id: None,
            saddr: None,
            daddr: None,
            sport: None,
            dport: None,
            backup: None,
            error: None,
            flags: None,
            timeout: None,
            if_idx: None,
            reset_reason: None,
            reset_flags: None,
            server_side: None,
            unknown: Vec::new(),
        }
    }

    /// Decodes one complete netlink message (header included), as read from the socket.
    pub fn decode_message(msg: &[u8]) -> Result<Self, EventError> {
        match NlMessage::decode(msg).map_err(EventError::Nl)? {
            NlMessage::Data(data) => Self::decode(&data.payload),
            NlMessage::Error(_) | NlMessage::Ack(_) => Err(EventError::NotData {
                found: "NLMSG_ERROR",
            }),
            NlMessage::Done(_) => Err(EventError::NotData {
                found: "NLMSG_DONE",
            }),
        }
    }

    /// Decodes a message payload (genl header then attributes).
    pub fn decode(payload: &[u8]) -> Result<Self, EventError> {
        let (hdr, attrs) = GenlMsgHdr::parse(payload).map_err(EventError::Genl)?;
        let mut event = Self::new(hdr.cmd.into());
        for attr in Attrs::with_base(attrs, NLMSG_HDRLEN + GENL_HDRLEN) {
            let attr = attr.map_err(attr_err("the attributes"))?;
            match attr.attr_type {
                MPTCP_ATTR_TOKEN => {
                    event.token = Some(attr.as_u32().map_err(attr_err("MPTCP_ATTR_TOKEN"))?);
                }
                MPTCP_ATTR_FAMILY => {
                    event.family = Some(attr.as_u16().map_err(attr_err("MPTCP_ATTR_FAMILY"))?);
                }
                MPTCP_ATTR_LOC_ID => {
                    event.loc_id = Some(attr.as_u8().map_err(attr_err("MPTCP_ATTR_LOC_ID"))?);
                }
                MPTCP_ATTR_REM_ID => {
                    event.rem_id = Some(attr.as_u8().map_err(attr_err("MPTCP_ATTR_REM_ID"))?);
                }
                MPTCP_ATTR_SADDR4 => {
                    let a = attr.as_ipv4().map_err(attr_err("MPTCP_ATTR_SADDR4"))?;
                    event.saddr = Some(a.into());
                }
                MPTCP_ATTR_SADDR6 => {
                    let a = attr.as_ipv6().map_err(attr_err("MPTCP_ATTR_SADDR6"))?;
                    event.saddr = Some(a.into());
                }
                MPTCP_ATTR_DADDR4 => {
                    let a = attr.as_ipv4().map_err(attr_err("MPTCP_ATTR_DADDR4"))?;
                    event.daddr = Some(a.into());
                }
                MPTCP_ATTR_DADDR6 => {
                    let a = attr.as_ipv6().map_err(attr_err("MPTCP_ATTR_DADDR6"))?;
                    event.daddr = Some(a.into());
                }
                MPTCP_ATTR_SPORT => {
                    event.sport = Some(attr.as_be16().map_err(attr_err("MPTCP_ATTR_SPORT"))?);
                }
                MPTCP_ATTR_DPORT => {
                    event.dport = Some(attr.as_be16().map_err(attr_err("MPTCP_ATTR_DPORT"))?);
                }
                MPTCP_ATTR_BACKUP => {
                    event.backup = Some(attr.as_u8().map_err(attr_err("MPTCP_ATTR_BACKUP"))?);
                }
                MPTCP_ATTR_ERROR => {
                    event.error = Some(attr.as_u8().map_err(attr_err("MPTCP_ATTR_ERROR"))?);
                }
                MPTCP_ATTR_FLAGS => {
                    event.flags = Some(attr.as_u16().map_err(attr_err("MPTCP_ATTR_FLAGS"))?);
                }
                MPTCP_ATTR_TIMEOUT => {
                    event.timeout = Some(attr.as_u32().map_err(attr_err("MPTCP_ATTR_TIMEOUT"))?);
                }
                MPTCP_ATTR_IF_IDX => {
                    event.if_idx = Some(attr.as_i32().map_err(attr_err("MPTCP_ATTR_IF_IDX"))?);
                }
                MPTCP_ATTR_RESET_REASON => {
                    event.reset_reason =
                        Some(attr.as_u32().map_err(attr_err("MPTCP_ATTR_RESET_REASON"))?);
                }
                MPTCP_ATTR_RESET_FLAGS => {
                    event.reset_flags =
                        Some(attr.as_u32().map_err(attr_err("MPTCP_ATTR_RESET_FLAGS"))?);
                }
                MPTCP_ATTR_SERVER_SIDE => {
                    event.server_side =
                        Some(attr.as_u8().map_err(attr_err("MPTCP_ATTR_SERVER_SIDE"))?);
                }
                _ => event.unknown.push(attr.to_raw()),
            }
        }
        Ok(event)
    }

    /// Encodes the payload: genl header (version 1) then the attributes present, in uapi
    /// order (the kernel's order differs per event type; the values are the same).
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut w = GenlMsgHdr::new(self.kind.into(), MPTCP_PM_VER).writer();
        let put_addr = |w: &mut AttrWriter, addr: Option<IpAddr>, v4: u16, v6: u16| match addr {
            Some(IpAddr::V4(a)) => {
                w.put(v4, &a.octets());
            }
            Some(IpAddr::V6(a)) => {
                w.put(v6, &a.octets());
            }
            None => {}
        };
        if let Some(v) = self.token {
            w.put_u32(MPTCP_ATTR_TOKEN, v);
        }
        if let Some(v) = self.family {
            w.put_u16(MPTCP_ATTR_FAMILY, v);
        }
        if let Some(v) = self.loc_id {
            w.put_u8(MPTCP_ATTR_LOC_ID, v);
        }
        if let Some(v) = self.rem_id {
            w.put_u8(MPTCP_ATTR_REM_ID, v);
        }
        put_addr(&mut w, self.saddr, MPTCP_ATTR_SADDR4, MPTCP_ATTR_SADDR6);
        put_addr(&mut w, self.daddr, MPTCP_ATTR_DADDR4, MPTCP_ATTR_DADDR6);
        if let Some(v) = self.sport {
            w.put_be16(MPTCP_ATTR_SPORT, v);
        }
        if let Some(v) = self.dport {
            w.put_be16(MPTCP_ATTR_DPORT, v);
        }
        if let Some(v) = self.backup {
            w.put_u8(MPTCP_ATTR_BACKUP, v);
        }
        if let Some(v) = self.error {
            w.put_u8(MPTCP_ATTR_ERROR, v);
        }
        if let Some(v) = self.flags {
            w.put_u16(MPTCP_ATTR_FLAGS, v);
        }
        if let Some(v) = self.timeout {
            w.put_u32(MPTCP_ATTR_TIMEOUT, v);
        }
        if let Some(v) = self.if_idx {
            w.put_i32(MPTCP_ATTR_IF_IDX, v);
        }
        if let Some(v) = self.reset_reason {
            w.put_u32(MPTCP_ATTR_RESET_REASON, v);
        }
        if let Some(v) = self.reset_flags {
            w.put_u32(MPTCP_ATTR_RESET_FLAGS, v);
        }
        if let Some(v) = self.server_side {
            w.put_u8(MPTCP_ATTR_SERVER_SIDE, v);
        }
        for (raw_type, payload) in &self.unknown {
            w.put(*raw_type, payload);
        }
        w.into_bytes()
    }

    /// Encodes a complete message as the kernel multicasts it (flags 0, pid 0).
    pub fn encode(&self, family_id: u16, seq: u32) -> Vec<u8> {
        NlMsgHdr::new(family_id, 0, seq).encode_message(&self.encode_payload())
    }

    /// `MPTCP_PM_EV_FLAG_DENY_JOIN_ID0`, if `MPTCP_ATTR_FLAGS` was sent.
    ///
    /// The kernel sends `MPTCP_ATTR_FLAGS` only when a flag is set, so on kernels that know
    /// the flag (6.17, 6.12.y backports), absence on CREATED/ESTABLISHED means false.
    pub fn deny_join_id0(&self) -> Option<bool> {
        self.flags.map(|f| f & MPTCP_PM_EV_FLAG_DENY_JOIN_ID0 != 0)
    }

    /// Server side, from `MPTCP_ATTR_SERVER_SIDE` or else `MPTCP_PM_EV_FLAG_SERVER_SIDE`.
    ///
    /// The kernel sends both only on the server side: on kernels that know them (>= 6.7),
    /// absence on CREATED/ESTABLISHED means client side. `None` when neither is present.
    pub fn is_server_side(&self) -> Option<bool> {
        match (self.server_side, self.flags) {
            (Some(v), _) => Some(v != 0),
            (None, Some(f)) => Some(f & MPTCP_PM_EV_FLAG_SERVER_SIDE != 0),
            (None, None) => None,
        }
    }

    /// An attribute by name (see [`Event::ATTR_NAMES`]); `None` if absent or the name is
    /// unknown. `server_side` and `deny_join_id0` are derived as documented on
    /// [`Event::is_server_side`] and [`Event::deny_join_id0`].
    pub fn attr(&self, name: &str) -> Option<AttrValue> {
        let uint = |v: Option<u64>| v.map(AttrValue::Uint);
        match name {
            "token" => uint(self.token.map(u64::from)),
            "family" => uint(self.family.map(u64::from)),
            "loc_id" => uint(self.loc_id.map(u64::from)),
            "rem_id" => uint(self.rem_id.map(u64::from)),
            "saddr" => self.saddr.map(AttrValue::Addr),
            "daddr" => self.daddr.map(AttrValue::Addr),
            "sport" => uint(self.sport.map(u64::from)),
            "dport" => uint(self.dport.map(u64::from)),
            "backup" => self.backup.map(|v| AttrValue::Bool(v != 0)),
            "error" => uint(self.error.map(u64::from)),
            "flags" => uint(self.flags.map(u64::from)),
            "timeout" => uint(self.timeout.map(u64::from)),
            "if_idx" => self.if_idx.map(|v| AttrValue::Int(v.into())),
            "reset_reason" => uint(self.reset_reason.map(u64::from)),
            "reset_flags" => uint(self.reset_flags.map(u64::from)),
            "server_side" => self.is_server_side().map(AttrValue::Bool),
            "deny_join_id0" => self.deny_join_id0().map(AttrValue::Bool),
            _ => None,
        }
    }
}

impl fmt::Display for Event {
    /// Like `ip mptcp monitor`: `[sub_established] token=d3e3065d family=2 saddr=127.0.0.1 ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.kind)?;
        for name in Self::ATTR_NAMES {
            if name == "deny_join_id0" || name == "server_side" {
                continue;
            }
            match (name, self.attr(name)) {
                ("token", Some(AttrValue::Uint(v))) => write!(f, " token={v:08x}")?,
                (_, Some(value)) => write!(f, " {name}={value}")?,
                (_, None) => {}
            }
        }
        if let Some(v) = self.server_side {
            write!(f, " server_side={v}")?;
        }
        for (raw_type, payload) in &self.unknown {
            write!(f, " attr{raw_type}=")?;
            for b in payload {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const CLIENT_TOKEN: u32 = 0xd3e3_065d;
    const SERVER_TOKEN: u32 = 0x9663_1f56;
    const LO1: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const LO2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const LO3: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    /// Client port bound by the capture script; the server listened on 10000.
    const CLIENT_PORT: u16 = 20000;
    /// Ephemeral source port of the join to 127.0.0.2.
    const JOIN_PORT: u16 = 59739;

    /// Decodes captured bytes, checks the value, then checks encode-then-decode.
    fn check(captured: &[u8], expected: Event) {
        let event = Event::decode_message(captured).unwrap();
        assert_eq!(event, expected);
        let encoded = event.encode(MPTCP_PM_FAMILY_ID, 0);
        assert_eq!(Event::decode_message(&encoded), Ok(expected));
        // Same attributes, same sizes: only the order may differ from the kernel's.
        assert_eq!(encoded.len(), captured.len());
    }

    /// CREATED/ESTABLISHED on the client: no SERVER_SIDE, no FLAGS.
    fn client_connection(kind: EventKind) -> Event {
        Event {
            token: Some(CLIENT_TOKEN),
            family: Some(2),
            saddr: Some(LO1),
            daddr: Some(LO1),
            sport: Some(CLIENT_PORT),
            dport: Some(10000),
            loc_id: Some(0),
            rem_id: Some(0),
            ..Event::new(kind)
        }
    }

    fn server_connection(kind: EventKind) -> Event {
        Event {
            token: Some(SERVER_TOKEN),
            server_side: Some(1),
            flags: Some(MPTCP_PM_EV_FLAG_SERVER_SIDE),
            sport: Some(10000),
            dport: Some(CLIENT_PORT),
            ..client_connection(kind)
        }
    }

    /// The client's join from 127.0.0.1 to the announced 127.0.0.2.
    fn client_join(kind: EventKind, backup: u8) -> Event {
        Event {
            token: Some(CLIENT_TOKEN),
            family: Some(2),
            saddr: Some(LO1),
            daddr: Some(LO2),
            sport: Some(JOIN_PORT),
            dport: Some(10000),
            loc_id: Some(0),
            rem_id: Some(1),
            backup: Some(backup),
            ..Event::new(kind)
        }
    }

    #[test]
    fn created() {
        check(EVENT_03_CREATED, client_connection(EventKind::Created));
        check(EVENT_04_CREATED, server_connection(EventKind::Created));
    }

    #[test]
    fn established() {
        check(
            EVENT_05_ESTABLISHED,
            server_connection(EventKind::Established),
        );
        check(
            EVENT_06_ESTABLISHED,
            client_connection(EventKind::Established),
        );
    }

    #[test]
    fn closed() {
        let closed = |token| Event {
            token: Some(token),
            ..Event::new(EventKind::Closed)
        };
        check(EVENT_18_CLOSED, closed(CLIENT_TOKEN));
        check(EVENT_19_CLOSED, closed(SERVER_TOKEN));
    }

    #[test]
    fn announced() {
        // The server announced its signal endpoint 127.0.0.2 (id 1) to the client; the
        // port is the connection's. No MPTCP_ATTR_FAMILY on 6.18, despite the uapi comment.
        let announced = Event {
            token: Some(CLIENT_TOKEN),
            rem_id: Some(1),
            dport: Some(10000),
            daddr: Some(LO2),
            ..Event::new(EventKind::Announced)
        };
        check(EVENT_07_ANNOUNCED, announced.clone());
        // Same network namespace, same endpoints: the client announced it too.
        check(
            EVENT_10_ANNOUNCED,
            Event {
                token: Some(SERVER_TOKEN),
                dport: Some(CLIENT_PORT),
                ..announced
            },
        );
    }

    #[test]
    fn removed() {
        let removed = |token| Event {
            token: Some(token),
            rem_id: Some(1),
            ..Event::new(EventKind::Removed)
        };
        check(EVENT_14_REMOVED, removed(SERVER_TOKEN));
        check(EVENT_15_REMOVED, removed(CLIENT_TOKEN));
    }

    #[test]
    fn sub_established() {
        check(
            EVENT_08_SUB_ESTABLISHED,
            client_join(EventKind::SubEstablished, 0),
        );
        check(
            EVENT_09_SUB_ESTABLISHED,
            Event {
                token: Some(SERVER_TOKEN),
                saddr: Some(LO2),
                daddr: Some(LO1),
                sport: Some(10000),
                dport: Some(JOIN_PORT),
                loc_id: Some(1),
                rem_id: Some(0),
                ..client_join(EventKind::SubEstablished, 0)
            },
        );
        // The subflow endpoint 127.0.0.3 (id 3, backup, dev lo): IF_IDX because it is bound.
        let from_lo3 = Event {
            saddr: Some(LO3),
            daddr: Some(LO1),
            sport: Some(36363),
            dport: Some(10000),
            loc_id: Some(3),
            rem_id: Some(0),
            if_idx: Some(1),
            ..client_join(EventKind::SubEstablished, 0)
        };
        check(EVENT_11_SUB_ESTABLISHED, from_lo3);
        check(
            EVENT_12_SUB_ESTABLISHED,
            Event {
                token: Some(SERVER_TOKEN),
                saddr: Some(LO1),
                daddr: Some(LO3),
                sport: Some(10000),
                dport: Some(36363),
                loc_id: Some(0),
                rem_id: Some(3),
                ..client_join(EventKind::SubEstablished, 1)
            },
        );
    }

    #[test]
    fn sub_priority() {
        // SET_FLAGS id 1 backup on the server: the client receives MP_PRIO for its join.
        check(
            EVENT_13_SUB_PRIORITY,
            client_join(EventKind::SubPriority, 1),
        );
    }

    #[test]
    fn sub_closed() {
        check(
            EVENT_16_SUB_CLOSED,
            Event {
                token: Some(SERVER_TOKEN),
                saddr: Some(LO2),
                daddr: Some(LO1),
                sport: Some(10000),
                dport: Some(JOIN_PORT),
                loc_id: Some(1),
                rem_id: Some(0),
                ..client_join(EventKind::SubClosed, 0)
            },
        );
        check(EVENT_17_SUB_CLOSED, client_join(EventKind::SubClosed, 1));
    }

    #[test]
    fn sub_closed_with_reset_is_hand_built() {
        // Not produced over loopback by the capture: a SUB_CLOSED after an MP_TCPRST carries
        // ERROR, RESET_REASON and RESET_FLAGS (uapi layout: u8, u32, u32).
        #[rustfmt::skip]
        let bytes: &[u8] = &[
            0x34, 0x00, 0x00, 0x00, // nlmsg_len 52
            0x1c, 0x00, // nlmsg_type 28 (mptcp_pm)
            0x00, 0x00, // nlmsg_flags 0
            0x00, 0x00, 0x00, 0x00, // nlmsg_seq 0
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
            0x0b, 0x01, 0x00, 0x00, // MPTCP_EVENT_SUB_CLOSED, version 1
            0x08, 0x00, 0x01, 0x00, // nla_len 8, MPTCP_ATTR_TOKEN
                0x5d, 0x06, 0xe3, 0xd3, // 0xd3e3065d
            0x05, 0x00, 0x0c, 0x00, // nla_len 5, MPTCP_ATTR_ERROR
                0x68, 0x00, 0x00, 0x00, // 104 (ECONNRESET) + padding
            0x08, 0x00, 0x10, 0x00, // nla_len 8, MPTCP_ATTR_RESET_REASON
                0x03, 0x00, 0x00, 0x00, // 3 (MPTCP_RST_EPROHIBIT)
            0x08, 0x00, 0x11, 0x00, // nla_len 8, MPTCP_ATTR_RESET_FLAGS
                0x01, 0x00, 0x00, 0x00, // 1
        ];
        let expected = Event {
            token: Some(CLIENT_TOKEN),
            error: Some(104),
            reset_reason: Some(3),
            reset_flags: Some(1),
            ..Event::new(EventKind::SubClosed)
        };
        assert_eq!(Event::decode_message(bytes), Ok(expected.clone()));
        assert_eq!(expected.encode(MPTCP_PM_FAMILY_ID, 0), bytes);
    }

    #[test]
    fn listener_created_and_closed() {
        // A signal endpoint with a port ([::1]:10100) makes the kernel open a PM listener.
        let v6 = Event {
            family: Some(10),
            sport: Some(10100),
            saddr: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ..Event::new(EventKind::ListenerCreated)
        };
        check(EVENT_00_LISTENER_CREATED, v6.clone());
        check(
            EVENT_01_LISTENER_CLOSED,
            Event {
                kind: EventKind::ListenerClosed,
                ..v6
            },
        );
        // listen() on 0.0.0.0:10000, then close().
        let v4 = Event {
            family: Some(2),
            sport: Some(10000),
            saddr: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            ..Event::new(EventKind::ListenerCreated)
        };
        check(EVENT_02_LISTENER_CREATED, v4.clone());
        check(
            EVENT_20_LISTENER_CLOSED,
            Event {
                kind: EventKind::ListenerClosed,
                ..v4
            },
        );
    }

    #[test]
    fn every_event_type_was_captured() {
        let kinds: std::collections::BTreeSet<EventKind> = EVENTS
            .iter()
            .map(|b| Event::decode_message(b).unwrap().kind)
            .collect();
        assert_eq!(kinds, EventKind::ALL.into_iter().collect());
    }

    #[test]
    fn attributes_by_name() {
        let server = Event::decode_message(EVENT_04_CREATED).unwrap();
        assert_eq!(
            server.attr("token"),
            Some(AttrValue::Uint(SERVER_TOKEN.into()))
        );
        assert_eq!(server.attr("saddr"), Some(AttrValue::Addr(LO1)));
        assert_eq!(server.attr("sport"), Some(AttrValue::Uint(10000)));
        assert_eq!(server.attr("server_side"), Some(AttrValue::Bool(true)));
        assert_eq!(server.attr("deny_join_id0"), Some(AttrValue::Bool(false)));
        assert_eq!(server.attr("flags"), Some(AttrValue::Uint(2)));
        assert_eq!(server.attr("if_idx"), None);
        assert_eq!(server.attr("no_such_attr"), None);

        let client = Event::decode_message(EVENT_03_CREATED).unwrap();
        assert_eq!(
            client.attr("server_side"),
            None,
            "6.18 omits both on the client side"
        );

        let bound = Event::decode_message(EVENT_11_SUB_ESTABLISHED).unwrap();
        assert_eq!(bound.attr("if_idx"), Some(AttrValue::Int(1)));
        assert_eq!(bound.attr("backup"), Some(AttrValue::Bool(false)));
        assert_eq!(bound.attr("loc_id"), Some(AttrValue::Uint(3)));

        let flagged = Event {
            flags: Some(MPTCP_PM_EV_FLAG_DENY_JOIN_ID0),
            ..client
        };
        assert_eq!(flagged.attr("deny_join_id0"), Some(AttrValue::Bool(true)));
        assert_eq!(flagged.attr("server_side"), Some(AttrValue::Bool(false)));

        let full = Event {
            error: Some(1),
            timeout: Some(2),
            reset_reason: Some(3),
            reset_flags: Some(4),
            ..Event::decode_message(EVENT_11_SUB_ESTABLISHED).unwrap()
        };
        for name in Event::ATTR_NAMES {
            if !["server_side", "deny_join_id0", "flags"].contains(&name) {
                assert!(full.attr(name).is_some(), "{name}");
            }
        }
    }

    #[test]
    fn display_like_ip_mptcp_monitor() {
        let event = Event::decode_message(EVENT_11_SUB_ESTABLISHED).unwrap();
        assert_eq!(
            event.to_string(),
            "[sub_established] token=d3e3065d family=2 loc_id=3 rem_id=0 saddr=127.0.0.3 \
             daddr=127.0.0.1 sport=36363 dport=10000 backup=false if_idx=1"
        );
        let server = Event::decode_message(EVENT_04_CREATED).unwrap();
        assert!(
            server.to_string().ends_with("flags=2 server_side=1"),
            "{server}"
        );
    }

    #[test]
    fn kind_names() {
        for kind in EventKind::ALL {
            assert_eq!(kind.to_string().parse(), Ok(kind));
            assert_eq!(EventKind::from(u8::from(kind)), kind);
        }
        assert_eq!("sub_priority".parse(), Ok(EventKind::SubPriority));
        assert_eq!(EventKind::SubPriority.name(), Some("sub_priority"));
        assert_eq!(u8::from(EventKind::ListenerClosed), 16);
        assert_eq!(EventKind::from(4), EventKind::Unknown(4));
        assert_eq!(EventKind::Unknown(4).to_string(), "4");
        assert_eq!("4".parse(), Ok(EventKind::Unknown(4)));
        assert!("SUB_PRIORITY".parse::<EventKind>().is_err());
    }

    #[test]
    fn unknown_attributes_are_kept() {
        let mut w = GenlMsgHdr::new(MPTCP_EVENT_CLOSED, 1).writer();
        w.put_u32(MPTCP_ATTR_TOKEN, 7).put_u32(99, 0xabcd);
        let event = Event::decode(w.as_bytes()).unwrap();
        assert_eq!(event.unknown, [(99, 0xabcdu32.to_ne_bytes().to_vec())]);
        assert_eq!(event.encode_payload(), w.into_bytes());
        assert_eq!(event.to_string(), "[closed] token=00000007 attr99=cdab0000");
    }

    #[test]
    fn malformed_events_are_errors() {
        assert_eq!(
            Event::decode_message(&[]),
            Err(EventError::Nl(NlError::Truncated {
                what: "struct nlmsghdr",
                offset: 0,
                need: 16,
                available: 0
            }))
        );
        assert!(matches!(Event::decode(&[1, 1]), Err(EventError::Genl(_))));
        assert_eq!(
            Event::decode_message(FLUSH_REPLY),
            Err(EventError::NotData {
                found: "NLMSG_ERROR"
            })
        );
        // TOKEN of 2 bytes.
        let mut w = GenlMsgHdr::new(MPTCP_EVENT_CLOSED, 1).writer();
        w.put_u16(MPTCP_ATTR_TOKEN, 7);
        assert_eq!(
            Event::decode(w.as_bytes()).unwrap_err().to_string(),
            "decode MPTCP_ATTR_TOKEN of an mptcp_pm event: read attribute type 1 at offset 20 \
             as u32: payload has 2 bytes"
        );
        // Every truncation of a captured event fails cleanly.
        for cut in 17..EVENT_08_SUB_ESTABLISHED.len() {
            let mut b = EVENT_08_SUB_ESTABLISHED[..cut].to_vec();
            b[0] = u8::try_from(cut).unwrap();
            let result = Event::decode_message(&b);
            // Cuts at attribute boundaries are valid shorter events.
            if let Err(e) = result {
                assert!(
                    matches!(e, EventError::Attr { .. } | EventError::Genl(_)),
                    "{e}"
                );
            }
        }
    }
}
