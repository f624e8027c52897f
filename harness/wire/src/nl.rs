//! Netlink framing (`include/uapi/linux/netlink.h`): the message header, attributes, and the
//! control messages the kernel answers with.
//!
//! * [`NlMsgHdr`]: `struct nlmsghdr`.
//! * [`AttrWriter`] writes attributes (`struct nlattr`, padded to 4 bytes, nests with
//!   `NLA_F_NESTED`); [`Attrs`] walks them and reports truncation as an error, never a panic.
//! * [`messages`] / [`parse_messages`] split a receive buffer into [`NlMessage`]s: data
//!   messages, errors and acks (`NLMSG_ERROR`, with the extended ACK), and `NLMSG_DONE`.
//!
//! Integers are in host byte order unless an attribute says otherwise (`be16` ports).

use std::fmt;

use crate::policy::AttrPolicy;

/// Netlink protocol number of generic netlink (`socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC)`).
pub const NETLINK_GENERIC: i32 = 16;
/// Socket option level for netlink sockets.
pub const SOL_NETLINK: i32 = 270;
/// Socket option: join a multicast group (value: the group id).
pub const NETLINK_ADD_MEMBERSHIP: i32 = 1;
/// Socket option: leave a multicast group.
pub const NETLINK_DROP_MEMBERSHIP: i32 = 2;
/// Socket option: do not echo the request payload in error messages.
pub const NETLINK_CAP_ACK: i32 = 10;
/// Socket option: ask for extended ACK TLVs (error text, offending attribute).
pub const NETLINK_EXT_ACK: i32 = 11;
/// Socket option: strict checking of dump requests.
pub const NETLINK_GET_STRICT_CHK: i32 = 12;

/// Alignment of messages and attributes.
pub const NLMSG_ALIGNTO: usize = 4;
/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;

/// It is a request message.
pub const NLM_F_REQUEST: u16 = 0x01;
/// Multipart message, terminated by `NLMSG_DONE`.
pub const NLM_F_MULTI: u16 = 0x02;
/// Reply with an ack, with zero or an error code.
pub const NLM_F_ACK: u16 = 0x04;
/// Echo this request.
pub const NLM_F_ECHO: u16 = 0x08;
/// Dump was inconsistent due to a sequence change.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// Dump was filtered as requested.
pub const NLM_F_DUMP_FILTERED: u16 = 0x20;
/// GET modifier: specify tree root.
pub const NLM_F_ROOT: u16 = 0x100;
/// GET modifier: return all matching.
pub const NLM_F_MATCH: u16 = 0x200;
/// GET modifier: atomic GET.
pub const NLM_F_ATOMIC: u16 = 0x400;
/// GET modifier: dump (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
/// NEW modifier: override existing.
pub const NLM_F_REPLACE: u16 = 0x100;
/// NEW modifier: do not touch, if it exists.
pub const NLM_F_EXCL: u16 = 0x200;
/// NEW modifier: create, if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// NEW modifier: add to end of list.
pub const NLM_F_APPEND: u16 = 0x800;
/// ACK flag: the request payload was not echoed in the error message.
pub const NLM_F_CAPPED: u16 = 0x100;
/// ACK flag: extended ACK TLVs follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

/// Nothing.
pub const NLMSG_NOOP: u16 = 0x1;
/// Error (or, with error 0, an ack).
pub const NLMSG_ERROR: u16 = 0x2;
/// End of a dump.
pub const NLMSG_DONE: u16 = 0x3;
/// Data lost.
pub const NLMSG_OVERRUN: u16 = 0x4;
/// Types below this are reserved control messages.
pub const NLMSG_MIN_TYPE: u16 = 0x10;

/// Extended ACK: unused.
pub const NLMSGERR_ATTR_UNUSED: u16 = 0;
/// Extended ACK: error message string.
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// Extended ACK: offset of the invalid attribute in the original message (u32).
pub const NLMSGERR_ATTR_OFFS: u16 = 2;
/// Extended ACK: subsystem-specific cookie (binary).
pub const NLMSGERR_ATTR_COOKIE: u16 = 3;
/// Extended ACK: policy of the rejected attribute (nested `NL_POLICY_TYPE_ATTR_*`).
pub const NLMSGERR_ATTR_POLICY: u16 = 4;
/// Extended ACK: type of a missing required attribute (u32).
pub const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;
/// Extended ACK: offset of the nest where an attribute is missing (u32).
pub const NLMSGERR_ATTR_MISS_NEST: u16 = 6;

/// Attribute type flag: the payload holds attributes.
pub const NLA_F_NESTED: u16 = 1 << 15;
/// Attribute type flag: the payload is in network byte order.
pub const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
/// Mask of the attribute type without its flags.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// Rounds `len` up to the netlink alignment (4): `NLMSG_ALIGN` and `NLA_ALIGN`.
pub const fn nla_align(len: usize) -> usize {
    (len + NLMSG_ALIGNTO - 1) & !(NLMSG_ALIGNTO - 1)
}

