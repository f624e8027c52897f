//! Generic netlink (`include/uapi/linux/genetlink.h`): `struct genlmsghdr` and the nlctrl
//! family (`GENL_ID_CTRL`), which resolves a family name to its id, operations and multicast
//! groups (`CTRL_CMD_GETFAMILY`) and describes the attributes each operation accepts
//! (`CTRL_CMD_GETPOLICY`).
//!
//! Decoders take the payload of a [`DataMessage`](crate::nl::DataMessage): `struct genlmsghdr`
//! followed by attributes.

use std::collections::BTreeMap;

use crate::nl::{AttrWriter, Attrs, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NlError, NlMsgHdr};
use crate::policy::AttrPolicy;

/// Size of `struct genlmsghdr`.
pub const GENL_HDRLEN: usize = 4;
/// Maximum length of a family name, NUL included.
pub const GENL_NAMSIZ: usize = 16;
/// Family id of the controller (nlctrl).
pub const GENL_ID_CTRL: u16 = 0x10;

/// Operation flag: needs `CAP_NET_ADMIN`.
pub const GENL_ADMIN_PERM: u32 = 0x01;
/// Operation flag: has a `do` handler.
pub const GENL_CMD_CAP_DO: u32 = 0x02;
/// Operation flag: has a `dump` handler.
pub const GENL_CMD_CAP_DUMP: u32 = 0x04;
/// Operation flag: has an attribute policy.
pub const GENL_CMD_CAP_HASPOL: u32 = 0x08;
/// Operation flag: needs `CAP_NET_ADMIN` in the namespace's user namespace.
pub const GENL_UNS_ADMIN_PERM: u32 = 0x10;

/// nlctrl command: unused.
pub const CTRL_CMD_UNSPEC: u8 = 0;
/// nlctrl command: a family (reply to `CTRL_CMD_GETFAMILY`, or a notification).
pub const CTRL_CMD_NEWFAMILY: u8 = 1;
/// nlctrl command: a family went away.
pub const CTRL_CMD_DELFAMILY: u8 = 2;
/// nlctrl command: look up a family.
pub const CTRL_CMD_GETFAMILY: u8 = 3;
/// nlctrl command: new operations.
pub const CTRL_CMD_NEWOPS: u8 = 4;
/// nlctrl command: deleted operations.
pub const CTRL_CMD_DELOPS: u8 = 5;
/// nlctrl command: get operations.
pub const CTRL_CMD_GETOPS: u8 = 6;
/// nlctrl command: new multicast group.
pub const CTRL_CMD_NEWMCAST_GRP: u8 = 7;
/// nlctrl command: deleted multicast group.
pub const CTRL_CMD_DELMCAST_GRP: u8 = 8;
/// nlctrl command: unused.
pub const CTRL_CMD_GETMCAST_GRP: u8 = 9;
/// nlctrl command: dump the attribute policies of a family.
pub const CTRL_CMD_GETPOLICY: u8 = 10;

/// nlctrl attribute: family id (u16).
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
/// nlctrl attribute: family name (string).
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// nlctrl attribute: family version (u32).
pub const CTRL_ATTR_VERSION: u16 = 3;
/// nlctrl attribute: user header size (u32).
pub const CTRL_ATTR_HDRSIZE: u16 = 4;
/// nlctrl attribute: highest attribute type (u32).
pub const CTRL_ATTR_MAXATTR: u16 = 5;
/// nlctrl attribute: operations (array of nests).
pub const CTRL_ATTR_OPS: u16 = 6;
/// nlctrl attribute: multicast groups (array of nests).
pub const CTRL_ATTR_MCAST_GROUPS: u16 = 7;
/// nlctrl attribute: policies (policy index -> attribute type -> policy).
pub const CTRL_ATTR_POLICY: u16 = 8;
/// nlctrl attribute: op -> policy index (`CTRL_ATTR_POLICY_DO` / `_DUMP`).
pub const CTRL_ATTR_OP_POLICY: u16 = 9;
/// nlctrl attribute: an operation id (u32), to restrict a policy dump.
pub const CTRL_ATTR_OP: u16 = 10;
/// Operation nest: id (u32).
pub const CTRL_ATTR_OP_ID: u16 = 1;
/// Operation nest: `GENL_*` flags (u32).
pub const CTRL_ATTR_OP_FLAGS: u16 = 2;
/// Multicast group nest: name (string).
pub const CTRL_ATTR_MCAST_GRP_NAME: u16 = 1;
/// Multicast group nest: id (u32).
pub const CTRL_ATTR_MCAST_GRP_ID: u16 = 2;
/// Op policy nest: policy index of the `do` handler (u32).
pub const CTRL_ATTR_POLICY_DO: u16 = 1;
/// Op policy nest: policy index of the `dump` handler (u32).
pub const CTRL_ATTR_POLICY_DUMP: u16 = 2;

