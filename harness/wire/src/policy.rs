//! Netlink attribute policies as the kernel describes them (`enum netlink_attribute_type`,
//! `NL_POLICY_TYPE_ATTR_*` in `include/uapi/linux/netlink.h`): in an extended ACK
//! (`NLMSGERR_ATTR_POLICY`) and in nlctrl `CTRL_CMD_GETPOLICY` dumps (see [`crate::genl`]).

use std::fmt;

use crate::nl::{AttrWriter, Attrs, NlError};

/// Policy attribute: unused.
pub const NL_POLICY_TYPE_ATTR_UNSPEC: u16 = 0;
/// Policy attribute: `enum netlink_attribute_type` (u32).
pub const NL_POLICY_TYPE_ATTR_TYPE: u16 = 1;
/// Policy attribute: minimum value of a signed integer (s64).
pub const NL_POLICY_TYPE_ATTR_MIN_VALUE_S: u16 = 2;
/// Policy attribute: maximum value of a signed integer (s64).
pub const NL_POLICY_TYPE_ATTR_MAX_VALUE_S: u16 = 3;
/// Policy attribute: minimum value of an unsigned integer (u64).
pub const NL_POLICY_TYPE_ATTR_MIN_VALUE_U: u16 = 4;
/// Policy attribute: maximum value of an unsigned integer (u64).
pub const NL_POLICY_TYPE_ATTR_MAX_VALUE_U: u16 = 5;
/// Policy attribute: minimum length of a binary attribute (u32).
pub const NL_POLICY_TYPE_ATTR_MIN_LENGTH: u16 = 6;
/// Policy attribute: maximum length of a binary attribute (u32).
pub const NL_POLICY_TYPE_ATTR_MAX_LENGTH: u16 = 7;
/// Policy attribute: policy index of a nested attribute's content (u32).
pub const NL_POLICY_TYPE_ATTR_POLICY_IDX: u16 = 8;
/// Policy attribute: highest attribute type inside a nest (u32).
pub const NL_POLICY_TYPE_ATTR_POLICY_MAXTYPE: u16 = 9;
/// Policy attribute: valid bits of a bitfield32 (u32).
pub const NL_POLICY_TYPE_ATTR_BITFIELD32_MASK: u16 = 10;
/// Policy attribute: padding for 64-bit alignment.
pub const NL_POLICY_TYPE_ATTR_PAD: u16 = 11;
/// Policy attribute: valid bits of an unsigned integer (u64).
pub const NL_POLICY_TYPE_ATTR_MASK: u16 = 12;

/// `enum netlink_attribute_type`: what an attribute must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NlAttrType {
    /// `NL_ATTR_TYPE_INVALID` (0).
    Invalid,
    /// `NL_ATTR_TYPE_FLAG`: present or not.
    Flag,
    /// `NL_ATTR_TYPE_U8`.
    U8,
    /// `NL_ATTR_TYPE_U16`.
    U16,
    /// `NL_ATTR_TYPE_U32`.
    U32,
    /// `NL_ATTR_TYPE_U64`.
    U64,
    /// `NL_ATTR_TYPE_S8`.
    S8,
    /// `NL_ATTR_TYPE_S16`.
    S16,
    /// `NL_ATTR_TYPE_S32`.
    S32,
    /// `NL_ATTR_TYPE_S64`.
    S64,
    /// `NL_ATTR_TYPE_BINARY`.
    Binary,
    /// `NL_ATTR_TYPE_STRING`.
    String,
    /// `NL_ATTR_TYPE_NUL_STRING`.
    NulString,
    /// `NL_ATTR_TYPE_NESTED`.
    Nested,
    /// `NL_ATTR_TYPE_NESTED_ARRAY`.
    NestedArray,
    /// `NL_ATTR_TYPE_BITFIELD32`.
    Bitfield32,
    /// `NL_ATTR_TYPE_SINT` (variable-size signed).
    Sint,
    /// `NL_ATTR_TYPE_UINT` (variable-size unsigned).
    Uint,
    /// A type this crate does not know.
    Unknown(u32),
}

const NL_ATTR_TYPES: [(NlAttrType, &str); 18] = [
    (NlAttrType::Invalid, "invalid"),
    (NlAttrType::Flag, "flag"),
    (NlAttrType::U8, "u8"),
    (NlAttrType::U16, "u16"),
    (NlAttrType::U32, "u32"),
    (NlAttrType::U64, "u64"),
    (NlAttrType::S8, "s8"),
    (NlAttrType::S16, "s16"),
    (NlAttrType::S32, "s32"),
    (NlAttrType::S64, "s64"),
    (NlAttrType::Binary, "binary"),
    (NlAttrType::String, "string"),
    (NlAttrType::NulString, "nul-string"),
    (NlAttrType::Nested, "nested"),
    (NlAttrType::NestedArray, "nested-array"),
    (NlAttrType::Bitfield32, "bitfield32"),
    (NlAttrType::Sint, "sint"),
    (NlAttrType::Uint, "uint"),
];