/// Malformed netlink bytes. Offsets count from the start of the buffer given to the parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NlError {
    /// The receive buffer holds no message at all.
    #[error("parse netlink messages: the buffer is empty")]
    Empty,
    /// Fewer bytes than a fixed-size part needs.
    #[error("read {what} at offset {offset}: need {need} bytes, {available} left")]
    Truncated {
        /// What was being read (`"struct nlmsghdr"`, `"struct nlattr"`, ...).
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        need: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// A length field that does not fit its container.
    #[error("read {what} at offset {offset}: length {len} is outside {min}..={max}")]
    BadLength {
        /// What carries the length (`"nlmsg_len"`, `"nla_len"`).
        what: &'static str,
        /// Where the header starts.
        offset: usize,
        /// The length found.
        len: usize,
        /// Smallest valid value.
        min: usize,
        /// Largest valid value (the bytes left).
        max: usize,
    },
    /// An attribute payload that does not have the size of its type.
    #[error(
        "read attribute type {attr_type} at offset {offset} as {expected}: payload has {len} bytes"
    )]
    AttrSize {
        /// Attribute type (flags removed).
        attr_type: u16,
        /// Offset of the attribute header.
        offset: usize,
        /// Expected type (`"u32"`, `"IPv4 address"`, ...).
        expected: &'static str,
        /// Payload size found.
        len: usize,
    },
    /// A string attribute that is not UTF-8.
    #[error("read attribute type {attr_type} at offset {offset} as a string: not UTF-8")]
    BadString {
        /// Attribute type (flags removed).
        attr_type: u16,
        /// Offset of the attribute header.
        offset: usize,
    },
    /// A required attribute is absent.
    #[error("find {attr} in {context}: it is missing")]
    Missing {
        /// Kernel name of the attribute.
        attr: &'static str,
        /// Where it was expected.
        context: &'static str,
    },
}

fn read_array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn truncated(what: &'static str, offset: usize, need: usize, available: usize) -> NlError {
    NlError::Truncated {
        what,
        offset,
        need,
        available,
    }
}

/// `struct nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct NlMsgHdr {
    /// `nlmsg_len`: length of the message including this header.
    pub len: u32,
    /// `nlmsg_type`: `NLMSG_*` control type or a family id.
    pub msg_type: u16,
    /// `nlmsg_flags`: `NLM_F_*`.
    pub flags: u16,
    /// `nlmsg_seq`: sequence number.
    pub seq: u32,
    /// `nlmsg_pid`: sending port id (0 for the kernel in requests).
    pub pid: u32,
}

impl NlMsgHdr {
    /// A header for a message about to be encoded (`len` is filled in by the encoder).
    pub fn new(msg_type: u16, flags: u16, seq: u32) -> Self {
        Self {
            len: 0,
            msg_type,
            flags,
            seq,
            pid: 0,
        }
    }

    /// Reads the first 16 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, NlError> {
        Self::parse_at(buf, 0, "struct nlmsghdr")
    }

    fn parse_at(buf: &[u8], base: usize, what: &'static str) -> Result<Self, NlError> {
        let b: [u8; NLMSG_HDRLEN] =
            read_array(buf, 0).ok_or_else(|| truncated(what, base, NLMSG_HDRLEN, buf.len()))?;
        Ok(Self {
            len: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            msg_type: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            pid: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        })
    }

    /// The 16 header bytes, with `len` as stored.
    pub fn to_bytes(&self) -> [u8; NLMSG_HDRLEN] {
        let mut out = [0u8; NLMSG_HDRLEN];
        out[0..4].copy_from_slice(&self.len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.msg_type.to_ne_bytes());
        out[6..8].copy_from_slice(&self.flags.to_ne_bytes());
        out[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        out[12..16].copy_from_slice(&self.pid.to_ne_bytes());
        out
    }

    /// Encodes a whole message: this header (with `len` computed) then `payload`, padded to 4.
    ///
    /// # Panics
    /// If the message would exceed 4 GiB, which no netlink socket accepts anyway.
    pub fn encode_message(&self, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let header = Self {
            len: u32::try_from(len).expect("netlink message longer than u32::MAX bytes"),
            ..*self
        };
        let mut out = Vec::with_capacity(nla_align(len));
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(payload);
        out.resize(nla_align(len), 0);
        out
    }
}

/// One attribute inside a buffer, as yielded by [`Attrs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Attribute type without `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER`.
    pub attr_type: u16,
    /// Attribute type as on the wire, flags included.
    pub raw_type: u16,
    /// Payload (`nla_len - 4` bytes, padding excluded).
    pub payload: &'a [u8],
    /// Offset of the attribute header from the start of the outermost buffer parsed.
    pub offset: usize,
}

impl<'a> Attr<'a> {
    /// True if the `NLA_F_NESTED` flag is set.
    pub fn is_nested(&self) -> bool {
        self.raw_type & NLA_F_NESTED != 0
    }