/// Version this crate puts in nlctrl requests.
const CTRL_REQUEST_VERSION: u8 = 1;
/// Version the kernel puts in nlctrl replies.
const CTRL_REPLY_VERSION: u8 = 2;

/// A generic netlink payload that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenlError {
    /// The payload is shorter than `struct genlmsghdr`.
    #[error("read struct genlmsghdr: payload has {len} bytes, need 4")]
    TruncatedHeader {
        /// Payload size.
        len: usize,
    },
    /// The message carries another command than the one decoded.
    #[error("decode {context}: genl command is {found}, expected {expected}")]
    UnexpectedCommand {
        /// What was being decoded.
        context: &'static str,
        /// Command found.
        found: u8,
        /// Command expected.
        expected: u8,
    },
    /// An attribute is malformed or missing.
    #[error("decode {context}: {source}")]
    Attr {
        /// What was being decoded (`"CTRL_ATTR_OPS"`, ...).
        context: &'static str,
        /// The framing error.
        source: NlError,
    },
}

fn in_ctx(context: &'static str) -> impl Fn(NlError) -> GenlError {
    move |source| GenlError::Attr { context, source }
}

/// `struct genlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct GenlMsgHdr {
    /// Command (or, for `mptcp_pm` events, the event type).
    pub cmd: u8,
    /// Family interface version.
    pub version: u8,
    /// Reserved, 0.
    pub reserved: u16,
}

impl GenlMsgHdr {
    /// A header with `reserved` 0.
    pub fn new(cmd: u8, version: u8) -> Self {
        Self {
            cmd,
            version,
            reserved: 0,
        }
    }

    /// Splits a generic netlink payload into its header and the attribute bytes after it.
    pub fn parse(payload: &[u8]) -> Result<(Self, &[u8]), GenlError> {
        match payload {
            [cmd, version, r0, r1, attrs @ ..] => Ok((
                Self {
                    cmd: *cmd,
                    version: *version,
                    reserved: u16::from_ne_bytes([*r0, *r1]),
                },
                attrs,
            )),
            _ => Err(GenlError::TruncatedHeader { len: payload.len() }),
        }
    }

    /// The 4 header bytes.
    pub fn to_bytes(&self) -> [u8; GENL_HDRLEN] {
        let r = self.reserved.to_ne_bytes();
        [self.cmd, self.version, r[0], r[1]]
    }

    /// An attribute writer that already holds this header.
    pub fn writer(&self) -> AttrWriter {
        AttrWriter::with_header(&self.to_bytes())
    }
}

/// Encodes a complete generic netlink message: `nlmsghdr`, then `body` (from
/// [`GenlMsgHdr::writer`]).
pub fn encode_message(family_id: u16, flags: u16, seq: u32, body: &AttrWriter) -> Vec<u8> {
    NlMsgHdr::new(family_id, flags, seq).encode_message(body.as_bytes())
}

/// `CTRL_CMD_GETFAMILY` for a family name (`NLM_F_REQUEST | NLM_F_ACK`).
pub fn get_family_request(name: &str, seq: u32) -> Vec<u8> {
    let mut w = GenlMsgHdr::new(CTRL_CMD_GETFAMILY, CTRL_REQUEST_VERSION).writer();
    w.put_str(CTRL_ATTR_FAMILY_NAME, name);
    encode_message(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, seq, &w)
}

/// An operation of a family (`CTRL_ATTR_OPS` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Op {
    /// Command number.
    pub id: u32,
    /// `GENL_*` flags.
    pub flags: u32,
}

impl Op {
    /// True if the command has a `do` handler.
    pub fn can_do(&self) -> bool {
        self.flags & GENL_CMD_CAP_DO != 0
    }

    /// True if the command has a `dump` handler.
    pub fn can_dump(&self) -> bool {
        self.flags & GENL_CMD_CAP_DUMP != 0
    }

