//! `/proc/net/protocols` of one host: the `sockets` column counts the sockets in use per
//! protocol, per namespace (`sock_prot_inuse_get`). `diag.sh` reads the `MPTCP` row to see
//! that closed connections and listeners are accounted back to 0.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use crate::topology::Host;

/// The file, opened inside the host's namespace (procfs net files bind it at open).
#[derive(Debug)]
pub(crate) struct Protocols {
    file: File,
    host: String,
}

impl Protocols {
    /// Opens `/proc/thread-self/net/protocols` inside `host`.
    pub(crate) fn open(host: &Host) -> Result<Self, String> {
        let file = host
            .ns
            .run(|| File::open("/proc/thread-self/net/protocols"))
            .map_err(|e| format!("{}: open /proc/net/protocols: {e}", host.name))?
            .map_err(|e| format!("{}: open /proc/thread-self/net/protocols: {e}", host.name))?;
        Ok(Protocols { file, host: host.name.clone() })
    }

    /// The `sockets` column of `protocol`'s row (`MPTCP`, `MPTCPv6`, `TCP`), `None` if the
    /// kernel has no such row.
    pub(crate) fn sockets(&mut self, protocol: &str) -> Result<Option<u64>, String> {
        let mut text = String::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_string(&mut text))
            .map_err(|e| format!("{}: read /proc/net/protocols: {e}", self.host))?;
        parse_sockets(&text, protocol).map_err(|e| format!("{}: /proc/net/protocols: {e}", self.host))
    }
}

/// Reads the `sockets` column of `protocol`'s row from the file's text.
pub(crate) fn parse_sockets(text: &str, protocol: &str) -> Result<Option<u64>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split_whitespace().collect();
    let col = header.iter().position(|h| *h == "sockets").ok_or_else(|| format!("no `sockets` column in the header {header:?}"))?;
    for line in lines {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first() == Some(&protocol) {
            let cell = cells.get(col).ok_or_else(|| format!("row {protocol} has no column {col}"))?;
            return cell.parse().map(Some).map_err(|_| format!("row {protocol}: sockets {cell:?} is not a number"));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18, one MPTCP connection and its listener in a private namespace.
    const SAMPLE: &str = "\
protocol  size sockets  memory press maxhdr  slab module     cl co di ac io in de sh ss gs se re bi br ha uh gp em
MPTCPv6   2064      0     185   no       0   yes  kernel      y  y  y  n  y  y  y  y  y  y  y  y  n  n  y  y  y  n
UNIX-STREAM 1152      0      -1   NI       0   yes  kernel      y  n  n  n  n  n  n  n  n  n  n  n  n  n  n  n  n  n
MPTCP     1936      3     185   no       0   yes  kernel      y  y  y  n  y  y  y  y  y  y  y  y  n  n  y  y  y  n
TCP       2304      3     185   no     192   yes  kernel      y  y  y  y  y  y  y  y  y  y  y  y  n  y  y  y  y  y
";

    #[test]
    fn reads_the_sockets_column_of_a_row() {
        assert_eq!(parse_sockets(SAMPLE, "MPTCP"), Ok(Some(3)));
        assert_eq!(parse_sockets(SAMPLE, "MPTCPv6"), Ok(Some(0)));
        assert_eq!(parse_sockets(SAMPLE, "SCTP"), Ok(None));
        assert!(parse_sockets("protocol size\nMPTCP 1\n", "MPTCP").is_err());
    }
}