    /// Iterates over the attributes inside this one (whether or not `NLA_F_NESTED` is set).
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::with_base(self.payload, self.offset + NLA_HDRLEN)
    }

    fn size_error(&self, expected: &'static str) -> NlError {
        NlError::AttrSize {
            attr_type: self.attr_type,
            offset: self.offset,
            expected,
            len: self.payload.len(),
        }
    }

    fn exact<const N: usize>(&self, expected: &'static str) -> Result<[u8; N], NlError> {
        <[u8; N]>::try_from(self.payload).map_err(|_| self.size_error(expected))
    }

    /// Reads a `u8`.
    pub fn as_u8(&self) -> Result<u8, NlError> {
        self.exact::<1>("u8").map(|b| b[0])
    }

    /// Reads a host-order `u16`.
    pub fn as_u16(&self) -> Result<u16, NlError> {
        self.exact("u16").map(u16::from_ne_bytes)
    }

    /// Reads a network-order `u16` (`be16`).
    pub fn as_be16(&self) -> Result<u16, NlError> {
        self.exact("be16").map(u16::from_be_bytes)
    }

    /// Reads a host-order `u32`.
    pub fn as_u32(&self) -> Result<u32, NlError> {
        self.exact("u32").map(u32::from_ne_bytes)
    }

    /// Reads a host-order `s32`.
    pub fn as_i32(&self) -> Result<i32, NlError> {
        self.exact("s32").map(i32::from_ne_bytes)
    }

    /// Reads a host-order `u64`.
    pub fn as_u64(&self) -> Result<u64, NlError> {
        self.exact("u64").map(u64::from_ne_bytes)
    }

    /// Reads a host-order `s64`.
    pub fn as_i64(&self) -> Result<i64, NlError> {
        self.exact("s64").map(i64::from_ne_bytes)
    }

    /// Reads an IPv4 address (4 bytes, network order).
    pub fn as_ipv4(&self) -> Result<std::net::Ipv4Addr, NlError> {
        self.exact::<4>("IPv4 address")
            .map(std::net::Ipv4Addr::from)
    }

    /// Reads an IPv6 address (16 bytes).
    pub fn as_ipv6(&self) -> Result<std::net::Ipv6Addr, NlError> {
        self.exact::<16>("IPv6 address")
            .map(std::net::Ipv6Addr::from)
    }

    /// Reads a string, up to the first NUL (the NUL is optional).
    pub fn as_str(&self) -> Result<&'a str, NlError> {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
        std::str::from_utf8(&self.payload[..end]).map_err(|_| NlError::BadString {
            attr_type: self.attr_type,
            offset: self.offset,
        })
    }

    /// Reads a string, up to the first NUL, replacing invalid UTF-8.
    pub fn to_string_lossy(&self) -> String {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
        String::from_utf8_lossy(&self.payload[..end]).into_owned()
    }

    /// The attribute kept raw: (type with its flags, payload).
    pub fn to_raw(&self) -> (u16, Vec<u8>) {
        (self.raw_type, self.payload.to_vec())
    }
}

/// Iterator over the attributes in a byte slice; yields an error (then stops) on truncation.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

impl<'a> Attrs<'a> {
    /// Walks the attributes of `buf`; offsets in errors count from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_base(buf, 0)
    }

    /// Walks the attributes of `buf`, which starts at `base` in an outer buffer.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            failed: false,
        }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, NlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
        let offset = self.base + self.pos;
        let result = (|| {
            let hdr: [u8; NLA_HDRLEN] = read_array(rest, 0)
                .ok_or_else(|| truncated("struct nlattr", offset, NLA_HDRLEN, rest.len()))?;
            let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
            let raw_type = u16::from_ne_bytes([hdr[2], hdr[3]]);
            let payload = rest
                .get(NLA_HDRLEN..len)
                .filter(|_| len >= NLA_HDRLEN)
                .ok_or(NlError::BadLength {
                    what: "nla_len",
                    offset,
                    len,
                    min: NLA_HDRLEN,
                    max: rest.len(),
                })?;
            // The last attribute may come without its padding.
            self.pos += nla_align(len).min(rest.len());
            Ok(Attr {
                attr_type: raw_type & NLA_TYPE_MASK,
                raw_type,
                payload,
                offset,
            })
        })();
        self.failed = result.is_err();
        Some(result)
    }
}

/// Writes attributes, each padded to 4 bytes (as the kernel's `nla_put`).
///
/// Setters panic if one attribute would exceed the 64 KiB `nla_len` limit: that is a harness
/// bug, not an input error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrWriter {
    buf: Vec<u8>,
}

/// An open nest returned by [`AttrWriter::begin_nested`]; close it with
/// [`AttrWriter::end_nested`].
#[derive(Debug)]
#[must_use = "a nest must be closed with end_nested"]
pub struct Nest(usize);