    /// True if the command needs `CAP_NET_ADMIN` (globally or in the namespace).
    pub fn needs_admin(&self) -> bool {
        self.flags & (GENL_ADMIN_PERM | GENL_UNS_ADMIN_PERM) != 0
    }
}

/// A multicast group of a family (`CTRL_ATTR_MCAST_GROUPS` entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct McastGroup {
    /// Group name (`mptcp_pm_events`).
    pub name: String,
    /// Group id, for `NETLINK_ADD_MEMBERSHIP`.
    pub id: u32,
}

/// A family as described by nlctrl (`CTRL_CMD_NEWFAMILY`, the reply to `CTRL_CMD_GETFAMILY`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FamilyInfo {
    /// `CTRL_ATTR_FAMILY_ID`: the `nlmsg_type` of the family's messages.
    pub id: u16,
    /// `CTRL_ATTR_FAMILY_NAME`.
    pub name: String,
    /// `CTRL_ATTR_VERSION`.
    pub version: u32,
    /// `CTRL_ATTR_HDRSIZE`.
    pub hdrsize: u32,
    /// `CTRL_ATTR_MAXATTR`.
    pub maxattr: u32,
    /// `CTRL_ATTR_OPS`, in the kernel's order.
    pub ops: Vec<Op>,
    /// `CTRL_ATTR_MCAST_GROUPS`, in the kernel's order.
    pub mcast_groups: Vec<McastGroup>,
}

impl FamilyInfo {
    /// Decodes a `CTRL_CMD_NEWFAMILY` payload.
    pub fn decode(payload: &[u8]) -> Result<Self, GenlError> {
        let (hdr, attrs) = GenlMsgHdr::parse(payload)?;
        if hdr.cmd != CTRL_CMD_NEWFAMILY {
            return Err(GenlError::UnexpectedCommand {
                context: "an nlctrl family",
                found: hdr.cmd,
                expected: CTRL_CMD_NEWFAMILY,
            });
        }
        let base = crate::nl::NLMSG_HDRLEN + GENL_HDRLEN;
        let mut info = Self::default();
        let (mut has_id, mut has_name) = (false, false);
        for attr in Attrs::with_base(attrs, base) {
            let attr = attr.map_err(in_ctx("an nlctrl family"))?;
            match attr.attr_type {
                CTRL_ATTR_FAMILY_ID => {
                    info.id = attr.as_u16().map_err(in_ctx("CTRL_ATTR_FAMILY_ID"))?;
                    has_id = true;
                }
                CTRL_ATTR_FAMILY_NAME => {
                    info.name = attr
                        .as_str()
                        .map_err(in_ctx("CTRL_ATTR_FAMILY_NAME"))?
                        .to_owned();
                    has_name = true;
                }
                CTRL_ATTR_VERSION => {
                    info.version = attr.as_u32().map_err(in_ctx("CTRL_ATTR_VERSION"))?;
                }
                CTRL_ATTR_HDRSIZE => {
                    info.hdrsize = attr.as_u32().map_err(in_ctx("CTRL_ATTR_HDRSIZE"))?;
                }
                CTRL_ATTR_MAXATTR => {
                    info.maxattr = attr.as_u32().map_err(in_ctx("CTRL_ATTR_MAXATTR"))?;
                }
                CTRL_ATTR_OPS => {
                    info.ops = decode_ops(attr.nested()).map_err(in_ctx("CTRL_ATTR_OPS"))?;
                }
                CTRL_ATTR_MCAST_GROUPS => {
                    info.mcast_groups =
                        decode_groups(attr.nested()).map_err(in_ctx("CTRL_ATTR_MCAST_GROUPS"))?;
                }
                _ => {}
            }
        }
        let missing = |attr| GenlError::Attr {
            context: "an nlctrl family",
            source: NlError::Missing {
                attr,
                context: "CTRL_CMD_NEWFAMILY",
            },
        };
        if !has_id {
            return Err(missing("CTRL_ATTR_FAMILY_ID"));
        }
        if !has_name {
            return Err(missing("CTRL_ATTR_FAMILY_NAME"));
        }
        Ok(info)
    }

