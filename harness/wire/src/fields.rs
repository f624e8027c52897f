//! Length-gated structs the kernel grows at their end (`struct mptcp_info`, `struct
//! tcp_info`): a table of (name, byte offset, size) and the bytes the kernel returned. A field
//! is present only if it lies entirely inside those bytes; a field the running kernel does not
//! have reads as `None`, never as zero.

use std::fmt;

/// One field: name (uapi name without its prefix), byte offset, size in bytes (1, 2, 4, 8).
pub type Field = (&'static str, usize, usize);

/// Returned bytes read through a field table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gated {
    table: &'static [Field],
    bytes: Vec<u8>,
}

impl Gated {
    /// Wraps the bytes the kernel returned (exactly the returned length).
    pub fn new(table: &'static [Field], bytes: &[u8]) -> Self {
        Gated { table, bytes: bytes.to_vec() }
    }

    /// The bytes, as returned.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `name` is in the table.
    pub fn is_field(table: &[Field], name: &str) -> bool {
        table.iter().any(|(n, _, _)| *n == name)
    }

    /// A field's native-endian value; `None` if unknown or beyond the returned bytes.
    pub fn get(&self, name: &str) -> Option<u64> {
        let (_, off, size) = self.table.iter().find(|(n, _, _)| *n == name)?;
        let b = self.bytes.get(*off..off + size)?;
        let mut v = [0u8; 8];
        v[..*size].copy_from_slice(b);
        Some(u64::from_ne_bytes(v))
    }

    /// `name=value` for every present field, space-separated; `hex` names print as `0x..`.
    pub fn write(&self, f: &mut fmt::Formatter<'_>, hex: &[&str]) -> fmt::Result {
        let mut first = true;
        for (name, _, _) in self.table {
            if let Some(v) = self.get(name) {
                if !first {
                    f.write_str(" ")?;
                }
                first = false;
                if hex.contains(name) {
                    write!(f, "{name}={v:#x}")?;
                } else {
                    write!(f, "{name}={v}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[Field] = &[("a", 0, 1), ("b", 2, 2), ("c", 4, 4)];

    #[test]
    fn fields_beyond_the_returned_length_are_absent() {
        let g = Gated::new(T, &[7, 0, 0x34, 0x12, 1]);
        assert_eq!(g.get("a"), Some(7));
        assert_eq!(g.get("b"), Some(u64::from(u16::from_ne_bytes([0x34, 0x12]))));
        assert_eq!(g.get("c"), None, "only 1 of its 4 bytes was returned");
        assert_eq!(g.get("nope"), None);
        assert!(Gated::is_field(T, "c") && !Gated::is_field(T, "d"));
    }
}