impl AttrWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer whose buffer starts with a fixed header (e.g. `struct genlmsghdr`), padded to 4.
    pub fn with_header(header: &[u8]) -> Self {
        let mut buf = header.to_vec();
        buf.resize(nla_align(buf.len()), 0);
        Self { buf }
    }

    fn header(&mut self, raw_type: u16, payload_len: usize) {
        let len = u16::try_from(NLA_HDRLEN + payload_len).unwrap_or_else(|_| {
            panic!("attribute type {raw_type:#x}: {payload_len} bytes do not fit nla_len")
        });
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&raw_type.to_ne_bytes());
    }

    fn pad(&mut self) {
        self.buf.resize(nla_align(self.buf.len()), 0);
    }

    /// Appends an attribute; `raw_type` is written as given (flags included).
    pub fn put(&mut self, raw_type: u16, payload: &[u8]) -> &mut Self {
        self.header(raw_type, payload.len());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// Appends a flag attribute (no payload).
    pub fn put_flag(&mut self, attr_type: u16) -> &mut Self {
        self.put(attr_type, &[])
    }

    /// Appends a `u8`.
    pub fn put_u8(&mut self, attr_type: u16, value: u8) -> &mut Self {
        self.put(attr_type, &[value])
    }

    /// Appends a host-order `u16`.
    pub fn put_u16(&mut self, attr_type: u16, value: u16) -> &mut Self {
        self.put(attr_type, &value.to_ne_bytes())
    }

    /// Appends a network-order `u16` (`be16`).
    pub fn put_be16(&mut self, attr_type: u16, value: u16) -> &mut Self {
        self.put(attr_type, &value.to_be_bytes())
    }

    /// Appends a host-order `u32`.
    pub fn put_u32(&mut self, attr_type: u16, value: u32) -> &mut Self {
        self.put(attr_type, &value.to_ne_bytes())
    }

    /// Appends a host-order `s32`.
    pub fn put_i32(&mut self, attr_type: u16, value: i32) -> &mut Self {
        self.put(attr_type, &value.to_ne_bytes())
    }

    /// Appends a host-order `u64`.
    pub fn put_u64(&mut self, attr_type: u16, value: u64) -> &mut Self {
        self.put(attr_type, &value.to_ne_bytes())
    }

    /// Appends a host-order `s64`.
    pub fn put_i64(&mut self, attr_type: u16, value: i64) -> &mut Self {
        self.put(attr_type, &value.to_ne_bytes())
    }

    /// Appends a NUL-terminated string.
    pub fn put_str(&mut self, attr_type: u16, value: &str) -> &mut Self {
        self.header(attr_type, value.len() + 1);
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
        self
    }

    /// Opens a nest with `NLA_F_NESTED` set (as the kernel's `nla_nest_start`).
    pub fn begin_nested(&mut self, attr_type: u16) -> Nest {
        self.begin_nested_noflag(attr_type | NLA_F_NESTED)
    }

    /// Opens a nest with the type written as given (as the kernel's `nla_nest_start_noflag`).
    pub fn begin_nested_noflag(&mut self, raw_type: u16) -> Nest {
        let start = self.buf.len();
        self.header(raw_type, 0);
        Nest(start)
    }

    /// Closes a nest: writes its final length.
    pub fn end_nested(&mut self, nest: Nest) {
        let len = self.buf.len() - nest.0;
        let len = u16::try_from(len)
            .unwrap_or_else(|_| panic!("nested attribute of {len} bytes does not fit nla_len"));
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Writes a nest (`NLA_F_NESTED` set) whose content `fill` writes.
    pub fn nested(&mut self, attr_type: u16, fill: impl FnOnce(&mut Self)) -> &mut Self {
        let nest = self.begin_nested(attr_type);
        fill(self);
        self.end_nested(nest);
        self
    }

    /// Bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The written bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// The extended ACK TLVs of an error, ack or `NLMSG_DONE` (`NETLINK_EXT_ACK` set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtAck {
    /// `NLMSGERR_ATTR_MSG`: the kernel's explanation (for an ack: a warning).
    pub msg: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: offset of the offending attribute from the start of the request.
    pub offset: Option<u32>,
    /// `NLMSGERR_ATTR_COOKIE`.
    pub cookie: Option<Vec<u8>>,
    /// `NLMSGERR_ATTR_POLICY`: the policy the offending attribute broke.
    pub policy: Option<AttrPolicy>,
    /// `NLMSGERR_ATTR_MISS_TYPE`: type of a missing attribute.
    pub miss_type: Option<u32>,
    /// `NLMSGERR_ATTR_MISS_NEST`: offset of the nest missing it.
    pub miss_nest: Option<u32>,
    /// Attributes this crate does not know, kept raw (type with flags, payload).
    pub unknown: Vec<(u16, Vec<u8>)>,
}

impl ExtAck {
    /// True when the kernel sent no TLV at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn decode(buf: &[u8], base: usize) -> Result<Self, NlError> {
        let mut ack = Self::default();
        for attr in Attrs::with_base(buf, base) {
            let attr = attr?;
            match attr.attr_type {
                NLMSGERR_ATTR_MSG => ack.msg = Some(attr.to_string_lossy()),
                NLMSGERR_ATTR_OFFS => ack.offset = Some(attr.as_u32()?),
                NLMSGERR_ATTR_COOKIE => ack.cookie = Some(attr.payload.to_vec()),
                NLMSGERR_ATTR_POLICY => {
                    ack.policy = Some(AttrPolicy::decode_attrs(attr.nested())?);
                }
                NLMSGERR_ATTR_MISS_TYPE => ack.miss_type = Some(attr.as_u32()?),
                NLMSGERR_ATTR_MISS_NEST => ack.miss_nest = Some(attr.as_u32()?),
                _ => ack.unknown.push(attr.to_raw()),
            }
        }
        Ok(ack)
    }

    /// Writes the TLVs in the kernel's order (`netlink_ack_tlv_fill`).
    fn encode(&self, w: &mut AttrWriter) {
        if let Some(msg) = &self.msg {
            w.put_str(NLMSGERR_ATTR_MSG, msg);
        }
        if let Some(cookie) = &self.cookie {
            w.put(NLMSGERR_ATTR_COOKIE, cookie);
        }
        if let Some(offset) = self.offset {
            w.put_u32(NLMSGERR_ATTR_OFFS, offset);
        }
        if let Some(policy) = &self.policy {
            w.nested(NLMSGERR_ATTR_POLICY, |w| policy.encode_attrs(w));
        }
        if let Some(miss_type) = self.miss_type {
            w.put_u32(NLMSGERR_ATTR_MISS_TYPE, miss_type);
        }
        if let Some(miss_nest) = self.miss_nest {
            w.put_u32(NLMSGERR_ATTR_MISS_NEST, miss_nest);
        }
        for (raw_type, payload) in &self.unknown {
            w.put(*raw_type, payload);
        }
    }
}