    /// Encodes the `CTRL_CMD_NEWFAMILY` payload the kernel would send (its attribute order).
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut w = GenlMsgHdr::new(CTRL_CMD_NEWFAMILY, CTRL_REPLY_VERSION).writer();
        w.put_str(CTRL_ATTR_FAMILY_NAME, &self.name)
            .put_u16(CTRL_ATTR_FAMILY_ID, self.id)
            .put_u32(CTRL_ATTR_VERSION, self.version)
            .put_u32(CTRL_ATTR_HDRSIZE, self.hdrsize)
            .put_u32(CTRL_ATTR_MAXATTR, self.maxattr);
        // The kernel opens these nests without NLA_F_NESTED.
        if !self.ops.is_empty() {
            let ops = w.begin_nested_noflag(CTRL_ATTR_OPS);
            for (i, op) in (1u16..).zip(&self.ops) {
                let nest = w.begin_nested_noflag(i);
                w.put_u32(CTRL_ATTR_OP_ID, op.id)
                    .put_u32(CTRL_ATTR_OP_FLAGS, op.flags);
                w.end_nested(nest);
            }
            w.end_nested(ops);
        }
        if !self.mcast_groups.is_empty() {
            let groups = w.begin_nested_noflag(CTRL_ATTR_MCAST_GROUPS);
            for (i, group) in (1u16..).zip(&self.mcast_groups) {
                let nest = w.begin_nested_noflag(i);
                w.put_u32(CTRL_ATTR_MCAST_GRP_ID, group.id)
                    .put_str(CTRL_ATTR_MCAST_GRP_NAME, &group.name);
                w.end_nested(nest);
            }
            w.end_nested(groups);
        }
        w.into_bytes()
    }

    /// The id of the multicast group with this name.
    pub fn mcast_group(&self, name: &str) -> Option<u32> {
        self.mcast_groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.id)
    }

    /// The operation with this command number.
    pub fn op(&self, cmd: u32) -> Option<&Op> {
        self.ops.iter().find(|op| op.id == cmd)
    }
}

fn decode_ops(attrs: Attrs<'_>) -> Result<Vec<Op>, NlError> {
    let mut ops = Vec::new();
    for entry in attrs {
        let (mut id, mut flags) = (None, 0);
        for attr in entry?.nested() {
            let attr = attr?;
            match attr.attr_type {
                CTRL_ATTR_OP_ID => id = Some(attr.as_u32()?),
                CTRL_ATTR_OP_FLAGS => flags = attr.as_u32()?,
                _ => {}
            }
        }
        let id = id.ok_or(NlError::Missing {
            attr: "CTRL_ATTR_OP_ID",
            context: "an operation",
        })?;
        ops.push(Op { id, flags });
    }
    Ok(ops)
}

fn decode_groups(attrs: Attrs<'_>) -> Result<Vec<McastGroup>, NlError> {
    let mut groups = Vec::new();
    for entry in attrs {
        let (mut name, mut id) = (None, None);
        for attr in entry?.nested() {
            let attr = attr?;
            match attr.attr_type {
                CTRL_ATTR_MCAST_GRP_NAME => name = Some(attr.as_str()?.to_owned()),
                CTRL_ATTR_MCAST_GRP_ID => id = Some(attr.as_u32()?),
                _ => {}
            }
        }
        let context = "a multicast group";
        groups.push(McastGroup {
            name: name.ok_or(NlError::Missing {
                attr: "CTRL_ATTR_MCAST_GRP_NAME",
                context,
            })?,
            id: id.ok_or(NlError::Missing {
                attr: "CTRL_ATTR_MCAST_GRP_ID",
                context,
            })?,
        });
    }
    Ok(groups)
}

/// `CTRL_CMD_GETPOLICY` dump request for a family, optionally for one operation only
/// (`NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP`).
pub fn get_policy_request(family_id: u16, op: Option<u8>, seq: u32) -> Vec<u8> {
    let mut w = GenlMsgHdr::new(CTRL_CMD_GETPOLICY, CTRL_REQUEST_VERSION).writer();
    w.put_u16(CTRL_ATTR_FAMILY_ID, family_id);
    if let Some(op) = op {
        w.put_u32(CTRL_ATTR_OP, op.into());
    }
    encode_message(
        GENL_ID_CTRL,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP,
        seq,
        &w,
    )
}

/// Which policy an operation's handlers validate against (`CTRL_ATTR_OP_POLICY` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct OpPolicy {
    /// `CTRL_ATTR_POLICY_DO`: policy index of the `do` handler.
    pub do_policy: Option<u32>,
    /// `CTRL_ATTR_POLICY_DUMP`: policy index of the `dump` handler.
    pub dump_policy: Option<u32>,
}