impl From<u32> for NlAttrType {
    fn from(value: u32) -> Self {
        usize::try_from(value)
            .ok()
            .and_then(|i| NL_ATTR_TYPES.get(i))
            .map_or(Self::Unknown(value), |(t, _)| *t)
    }
}

impl From<NlAttrType> for u32 {
    fn from(value: NlAttrType) -> Self {
        match value {
            NlAttrType::Unknown(n) => n,
            known => NL_ATTR_TYPES
                .iter()
                .position(|(t, _)| *t == known)
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(0),
        }
    }
}

impl fmt::Display for NlAttrType {
    /// Lower-case YNL spelling (`u8`, `nested`, ...); unknown types as their number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(n) => write!(f, "{n}"),
            known => {
                let name = NL_ATTR_TYPES
                    .iter()
                    .find(|(t, _)| t == known)
                    .map_or("?", |(_, n)| n);
                f.write_str(name)
            }
        }
    }
}

/// The policy of one attribute: its type and, when the kernel gives them, its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPolicy {
    /// `NL_POLICY_TYPE_ATTR_TYPE`.
    pub attr_type: NlAttrType,
    /// `NL_POLICY_TYPE_ATTR_MIN_VALUE_S`.
    pub min_value_s: Option<i64>,
    /// `NL_POLICY_TYPE_ATTR_MAX_VALUE_S`.
    pub max_value_s: Option<i64>,
    /// `NL_POLICY_TYPE_ATTR_MIN_VALUE_U`.
    pub min_value_u: Option<u64>,
    /// `NL_POLICY_TYPE_ATTR_MAX_VALUE_U`.
    pub max_value_u: Option<u64>,
    /// `NL_POLICY_TYPE_ATTR_MIN_LENGTH`.
    pub min_length: Option<u32>,
    /// `NL_POLICY_TYPE_ATTR_MAX_LENGTH`.
    pub max_length: Option<u32>,
    /// `NL_POLICY_TYPE_ATTR_POLICY_IDX`: where the nest's own policy is in the dump.
    pub policy_idx: Option<u32>,
    /// `NL_POLICY_TYPE_ATTR_POLICY_MAXTYPE`.
    pub policy_maxtype: Option<u32>,
    /// `NL_POLICY_TYPE_ATTR_BITFIELD32_MASK`.
    pub bitfield32_mask: Option<u32>,
    /// `NL_POLICY_TYPE_ATTR_MASK`.
    pub mask: Option<u64>,
    /// Attributes this crate does not know, kept raw (type with flags, payload).
    pub unknown: Vec<(u16, Vec<u8>)>,
}

impl AttrPolicy {
    /// A policy of the given type with no limits.
    pub fn new(attr_type: NlAttrType) -> Self {
        Self {
            attr_type,
            min_value_s: None,
            max_value_s: None,
            min_value_u: None,
            max_value_u: None,
            min_length: None,
            max_length: None,
            policy_idx: None,
            policy_maxtype: None,
            bitfield32_mask: None,
            mask: None,
            unknown: Vec::new(),
        }
    }

    /// Decodes the `NL_POLICY_TYPE_ATTR_*` attributes of a policy nest's payload.
    pub fn decode(payload: &[u8]) -> Result<Self, NlError> {
        Self::decode_attrs(Attrs::new(payload))
    }

    pub(crate) fn decode_attrs(attrs: Attrs<'_>) -> Result<Self, NlError> {
        let mut policy = Self::new(NlAttrType::Invalid);
        let mut seen_type = false;
        for attr in attrs {
            let attr = attr?;
            match attr.attr_type {
                NL_POLICY_TYPE_ATTR_TYPE => {
                    policy.attr_type = attr.as_u32()?.into();
                    seen_type = true;
                }
                NL_POLICY_TYPE_ATTR_MIN_VALUE_S => policy.min_value_s = Some(attr.as_i64()?),
                NL_POLICY_TYPE_ATTR_MAX_VALUE_S => policy.max_value_s = Some(attr.as_i64()?),
                NL_POLICY_TYPE_ATTR_MIN_VALUE_U => policy.min_value_u = Some(attr.as_u64()?),
                NL_POLICY_TYPE_ATTR_MAX_VALUE_U => policy.max_value_u = Some(attr.as_u64()?),
                NL_POLICY_TYPE_ATTR_MIN_LENGTH => policy.min_length = Some(attr.as_u32()?),
                NL_POLICY_TYPE_ATTR_MAX_LENGTH => policy.max_length = Some(attr.as_u32()?),
                NL_POLICY_TYPE_ATTR_POLICY_IDX => policy.policy_idx = Some(attr.as_u32()?),
                NL_POLICY_TYPE_ATTR_POLICY_MAXTYPE => {
                    policy.policy_maxtype = Some(attr.as_u32()?);
                }
                NL_POLICY_TYPE_ATTR_BITFIELD32_MASK => {
                    policy.bitfield32_mask = Some(attr.as_u32()?);
                }
                NL_POLICY_TYPE_ATTR_MASK => policy.mask = Some(attr.as_u64()?),
                NL_POLICY_TYPE_ATTR_PAD => {}
                _ => policy.unknown.push(attr.to_raw()),
            }
        }
        if !seen_type {
            return Err(NlError::Missing {
                attr: "NL_POLICY_TYPE_ATTR_TYPE",
                context: "an attribute policy",
            });
        }
        Ok(policy)
    }