impl fmt::Display for ExtAck {
    /// The message and offset, e.g. `"address not found" (attribute at byte 20)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.msg {
            Some(msg) => write!(f, "{msg:?}")?,
            None => f.write_str("no extended ack message")?,
        }
        if let Some(offset) = self.offset {
            write!(f, " (attribute at byte {offset})")?;
        }
        if let Some(miss_type) = self.miss_type {
            write!(f, " (missing attribute type {miss_type})")?;
        }
        Ok(())
    }
}

/// A message that is not a netlink control message (a reply, a dump part or an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// Its header (`msg_type` is the family id for generic netlink).
    pub header: NlMsgHdr,
    /// Everything after the header (for generic netlink: `struct genlmsghdr` then attributes).
    pub payload: Vec<u8>,
}

/// An `NLMSG_ERROR` with a non-zero error: the kernel refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// Header of the error message itself.
    pub header: NlMsgHdr,
    /// Positive errno (17 for `EEXIST`).
    pub errno: i32,
    /// Header of the refused request.
    pub request: NlMsgHdr,
    /// The refused request's payload, echoed unless `NLM_F_CAPPED` (`NETLINK_CAP_ACK`).
    pub request_payload: Option<Vec<u8>>,
    /// Extended ACK TLVs (`NLM_F_ACK_TLVS`).
    pub ext_ack: ExtAck,
}

/// An `NLMSG_ERROR` with error 0: the request succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckMessage {
    /// Header of the ack itself.
    pub header: NlMsgHdr,
    /// Header of the acknowledged request.
    pub request: NlMsgHdr,
    /// Extended ACK TLVs; a message here is a warning.
    pub ext_ack: ExtAck,
}

/// `NLMSG_DONE`: the end of a dump, with the dump's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneMessage {
    /// Header of the done message.
    pub header: NlMsgHdr,
    /// Positive errno of a failed dump, 0 on success.
    pub errno: i32,
    /// Extended ACK TLVs (`NLM_F_ACK_TLVS`).
    pub ext_ack: ExtAck,
}

/// One message of a receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NlMessage {
    /// Any type other than `NLMSG_ERROR` / `NLMSG_DONE` (including `NLMSG_NOOP`, `NLMSG_OVERRUN`).
    Data(DataMessage),
    /// `NLMSG_ERROR` with a non-zero error.
    Error(ErrorMessage),
    /// `NLMSG_ERROR` with error 0.
    Ack(AckMessage),
    /// `NLMSG_DONE`.
    Done(DoneMessage),
}

impl NlMessage {
    /// The message's own header.
    pub fn header(&self) -> &NlMsgHdr {
        match self {
            Self::Data(m) => &m.header,
            Self::Error(m) => &m.header,
            Self::Ack(m) => &m.header,
            Self::Done(m) => &m.header,
        }
    }

    /// Decodes exactly one message (`msg` holds it, trailing padding allowed).
    pub fn decode(msg: &[u8]) -> Result<Self, NlError> {
        let (message, _) = decode_one(msg, 0)?;
        Ok(message)
    }

    /// Encodes the message; `nlmsg_len` is recomputed, every other header field is kept.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Data(m) => m.header.encode_message(&m.payload),
            Self::Error(m) => {
                let mut w = AttrWriter::new();
                w.buf.extend_from_slice(&(-m.errno).to_ne_bytes());
                w.buf.extend_from_slice(&m.request.to_bytes());
                if let Some(payload) = &m.request_payload {
                    w.buf.extend_from_slice(payload);
                    w.pad();
                }
                m.ext_ack.encode(&mut w);
                m.header.encode_message(w.as_bytes())
            }
            Self::Ack(m) => {
                let mut w = AttrWriter::new();
                w.buf.extend_from_slice(&0i32.to_ne_bytes());
                w.buf.extend_from_slice(&m.request.to_bytes());
                m.ext_ack.encode(&mut w);
                m.header.encode_message(w.as_bytes())
            }
            Self::Done(m) => {
                let mut w = AttrWriter::new();
                w.buf.extend_from_slice(&(-m.errno).to_ne_bytes());
                m.ext_ack.encode(&mut w);
                m.header.encode_message(w.as_bytes())
            }
        }
    }
}

impl fmt::Display for ErrorMessage {
    /// E.g. `errno 17 for request seq 6: "too many addresses or duplicate one: -17"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "errno {} for request seq {}: {}",
            self.errno, self.request.seq, self.ext_ack
        )
    }
}