/// A whole `CTRL_CMD_GETPOLICY` dump, gathered message by message.
///
/// Used to probe what the running kernel accepts, e.g. whether `MPTCP_PM_CMD_ADD_ADDR`
/// takes `MPTCP_PM_ADDR_ATTR_IF_IDX`: `dump.lookup(1, &[1, 7])`.
///
/// An attribute missing from the dump is not proof that the kernel rejects it: the kernel
/// skips attributes whose policy it cannot describe. Linux 6.18 leaves
/// `MPTCP_PM_ADDR_ATTR_ADDR4` (a `be32`) out of the `mptcp_pm` dump, yet accepts it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyDump {
    /// `CTRL_ATTR_FAMILY_ID` of the replies.
    pub family_id: Option<u16>,
    /// Operation -> policy indices.
    pub ops: BTreeMap<u32, OpPolicy>,
    /// (policy index, attribute type) -> policy.
    pub policies: BTreeMap<(u32, u16), AttrPolicy>,
}

impl PolicyDump {
    /// Adds one `CTRL_CMD_GETPOLICY` reply payload to the dump.
    pub fn add_reply(&mut self, payload: &[u8]) -> Result<(), GenlError> {
        let (hdr, attrs) = GenlMsgHdr::parse(payload)?;
        if hdr.cmd != CTRL_CMD_GETPOLICY {
            return Err(GenlError::UnexpectedCommand {
                context: "a policy dump",
                found: hdr.cmd,
                expected: CTRL_CMD_GETPOLICY,
            });
        }
        let base = crate::nl::NLMSG_HDRLEN + GENL_HDRLEN;
        for attr in Attrs::with_base(attrs, base) {
            let attr = attr.map_err(in_ctx("a policy dump"))?;
            match attr.attr_type {
                CTRL_ATTR_FAMILY_ID => {
                    self.family_id = Some(attr.as_u16().map_err(in_ctx("CTRL_ATTR_FAMILY_ID"))?);
                }
                CTRL_ATTR_OP_POLICY => {
                    self.add_op_policies(attr.nested())
                        .map_err(in_ctx("CTRL_ATTR_OP_POLICY"))?;
                }
                CTRL_ATTR_POLICY => {
                    self.add_policies(attr.nested())
                        .map_err(in_ctx("CTRL_ATTR_POLICY"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn add_op_policies(&mut self, attrs: Attrs<'_>) -> Result<(), NlError> {
        for op in attrs {
            let op = op?;
            let entry = self.ops.entry(op.attr_type.into()).or_default();
            for attr in op.nested() {
                let attr = attr?;
                match attr.attr_type {
                    CTRL_ATTR_POLICY_DO => entry.do_policy = Some(attr.as_u32()?),
                    CTRL_ATTR_POLICY_DUMP => entry.dump_policy = Some(attr.as_u32()?),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn add_policies(&mut self, attrs: Attrs<'_>) -> Result<(), NlError> {
        for table in attrs {
            let table = table?;
            for entry in table.nested() {
                let entry = entry?;
                let policy = AttrPolicy::decode_attrs(entry.nested())?;
                self.policies
                    .insert((table.attr_type.into(), entry.attr_type), policy);
            }
        }
        Ok(())
    }

    /// Builds a dump from every reply payload (data messages only; skip `NLMSG_DONE`).
    pub fn from_replies<'a>(
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, GenlError> {
        let mut dump = Self::default();
        for payload in payloads {
            dump.add_reply(payload)?;
        }
        Ok(dump)
    }

    /// The policy of `attr_type` in policy table `policy_idx`.
    pub fn attr(&self, policy_idx: u32, attr_type: u16) -> Option<&AttrPolicy> {
        self.policies.get(&(policy_idx, attr_type))
    }

    /// The policy indices of an operation.
    pub fn op(&self, cmd: u32) -> Option<OpPolicy> {
        self.ops.get(&cmd).copied()
    }

    /// Follows `path` (attribute types, outermost first) from the `do` policy of `cmd`,
    /// through nested policies; `None` if any step is not in the dump.
    pub fn lookup(&self, cmd: u32, path: &[u16]) -> Option<&AttrPolicy> {
        let mut idx = self.op(cmd)?.do_policy?;
        let (last, nests) = path.split_last()?;
        for attr_type in nests {
            idx = self.attr(idx, *attr_type)?.policy_idx?;
        }
        self.attr(idx, *last)
    }

    /// Encodes the dump as the kernel sends it: one payload per operation, then one per
    /// (policy index, attribute type).
    pub fn encode_payloads(&self) -> Vec<Vec<u8>> {
        let start = || {
            let mut w = GenlMsgHdr::new(CTRL_CMD_GETPOLICY, CTRL_REPLY_VERSION).writer();
            if let Some(id) = self.family_id {
                w.put_u16(CTRL_ATTR_FAMILY_ID, id);
            }
            w
        };
        let mut out = Vec::new();
        for (cmd, op) in &self.ops {
            let mut w = start();
            w.nested(CTRL_ATTR_OP_POLICY, |w| {
                w.nested(u16::try_from(*cmd).unwrap_or(u16::MAX), |w| {
                    if let Some(idx) = op.do_policy {
                        w.put_u32(CTRL_ATTR_POLICY_DO, idx);
                    }
                    if let Some(idx) = op.dump_policy {
                        w.put_u32(CTRL_ATTR_POLICY_DUMP, idx);
                    }
                });
            });
            out.push(w.into_bytes());
        }
        for ((idx, attr_type), policy) in &self.policies {
            let mut w = start();
            w.nested(CTRL_ATTR_POLICY, |w| {
                w.nested(u16::try_from(*idx).unwrap_or(u16::MAX), |w| {
                    w.nested(*attr_type, |w| policy.encode_attrs(w));
                });
            });
            out.push(w.into_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::nl::{NlMessage, parse_messages};
    use crate::policy::NlAttrType;

    fn data_payload(bytes: &[u8]) -> Vec<u8> {
        match NlMessage::decode(bytes) {
            Ok(NlMessage::Data(m)) => m.payload,
            other => panic!("expected a data message, got {other:?}"),
        }
    }

    #[test]
    fn get_family_request_matches_capture() {
        assert_eq!(get_family_request("mptcp_pm", 1), GETFAMILY_REQUEST);
    }

    fn mptcp_pm_family() -> FamilyInfo {
        let admin_do = GENL_CMD_CAP_DO | GENL_CMD_CAP_HASPOL | GENL_UNS_ADMIN_PERM;
        let ops = (1..=11)
            .map(|id| Op {
                id,
                flags: match id {
                    3 => GENL_CMD_CAP_DO | GENL_CMD_CAP_DUMP | GENL_CMD_CAP_HASPOL,
                    6 => GENL_CMD_CAP_DO | GENL_CMD_CAP_HASPOL,
                    _ => admin_do,
                },
            })
            .collect();
        FamilyInfo {
            id: MPTCP_PM_FAMILY_ID,
            name: "mptcp_pm".into(),
            version: 1,
            hdrsize: 0,
            maxattr: 0,
            ops,
            mcast_groups: vec![
                McastGroup {
                    name: "mptcp_pm_cmds".into(),
                    id: 8,
                },
                McastGroup {
                    name: "mptcp_pm_events".into(),
                    id: MPTCP_PM_EVENTS_GROUP,
                },
            ],
        }
    }

    #[test]
    fn family_reply_decodes_and_reencodes() {
        let payload = data_payload(GETFAMILY_REPLY);
        let info = FamilyInfo::decode(&payload).unwrap();
        assert_eq!(info, mptcp_pm_family());
        assert_eq!(
            info.mcast_group("mptcp_pm_events"),
            Some(MPTCP_PM_EVENTS_GROUP)
        );
        let get_addr = info.op(3).unwrap();
        assert!(get_addr.can_dump() && get_addr.can_do() && !get_addr.needs_admin());
        assert!(info.op(1).unwrap().needs_admin());
        assert_eq!(info.encode_payload(), payload);
    }

    #[test]
    fn family_reply_errors() {
        assert_eq!(
            FamilyInfo::decode(&[3, 1]),
            Err(GenlError::TruncatedHeader { len: 2 })
        );
        let payload = data_payload(GETFAMILY_REPLY);
        // Cut inside CTRL_ATTR_OPS.
        let err = FamilyInfo::decode(&payload[..100]).unwrap_err();
        assert!(
            matches!(
                err,
                GenlError::Attr {
                    context: "an nlctrl family",
                    ..
                }
            ),
            "{err}"
        );
        // No family id: only the name attribute kept.
        let err = FamilyInfo::decode(&payload[..20]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "decode an nlctrl family: find CTRL_ATTR_FAMILY_ID in CTRL_CMD_NEWFAMILY: it is missing"
        );
    }

    #[test]
    fn get_policy_request_matches_capture() {
        assert_eq!(
            get_policy_request(MPTCP_PM_FAMILY_ID, Some(1), 2),
            GETPOLICY_ADD_ADDR_REQUEST
        );
    }

    fn add_addr_policy() -> PolicyDump {
        let u = |attr_type, max| AttrPolicy {
            min_value_u: Some(0),
            max_value_u: Some(max),
            ..AttrPolicy::new(attr_type)
        };
        let policies = BTreeMap::from([
            (
                (0, 1),
                AttrPolicy {
                    policy_idx: Some(1),
                    policy_maxtype: Some(7),
                    ..AttrPolicy::new(NlAttrType::Nested)
                },
            ),
            ((1, 1), u(NlAttrType::U16, 0xffff)),
            ((1, 2), u(NlAttrType::U8, 0xff)),
            // (1, 3) MPTCP_PM_ADDR_ATTR_ADDR4 is absent: the kernel cannot describe a be32.
            (
                (1, 4),
                AttrPolicy {
                    min_length: Some(16),
                    max_length: Some(16),
                    ..AttrPolicy::new(NlAttrType::Binary)
                },
            ),
            ((1, 5), u(NlAttrType::U16, 0xffff)),
            ((1, 6), u(NlAttrType::U32, 0xffff_ffff)),
            (
                (1, 7),
                AttrPolicy {
                    min_value_s: Some(i32::MIN.into()),
                    max_value_s: Some(i32::MAX.into()),
                    ..AttrPolicy::new(NlAttrType::S32)
                },
            ),
        ]);
        PolicyDump {
            family_id: Some(MPTCP_PM_FAMILY_ID),
            ops: BTreeMap::from([(
                1,
                OpPolicy {
                    do_policy: Some(0),
                    dump_policy: None,
                },
            )]),
            policies,
        }
    }

    #[test]
    fn policy_dump_decodes_and_reencodes() {
        let mut payloads = Vec::new();
        for bytes in GETPOLICY_ADD_ADDR_REPLY_ALL {
            for msg in parse_messages(bytes).unwrap() {
                if let NlMessage::Data(m) = msg {
                    payloads.push(m.payload);
                }
            }
        }
        let dump = PolicyDump::from_replies(payloads.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(dump, add_addr_policy());
        assert_eq!(dump.encode_payloads(), payloads);

        // Probing: ADD_ADDR takes MPTCP_PM_ATTR_ADDR { MPTCP_PM_ADDR_ATTR_IF_IDX (s32) }.
        let if_idx = dump.lookup(1, &[1, 7]).unwrap();
        assert_eq!(if_idx.attr_type, NlAttrType::S32);
        assert_eq!(if_idx.to_string(), "s32 -2147483648..=2147483647");
        assert_eq!(
            dump.lookup(1, &[1, 4]).unwrap().to_string(),
            "binary len 16..=16"
        );
        assert_eq!(
            dump.lookup(1, &[1]).unwrap().to_string(),
            "nested (policy 1, maxtype 7)"
        );
        assert_eq!(
            dump.lookup(1, &[1, 3]),
            None,
            "ADDR4 is not described by 6.18"
        );
        assert_eq!(dump.lookup(1, &[2]), None);
        assert_eq!(dump.lookup(2, &[1]), None, "op not dumped");
    }

    #[test]
    fn policy_dump_errors() {
        let payload = data_payload(GETPOLICY_ADD_ADDR_REPLY_2);
        let mut dump = PolicyDump::default();
        let err = dump.add_reply(&payload[..payload.len() - 3]).unwrap_err();
        assert!(
            matches!(
                err,
                GenlError::Attr {
                    context: "a policy dump",
                    ..
                }
            ),
            "{err}"
        );
        let family = data_payload(GETFAMILY_REPLY);
        assert_eq!(
            dump.add_reply(&family),
            Err(GenlError::UnexpectedCommand {
                context: "a policy dump",
                found: CTRL_CMD_NEWFAMILY,
                expected: CTRL_CMD_GETPOLICY
            })
        );
    }
}