    /// Writes the attributes in the kernel's order (limits first, the type last).
    pub fn encode_attrs(&self, w: &mut AttrWriter) {
        if let Some(v) = self.min_value_s {
            w.put_i64(NL_POLICY_TYPE_ATTR_MIN_VALUE_S, v);
        }
        if let Some(v) = self.max_value_s {
            w.put_i64(NL_POLICY_TYPE_ATTR_MAX_VALUE_S, v);
        }
        if let Some(v) = self.min_value_u {
            w.put_u64(NL_POLICY_TYPE_ATTR_MIN_VALUE_U, v);
        }
        if let Some(v) = self.max_value_u {
            w.put_u64(NL_POLICY_TYPE_ATTR_MAX_VALUE_U, v);
        }
        if let Some(v) = self.min_length {
            w.put_u32(NL_POLICY_TYPE_ATTR_MIN_LENGTH, v);
        }
        if let Some(v) = self.max_length {
            w.put_u32(NL_POLICY_TYPE_ATTR_MAX_LENGTH, v);
        }
        if let Some(v) = self.policy_idx {
            w.put_u32(NL_POLICY_TYPE_ATTR_POLICY_IDX, v);
        }
        if let Some(v) = self.policy_maxtype {
            w.put_u32(NL_POLICY_TYPE_ATTR_POLICY_MAXTYPE, v);
        }
        if let Some(v) = self.bitfield32_mask {
            w.put_u32(NL_POLICY_TYPE_ATTR_BITFIELD32_MASK, v);
        }
        if let Some(v) = self.mask {
            w.put_u64(NL_POLICY_TYPE_ATTR_MASK, v);
        }
        w.put_u32(NL_POLICY_TYPE_ATTR_TYPE, self.attr_type.into());
        for (raw_type, payload) in &self.unknown {
            w.put(*raw_type, payload);
        }
    }
}

impl fmt::Display for AttrPolicy {
    /// E.g. `u16 0..=65535`, `binary len 16..=16`, `nested (policy 1, maxtype 7)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr_type)?;
        if self.min_value_u.is_some() || self.max_value_u.is_some() {
            write!(f, " {}..={}", opt(self.min_value_u), opt(self.max_value_u))?;
        }
        if self.min_value_s.is_some() || self.max_value_s.is_some() {
            write!(f, " {}..={}", opt(self.min_value_s), opt(self.max_value_s))?;
        }
        if self.min_length.is_some() || self.max_length.is_some() {
            write!(
                f,
                " len {}..={}",
                opt(self.min_length),
                opt(self.max_length)
            )?;
        }
        if let Some(mask) = self.mask {
            write!(f, " mask {mask:#x}")?;
        }
        if let Some(mask) = self.bitfield32_mask {
            write!(f, " mask {mask:#x}")?;
        }
        if let Some(idx) = self.policy_idx {
            write!(f, " (policy {idx}, maxtype {})", opt(self.policy_maxtype))?;
        }
        Ok(())
    }
}

fn opt<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_type_numbers_round_trip() {
        for n in 0..20u32 {
            assert_eq!(u32::from(NlAttrType::from(n)), n);
        }
        assert_eq!(NlAttrType::from(13), NlAttrType::Nested);
        assert_eq!(NlAttrType::from(17), NlAttrType::Uint);
        assert_eq!(NlAttrType::from(99), NlAttrType::Unknown(99));
        assert_eq!(NlAttrType::S32.to_string(), "s32");
        assert_eq!(NlAttrType::Unknown(99).to_string(), "99");
    }

    #[test]
    fn policy_round_trip_and_display() {
        let policy = AttrPolicy {
            min_value_s: Some(-2_147_483_648),
            max_value_s: Some(2_147_483_647),
            ..AttrPolicy::new(NlAttrType::S32)
        };
        let mut w = AttrWriter::new();
        policy.encode_attrs(&mut w);
        assert_eq!(AttrPolicy::decode(w.as_bytes()), Ok(policy.clone()));
        assert_eq!(policy.to_string(), "s32 -2147483648..=2147483647");
    }

    #[test]
    fn policy_without_type_is_an_error() {
        let mut w = AttrWriter::new();
        w.put_u32(NL_POLICY_TYPE_ATTR_MIN_LENGTH, 4);
        assert_eq!(
            AttrPolicy::decode(w.as_bytes()).unwrap_err().to_string(),
            "find NL_POLICY_TYPE_ATTR_TYPE in an attribute policy: it is missing"
        );
    }
}