/// Decodes the message at the start of `buf` (which starts at `base` in the receive buffer);
/// returns it and the number of bytes it takes, padding included.
fn decode_one(buf: &[u8], base: usize) -> Result<(NlMessage, usize), NlError> {
    let header = NlMsgHdr::parse_at(buf, base, "struct nlmsghdr")?;
    let len = header.len as usize;
    let msg = buf
        .get(..len)
        .filter(|_| len >= NLMSG_HDRLEN)
        .ok_or(NlError::BadLength {
            what: "nlmsg_len",
            offset: base,
            len,
            min: NLMSG_HDRLEN,
            max: buf.len(),
        })?;
    let consumed = nla_align(len).min(buf.len());
    let payload = &msg[NLMSG_HDRLEN..];
    let pbase = base + NLMSG_HDRLEN;
    let tlvs = header.flags & NLM_F_ACK_TLVS != 0;
    let message = match header.msg_type {
        NLMSG_ERROR => {
            let error: [u8; 4] = read_array(payload, 0)
                .ok_or_else(|| truncated("nlmsgerr.error", pbase, 4, payload.len()))?;
            let errno = -i32::from_ne_bytes(error);
            let rest = &payload[4..];
            let request = NlMsgHdr::parse_at(rest, pbase + 4, "nlmsgerr.msg")?;
            let mut after = 4 + NLMSG_HDRLEN;
            let capped = header.flags & NLM_F_CAPPED != 0 || errno == 0;
            let request_payload = if capped {
                None
            } else {
                let rlen = request.len as usize;
                let echoed = rest
                    .get(NLMSG_HDRLEN..rlen)
                    .filter(|_| rlen >= NLMSG_HDRLEN)
                    .ok_or(NlError::BadLength {
                        what: "echoed request nlmsg_len",
                        offset: pbase + 4,
                        len: rlen,
                        min: NLMSG_HDRLEN,
                        max: rest.len(),
                    })?;
                after = (4 + nla_align(rlen)).min(payload.len());
                Some(echoed.to_vec())
            };
            let ext_ack = if tlvs {
                ExtAck::decode(&payload[after..], pbase + after)?
            } else {
                ExtAck::default()
            };
            if errno == 0 {
                NlMessage::Ack(AckMessage {
                    header,
                    request,
                    ext_ack,
                })
            } else {
                NlMessage::Error(ErrorMessage {
                    header,
                    errno,
                    request,
                    request_payload,
                    ext_ack,
                })
            }
        }
        NLMSG_DONE => {
            // Some families end a dump with an empty NLMSG_DONE.
            let errno = read_array::<4>(payload, 0).map_or(0, |b| -i32::from_ne_bytes(b));
            let after = 4.min(payload.len());
            let ext_ack = if tlvs {
                ExtAck::decode(&payload[after..], pbase + after)?
            } else {
                ExtAck::default()
            };
            NlMessage::Done(DoneMessage {
                header,
                errno,
                ext_ack,
            })
        }
        _ => NlMessage::Data(DataMessage {
            header,
            payload: payload.to_vec(),
        }),
    };
    Ok((message, consumed))
}

/// Iterator over the messages of a receive buffer; yields an error (then stops) on bad framing.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Walks the messages of a receive buffer (possibly several per `recv`).
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages {
        buf,
        pos: 0,
        failed: false,
    }
}

impl Iterator for Messages<'_> {
    type Item = Result<NlMessage, NlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
        let result = decode_one(rest, self.pos).map(|(message, consumed)| {
            self.pos += consumed;
            message
        });
        self.failed = result.is_err();
        Some(result)
    }
}

