//! MIB counters as the kernel prints them in `/proc/net/netstat` and `/proc/net/snmp`.
//!
//! Both files are pairs of lines: a header line `Group: Name1 Name2 ...` followed by a value
//! line `Group: v1 v2 ...`. The harness names a counter the way `nstat` does: the group
//! prefix glued to the field name (`MPTcpExtMPJoinSynRx`, `TcpExtSyncookiesSent`,
//! `TcpAttemptFails`). A [`Snapshot`] maps those names to values; [`Snapshot::delta`] gives
//! what changed between two snapshots (gauges such as `MPTcpExtMPCurrEstab` may go down,
//! so deltas are signed).

use std::collections::BTreeMap;

/// Why a MIB text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MibError {
    /// A header line has no value line after it.
    #[error("parse MIB text: header `{group}` (line {line}) has no value line")]
    MissingValues { group: String, line: usize },
    /// The value line belongs to another group than its header.
    #[error("parse MIB text: line {line} has group `{found}`, expected `{expected}`")]
    GroupMismatch { expected: String, found: String, line: usize },
    /// Header and value lines have different numbers of fields.
    #[error("parse MIB text: group `{group}` has {names} names but {values} values (line {line})")]
    CountMismatch { group: String, names: usize, values: usize, line: usize },
    /// A value is not an integer.
    #[error("parse MIB text: `{value}` for `{name}` is not an integer (line {line})")]
    BadValue { name: String, value: String, line: usize },
}

/// All counters of one namespace at one instant, by nstat-style name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    values: BTreeMap<String, i64>,
}

impl Snapshot {
    /// Parses one or more MIB texts (e.g. netstat then snmp) into one snapshot.
    pub fn parse_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, MibError> {
        let mut snap = Snapshot::default();
        for text in texts {
            snap.add_text(text)?;
        }
        Ok(snap)
    }

    /// Adds the counters of one MIB text to this snapshot.
    pub fn add_text(&mut self, text: &str) -> Result<(), MibError> {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        while let Some((hline, header)) = lines.next() {
            let (group, names) = split_group(header);
            let Some((vline, values)) = lines.next() else {
                return Err(MibError::MissingValues { group: group.to_owned(), line: hline + 1 });
            };
            let (vgroup, values) = split_group(values);
            if vgroup != group {
                return Err(MibError::GroupMismatch {
                    expected: group.to_owned(),
                    found: vgroup.to_owned(),
                    line: vline + 1,
                });
            }
            let names: Vec<&str> = names.split_whitespace().collect();
            let values: Vec<&str> = values.split_whitespace().collect();
            if names.len() != values.len() {
                return Err(MibError::CountMismatch {
                    group: group.to_owned(),
                    names: names.len(),
                    values: values.len(),
                    line: vline + 1,
                });
            }
            for (name, value) in names.iter().zip(values) {
                let full = format!("{group}{name}");
                let v = value.parse::<i64>().map_err(|_| MibError::BadValue {
                    name: full.clone(),
                    value: value.to_owned(),
                    line: vline + 1,
                })?;
                self.values.insert(full, v);
            }
        }
        Ok(())
    }

    /// The value of a counter, if the kernel has it.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.values.get(name).copied()
    }

    /// Whether the kernel exposes a counter of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// All counter names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Every counter and its value, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// `later - self` for every counter present in `later` (a counter new in `later`
    /// counts from 0).
    pub fn delta(&self, later: &Snapshot) -> Snapshot {
        let values = later
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v - self.values.get(k).copied().unwrap_or(0)))
            .collect();
        Snapshot { values }
    }

    /// Counters whose value is not zero, sorted by name.
    pub fn non_zero(&self) -> impl Iterator<Item = (&str, i64)> {
        self.iter().filter(|(_, v)| *v != 0)
    }

    /// Builds a snapshot from explicit values (tests, replays).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        Snapshot { values: pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
    }
}

fn split_group(line: &str) -> (&str, &str) {
    match line.split_once(':') {
        Some((g, rest)) => (g.trim(), rest),
        None => ("", line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from `/proc/thread-self/net/netstat` of a fresh namespace on 6.18 after one
    /// MPTCP connection over loopback: the header line names the fields, the next line has
    /// their values in the same order.
    const NETSTAT: &str = "\
TcpExt: SyncookiesSent SyncookiesRecv TCPOFOQueue
TcpExt: 0 0 3
MPTcpExt: MPCapableSYNRX MPCapableSYNTX MPCapableSYNACKRX MPCapableACKRX MPCurrEstab
MPTcpExt: 1 1 1 1 2
";
    const SNMP: &str = "\
Tcp: RtoAlgorithm RtoMin AttemptFails ActiveOpens
Tcp: 1 200 0 2
";

    #[test]
    fn names_are_group_plus_field() {
        let s = Snapshot::parse_texts([NETSTAT, SNMP]).unwrap();
        assert_eq!(s.get("MPTcpExtMPCapableSYNRX"), Some(1));
        assert_eq!(s.get("MPTcpExtMPCurrEstab"), Some(2));
        assert_eq!(s.get("TcpExtTCPOFOQueue"), Some(3));
        assert_eq!(s.get("TcpAttemptFails"), Some(0));
        assert_eq!(s.get("TcpActiveOpens"), Some(2));
        assert!(!s.contains("MPTcpExtNoSuchCounter"));
        assert_eq!(s.names().count(), 12);
    }

    #[test]
    fn delta_is_signed_and_counts_new_names_from_zero() {
        let a = Snapshot::from_pairs([("MPTcpExtMPCurrEstab", 2), ("MPTcpExtAddAddr", 1)]);
        let b = Snapshot::from_pairs([
            ("MPTcpExtMPCurrEstab", 0),
            ("MPTcpExtAddAddr", 4),
            ("MPTcpExtNew", 7),
        ]);
        let d = a.delta(&b);
        assert_eq!(d.get("MPTcpExtMPCurrEstab"), Some(-2));
        assert_eq!(d.get("MPTcpExtAddAddr"), Some(3));
        assert_eq!(d.get("MPTcpExtNew"), Some(7));
        assert_eq!(d.non_zero().count(), 3);
    }

    #[test]
    fn malformed_texts_are_errors() {
        assert!(matches!(
            Snapshot::parse_texts(["MPTcpExt: A B\n"]),
            Err(MibError::MissingValues { line: 1, .. })
        ));
        assert!(matches!(
            Snapshot::parse_texts(["MPTcpExt: A B\nTcpExt: 1 2\n"]),
            Err(MibError::GroupMismatch { line: 2, .. })
        ));
        assert!(matches!(
            Snapshot::parse_texts(["MPTcpExt: A B\nMPTcpExt: 1\n"]),
            Err(MibError::CountMismatch { names: 2, values: 1, .. })
        ));
        assert!(matches!(
            Snapshot::parse_texts(["MPTcpExt: A\nMPTcpExt: x\n"]),
            Err(MibError::BadValue { .. })
        ));
        assert_eq!(Snapshot::parse_texts([""]).unwrap(), Snapshot::default());
    }
}