/// Decodes every message of a receive buffer; an empty buffer is an error.
pub fn parse_messages(buf: &[u8]) -> Result<Vec<NlMessage>, NlError> {
    if buf.is_empty() {
        return Err(NlError::Empty);
    }
    messages(buf).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    #[test]
    fn attr_writer_pads_and_nests() {
        let mut w = AttrWriter::new();
        w.put_u8(2, 7).nested(1, |w| {
            w.put_u16(1, 2);
        });
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x05, 0x00, 0x02, 0x00, // nla_len 5, type 2
                0x07, 0x00, 0x00, 0x00, // 7 + padding
            0x0c, 0x00, 0x01, 0x80, // nla_len 12, type 1 | NLA_F_NESTED
                0x06, 0x00, 0x01, 0x00, // nla_len 6, type 1
                    0x02, 0x00, 0x00, 0x00, // 2 + padding
        ];
        assert_eq!(w.as_bytes(), expected);

        let attrs: Vec<_> = Attrs::new(expected).collect::<Result<_, _>>().unwrap();
        assert_eq!(attrs.len(), 2);
        assert_eq!((attrs[0].attr_type, attrs[0].as_u8()), (2, Ok(7)));
        assert!(attrs[1].is_nested());
        assert_eq!(attrs[1].attr_type, 1);
        let inner: Vec<_> = attrs[1].nested().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            (inner[0].attr_type, inner[0].offset, inner[0].as_u16()),
            (1, 12, Ok(2))
        );
    }

    #[test]
    fn ack_capped() {
        let msgs = parse_messages(ADD_ADDR_SIGNAL_REPLY).unwrap();
        let expected = NlMessage::Ack(AckMessage {
            header: NlMsgHdr {
                len: 36,
                msg_type: NLMSG_ERROR,
                flags: NLM_F_CAPPED,
                seq: 5,
                pid: 5890,
            },
            request: NlMsgHdr {
                len: 56,
                msg_type: MPTCP_PM_FAMILY_ID,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                seq: 5,
                pid: 0,
            },
            ext_ack: ExtAck::default(),
        });
        assert_eq!(msgs, std::slice::from_ref(&expected));
        assert_eq!(expected.encode(), ADD_ADDR_SIGNAL_REPLY);
    }

    #[test]
    fn error_with_echoed_request_and_extack() {
        let msgs = parse_messages(ADD_ADDR_DUPLICATE_REPLY).unwrap();
        let [NlMessage::Error(err)] = &msgs[..] else {
            panic!("expected one error: {msgs:?}")
        };
        assert_eq!(err.errno, 17, "EEXIST");
        assert_eq!(err.header.flags, NLM_F_ACK_TLVS, "not capped");
        assert_eq!(err.request.seq, 6);
        // The echoed payload is the request minus its nlmsghdr.
        assert_eq!(
            err.request_payload.as_deref(),
            Some(&ADD_ADDR_DUPLICATE[16..])
        );
        assert_eq!(
            err.ext_ack.msg.as_deref(),
            Some("too many addresses or duplicate one: -17")
        );
        assert_eq!(err.ext_ack.offset, None);
        assert_eq!(
            err.to_string(),
            "errno 17 for request seq 6: \"too many addresses or duplicate one: -17\""
        );
        assert_eq!(msgs[0].encode(), ADD_ADDR_DUPLICATE_REPLY);
    }

    #[test]
    fn error_capped_with_offset() {
        let msgs = parse_messages(ADD_ADDR_SIGNAL_FULLMESH_REPLY).unwrap();
        let expected = NlMessage::Error(ErrorMessage {
            header: NlMsgHdr {
                len: 92,
                msg_type: NLMSG_ERROR,
                flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
                seq: 8,
                pid: 5890,
            },
            errno: 22,
            request: NlMsgHdr {
                len: 48,
                msg_type: MPTCP_PM_FAMILY_ID,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                seq: 8,
                pid: 0,
            },
            request_payload: None,
            ext_ack: ExtAck {
                msg: Some("flags mustn't have both signal and fullmesh".into()),
                // The MPTCP_PM_ATTR_ADDR nest: 16 (nlmsghdr) + 4 (genlmsghdr).
                offset: Some(20),
                ..ExtAck::default()
            },
        });
        assert_eq!(msgs, std::slice::from_ref(&expected));
        assert_eq!(expected.encode(), ADD_ADDR_SIGNAL_FULLMESH_REPLY);
    }

    #[test]
    fn done_with_dump_error_and_extack() {
        let msgs = parse_messages(DUMP_ADDRS_BAD_TOKEN_REPLY).unwrap();
        let expected = NlMessage::Done(DoneMessage {
            header: NlMsgHdr {
                len: 48,
                msg_type: NLMSG_DONE,
                flags: NLM_F_MULTI | NLM_F_ACK_TLVS,
                seq: 13,
                pid: 5890,
            },
            errno: 22,
            ext_ack: ExtAck {
                msg: Some("invalid token".into()),
                offset: Some(20),
                ..ExtAck::default()
            },
        });
        assert_eq!(msgs, std::slice::from_ref(&expected));
        assert_eq!(expected.encode(), DUMP_ADDRS_BAD_TOKEN_REPLY);
    }

    #[test]
    fn several_messages_in_one_buffer() {
        let buf = [GET_LIMITS_REPLY_0, GET_LIMITS_REPLY_1].concat();
        let msgs = parse_messages(&buf).unwrap();
        assert!(
            matches!(&msgs[..], [NlMessage::Data(_), NlMessage::Ack(_)]),
            "{msgs:?}"
        );
        let NlMessage::Data(data) = &msgs[0] else {
            unreachable!()
        };
        assert_eq!(data.header.msg_type, MPTCP_PM_FAMILY_ID);
        assert_eq!(data.payload, &GET_LIMITS_REPLY_0[16..]);

        let dump = DUMP_ADDRS_REPLY_ALL.concat();
        let msgs = parse_messages(&dump).unwrap();
        assert_eq!(msgs.len(), 4);
        assert!(matches!(
            msgs[3],
            NlMessage::Done(DoneMessage { errno: 0, .. })
        ));
        let reencoded: Vec<u8> = msgs.iter().flat_map(NlMessage::encode).collect();
        assert_eq!(reencoded, dump);
    }

    #[test]
    fn every_captured_message_round_trips() {
        let all = [
            GETFAMILY_REQUEST,
            GETFAMILY_REPLY,
            GETFAMILY_ACK,
            SET_LIMITS,
            SET_LIMITS_REPLY,
            ADD_ADDR_DUPLICATE_ID_REPLY,
            DEL_ADDR_MISSING_REPLY,
            FLUSH,
            FLUSH_REPLY,
        ];
        for bytes in all.into_iter().chain(EVENTS.iter().copied()) {
            let msg = NlMessage::decode(bytes).unwrap();
            assert_eq!(msg.encode(), bytes, "{msg:?}");
        }
    }

    #[test]
    fn empty_and_truncated_buffers_are_errors() {
        assert_eq!(parse_messages(&[]), Err(NlError::Empty));
        assert_eq!(
            parse_messages(&ADD_ADDR_SIGNAL_REPLY[..10]),
            Err(NlError::Truncated {
                what: "struct nlmsghdr",
                offset: 0,
                need: 16,
                available: 10
            })
        );
        // nlmsg_len says 36 but only 30 bytes arrived.
        assert_eq!(
            parse_messages(&ADD_ADDR_SIGNAL_REPLY[..30]),
            Err(NlError::BadLength {
                what: "nlmsg_len",
                offset: 0,
                len: 36,
                min: 16,
                max: 30
            })
        );
        // The second message is cut: the first still decodes, then the error.
        let buf = [GET_LIMITS_REPLY_0, &GET_LIMITS_REPLY_1[..20]].concat();
        let results: Vec<_> = messages(&buf).collect();
        assert!(results[0].is_ok());
        assert_eq!(
            results[1],
            Err(NlError::BadLength {
                what: "nlmsg_len",
                offset: 36,
                len: 36,
                min: 16,
                max: 20
            })
        );
        assert_eq!(results.len(), 2);
        // An error message too short for its nlmsgerr.
        let mut short = ADD_ADDR_SIGNAL_REPLY[..24].to_vec();
        short[0] = 24;
        assert!(matches!(
            parse_messages(&short),
            Err(NlError::Truncated {
                what: "nlmsgerr.msg",
                offset: 20,
                ..
            })
        ));
        // A non-capped error whose echoed request claims more bytes than sent.
        let mut lying = ADD_ADDR_DUPLICATE_REPLY.to_vec();
        lying[20] = 0xff;
        assert!(matches!(
            parse_messages(&lying),
            Err(NlError::BadLength {
                what: "echoed request nlmsg_len",
                ..
            })
        ));
        // nlmsg_len below the header size.
        let mut tiny = FLUSH_REPLY.to_vec();
        tiny[0] = 4;
        assert!(matches!(
            parse_messages(&tiny),
            Err(NlError::BadLength { len: 4, .. })
        ));
    }

    #[test]
    fn truncated_attributes_are_errors() {
        // Header cut in the middle.
        let r: Vec<_> = Attrs::new(&[0x08, 0x00, 0x01]).collect();
        assert_eq!(
            r,
            [Err(NlError::Truncated {
                what: "struct nlattr",
                offset: 0,
                need: 4,
                available: 3
            })]
        );
        // nla_len beyond the buffer.
        let r: Vec<_> = Attrs::new(&[0x08, 0x00, 0x01, 0x00, 0x01]).collect();
        assert_eq!(
            r,
            [Err(NlError::BadLength {
                what: "nla_len",
                offset: 0,
                len: 8,
                min: 4,
                max: 5
            })]
        );
        // nla_len below the header size: an error, not an endless loop.
        let r: Vec<_> = Attrs::new(&[0x02, 0x00, 0x01, 0x00]).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_err());
        // A good attribute, then garbage: the good one, then one error, then the end.
        let r: Vec<_> = Attrs::new(&[0x05, 0x00, 0x01, 0x00, 0x09, 0, 0, 0, 0xff]).collect();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].as_ref().map(|a| a.as_u8()), Ok(Ok(9)));
        assert!(matches!(r[1], Err(NlError::Truncated { offset: 8, .. })));
        // The last attribute may lack its padding.
        let r: Vec<_> = Attrs::new(&[0x05, 0x00, 0x01, 0x00, 0x09]).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_ok());
        // Wrong payload size for the type asked.
        let attr = Attrs::new(&[0x05, 0x00, 0x01, 0x00, 0x09])
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            attr.as_u32(),
            Err(NlError::AttrSize {
                attr_type: 1,
                offset: 0,
                expected: "u32",
                len: 1
            })
        );
        assert_eq!(
            attr.as_u32().unwrap_err().to_string(),
            "read attribute type 1 at offset 0 as u32: payload has 1 bytes"
        );
    }

    #[test]
    fn no_panic_on_any_prefix_or_corruption() {
        let all: Vec<&[u8]> = [
            GETFAMILY_REPLY,
            ADD_ADDR_DUPLICATE_REPLY,
            ADD_ADDR_SIGNAL_FULLMESH_REPLY,
            DUMP_ADDRS_BAD_TOKEN_REPLY,
            GET_ADDR_REPLY_0,
        ]
        .into_iter()
        .chain(EVENTS.iter().copied())
        .collect();
        for bytes in all {
            for cut in 0..bytes.len() {
                let _ = parse_messages(&bytes[..cut]);
                let _ = Attrs::new(&bytes[cut..]).count();
            }
            for i in 0..bytes.len() {
                for v in [0x00, 0x01, 0x03, 0x7f, 0xff] {
                    let mut b = bytes.to_vec();
                    b[i] = v;
                    let _ = parse_messages(&b);
                }
            }
        }
    }
}
