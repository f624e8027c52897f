//! pcapng files (IETF draft-ietf-opsawg-pcapng), the subset a capture of a case's links needs:
//! one Section Header Block, one Interface Description Block per captured interface, and an
//! Enhanced Packet Block per packet. Wireshark and tshark read it and decode MPTCP options
//! from the TCP header (`tshark -r capture.pcapng -Y mptcp`).
//!
//! Everything is written little-endian (the byte-order magic says so; readers adapt) with
//! nanosecond timestamps (`if_tsresol` = 9). [`parse`] reads back what [`Writer`] writes (and
//! any little-endian pcapng with those block types), for tests.
//!
//! ```text
//! SHB  type 0x0A0D0D0A, len, magic 0x1A2B3C4D, version 1.0, section length -1, options, len
//! IDB  type 1, len, link type u16, reserved u16, snaplen u32, options (if_name, if_tsresol), len
//! EPB  type 6, len, interface id, ts high, ts low, captured len, original len, data (padded
//!      to 4), options (epb_flags: direction), len
//! ```

use std::io::{self, Write};

/// `LINKTYPE_ETHERNET`: frames with an Ethernet header (veth, and `lo`'s zero-MAC header).
pub const LINKTYPE_ETHERNET: u16 = 1;
/// `LINKTYPE_LINUX_SLL2`: Linux "cooked" capture v2 (an `any`-style capture).
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

/// Block type: Section Header Block.
pub const BLOCK_SHB: u32 = 0x0A0D_0D0A;
/// Block type: Interface Description Block.
pub const BLOCK_IDB: u32 = 0x0000_0001;
/// Block type: Enhanced Packet Block.
pub const BLOCK_EPB: u32 = 0x0000_0006;
/// Byte-order magic of a section.
pub const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// Option: end of options.
const OPT_ENDOFOPT: u16 = 0;
/// Option: comment (any block).
const OPT_COMMENT: u16 = 1;
/// SHB option: the writing application.
const SHB_USERAPPL: u16 = 4;
/// IDB option: interface name.
const IF_NAME: u16 = 2;
/// IDB option: interface description.
const IF_DESCRIPTION: u16 = 3;
/// IDB option: timestamp resolution (one byte: 9 = nanoseconds).
const IF_TSRESOL: u16 = 9;
/// EPB option: flags word (bits 0-1 direction: 1 inbound, 2 outbound).
const EPB_FLAGS: u16 = 2;

/// Which way a packet went on its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by the interface.
    Inbound,
    /// Sent by the interface.
    Outbound,
}

/// A captured interface, as its Interface Description Block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `if_name` (the harness writes `host/ifname`).
    pub name: String,
    /// `if_description`.
    pub description: Option<String>,
    /// Link type (`LINKTYPE_*`).
    pub link_type: u16,
    /// Bytes kept of each packet at most.
    pub snaplen: u32,
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Index of its interface in the order the IDBs were written.
    pub interface: u32,
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Length of the packet on the wire (`data` may be shorter: snaplen).
    pub original_len: u32,
    /// The bytes kept.
    pub data: &'a [u8],
    /// Direction, when known.
    pub direction: Option<Direction>,
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn put_option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    buf.resize(pad4(buf.len()), 0);
}

/// A block: type, total length, body, total length again.
fn block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + pad4(body.len())) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(pad4(out.len()), 0);
    out.extend_from_slice(&total.to_le_bytes());
    out
}

/// The Section Header Block that starts a file, naming the writing application.
pub fn section_header(application: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes()); // major
    body.extend_from_slice(&0u16.to_le_bytes()); // minor
    body.extend_from_slice(&(-1i64).to_le_bytes()); // section length: unknown
    put_option(&mut body, SHB_USERAPPL, application.as_bytes());
    put_option(&mut body, OPT_ENDOFOPT, &[]);
    block(BLOCK_SHB, &body)
}

/// The Interface Description Block of one interface.
pub fn interface_description(i: &Interface) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&i.link_type.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&i.snaplen.to_le_bytes());
    put_option(&mut body, IF_NAME, i.name.as_bytes());
    if let Some(d) = &i.description {
        put_option(&mut body, IF_DESCRIPTION, d.as_bytes());
    }
    put_option(&mut body, IF_TSRESOL, &[9]);
    put_option(&mut body, OPT_ENDOFOPT, &[]);
    block(BLOCK_IDB, &body)
}

/// The Enhanced Packet Block of one packet.
pub fn enhanced_packet(p: &Packet<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(32 + pad4(p.data.len()));
    body.extend_from_slice(&p.interface.to_le_bytes());
    body.extend_from_slice(&((p.timestamp_ns >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(p.timestamp_ns as u32).to_le_bytes());
    body.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
    body.extend_from_slice(&p.original_len.to_le_bytes());
    body.extend_from_slice(p.data);
    body.resize(pad4(body.len()), 0);
    if let Some(d) = p.direction {
        let flags: u32 = match d {
            Direction::Inbound => 1,
            Direction::Outbound => 2,
        };
        put_option(&mut body, EPB_FLAGS, &flags.to_le_bytes());
        put_option(&mut body, OPT_ENDOFOPT, &[]);
    }
    block(BLOCK_EPB, &body)
}

/// An `opt_comment` option (run notes such as drop counts go in the section header).
fn comment_option(text: &str) -> Vec<u8> {
    let mut v = Vec::new();
    put_option(&mut v, OPT_COMMENT, text.as_bytes());
    v
}

/// Writes a pcapng stream: the section header at creation, then interfaces and packets.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    interfaces: u32,
}

impl<W: Write> Writer<W> {
    /// Starts a section; `comment` (if any) is stored in the section header.
    pub fn new(mut out: W, application: &str, comment: Option<&str>) -> io::Result<Self> {
        match comment {
            None => out.write_all(&section_header(application))?,
            Some(c) => {
                let mut body = Vec::new();
                body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
                body.extend_from_slice(&1u16.to_le_bytes());
                body.extend_from_slice(&0u16.to_le_bytes());
                body.extend_from_slice(&(-1i64).to_le_bytes());
                put_option(&mut body, SHB_USERAPPL, application.as_bytes());
                body.extend_from_slice(&comment_option(c));
                put_option(&mut body, OPT_ENDOFOPT, &[]);
                out.write_all(&block(BLOCK_SHB, &body))?;
            }
        }
        Ok(Writer { out, interfaces: 0 })
    }

    /// Describes the next interface; returns its index for [`Packet::interface`].
    pub fn interface(&mut self, i: &Interface) -> io::Result<u32> {
        self.out.write_all(&interface_description(i))?;
        self.interfaces += 1;
        Ok(self.interfaces - 1)
    }

    /// Writes one packet (its interface must have been described).
    pub fn packet(&mut self, p: &Packet<'_>) -> io::Result<()> {
        if p.interface >= self.interfaces {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("packet on undescribed interface {}", p.interface)));
        }
        self.out.write_all(&enhanced_packet(p))
    }

    /// Flushes and returns the destination.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A block read back by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A section header: its application and comment options.
    Section { application: Option<String>, comment: Option<String> },
    /// An interface description.
    Interface(Interface),
    /// A packet (owned data).
    Packet { interface: u32, timestamp_ns: u64, original_len: u32, data: Vec<u8>, direction: Option<Direction> },
    /// A block type this reader does not decode.
    Other(u32),
}

/// Why bytes are not a pcapng stream this reader understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    /// The stream ends inside a block.
    #[error("read a pcapng block at offset {offset}: truncated")]
    Truncated {
        /// Where the block starts.
        offset: usize,
    },
    /// A block's two length fields disagree or are not a multiple of 4.
    #[error("read a pcapng block at offset {offset}: bad block length {len}")]
    BadLength {
        /// Where the block starts.
        offset: usize,
        /// The length found.
        len: u32,
    },
    /// Not a little-endian section.
    #[error("read the pcapng section header: byte-order magic {0:#010x} (only little-endian sections are read)")]
    ByteOrder(u32),
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    b.get(o..o + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// `(code, value)` pairs of an options area.
fn options(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(code), Some(len)) = (u16_at(b, 0), u16_at(b, 2)) {
        if code == OPT_ENDOFOPT {
            break;
        }
        let len = usize::from(len);
        let Some(v) = b.get(4..4 + len) else { break };
        out.push((code, v));
        b = b.get(4 + pad4(len)..).unwrap_or(&[]);
    }
    out
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Reads every block of a little-endian pcapng stream (timestamps assumed in the resolution
/// the harness writes: nanoseconds).
pub fn parse(bytes: &[u8]) -> Result<Vec<Block>, PcapError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < bytes.len() {
        let (Some(t), Some(len)) = (u32_at(bytes, off), u32_at(bytes, off + 4)) else {
            return Err(PcapError::Truncated { offset: off });
        };
        let l = len as usize;
        if l < 12 || l % 4 != 0 {
            return Err(PcapError::BadLength { offset: off, len });
        }
        let Some(blk) = bytes.get(off..off + l) else { return Err(PcapError::Truncated { offset: off }) };
        if u32_at(blk, l - 4) != Some(len) {
            return Err(PcapError::BadLength { offset: off, len });
        }
        let body = &blk[8..l - 4];
        let short = || PcapError::Truncated { offset: off };
        out.push(match t {
            BLOCK_SHB => {
                let magic = u32_at(body, 0).ok_or_else(short)?;
                if magic != BYTE_ORDER_MAGIC {
                    return Err(PcapError::ByteOrder(magic));
                }
                let opts = options(body.get(16..).unwrap_or(&[]));
                let find = |c| opts.iter().find(|(k, _)| *k == c).map(|(_, v)| text(v));
                Block::Section { application: find(SHB_USERAPPL), comment: find(OPT_COMMENT) }
            }
            BLOCK_IDB => {
                let link_type = u16_at(body, 0).ok_or_else(short)?;
                let snaplen = u32_at(body, 4).ok_or_else(short)?;
                let opts = options(body.get(8..).unwrap_or(&[]));
                let find = |c| opts.iter().find(|(k, _)| *k == c).map(|(_, v)| text(v));
                Block::Interface(Interface { name: find(IF_NAME).unwrap_or_default(), description: find(IF_DESCRIPTION), link_type, snaplen })
            }
            BLOCK_EPB => {
                let interface = u32_at(body, 0).ok_or_else(short)?;
                let hi = u32_at(body, 4).ok_or_else(short)?;
                let lo = u32_at(body, 8).ok_or_else(short)?;
                let caplen = u32_at(body, 12).ok_or_else(short)? as usize;
                let original_len = u32_at(body, 16).ok_or_else(short)?;
                let data = body.get(20..20 + caplen).ok_or_else(short)?.to_vec();
                let opts = options(body.get(20 + pad4(caplen)..).unwrap_or(&[]));
                let direction = opts.iter().find(|(k, _)| *k == EPB_FLAGS).and_then(|(_, v)| u32_at(v, 0)).and_then(|f| match f & 3 {
                    1 => Some(Direction::Inbound),
                    2 => Some(Direction::Outbound),
                    _ => None,
                });
                Block::Packet { interface, timestamp_ns: (u64::from(hi) << 32) | u64::from(lo), original_len, data, direction }
            }
            other => Block::Other(other),
        });
        off += l;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_header_bytes() {
        let b = section_header("x");
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x0A, 0x0D, 0x0D, 0x0A, // block type SHB
            40, 0, 0, 0,            // total length
            0x4D, 0x3C, 0x2B, 0x1A, // byte-order magic, little-endian
            1, 0, 0, 0,             // version 1.0
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // section length -1
            4, 0, 1, 0, b'x', 0, 0, 0, // shb_userappl "x", padded
            0, 0, 0, 0,             // opt_endofopt
            40, 0, 0, 0,            // total length
        ];
        assert_eq!(b, want);
    }

    #[test]
    fn interface_and_packet_bytes() {
        let i = Interface { name: "c/e1".into(), description: None, link_type: LINKTYPE_ETHERNET, snaplen: 256 };
        #[rustfmt::skip]
        let want: &[u8] = &[
            1, 0, 0, 0,             // IDB
            40, 0, 0, 0,            // total length
            1, 0, 0, 0,             // LINKTYPE_ETHERNET, reserved
            0, 1, 0, 0,             // snaplen 256
            2, 0, 4, 0, b'c', b'/', b'e', b'1', // if_name
            9, 0, 1, 0, 9, 0, 0, 0, // if_tsresol 9 (ns)
            0, 0, 0, 0,             // opt_endofopt
            40, 0, 0, 0,
        ];
        assert_eq!(interface_description(&i), want);
        let p = Packet { interface: 0, timestamp_ns: (5u64 << 32) | 7, original_len: 1500, data: &[0xaa, 0xbb, 0xcc], direction: Some(Direction::Outbound) };
        #[rustfmt::skip]
        let want: &[u8] = &[
            6, 0, 0, 0,             // EPB
            48, 0, 0, 0,            // total length
            0, 0, 0, 0,             // interface 0
            5, 0, 0, 0, 7, 0, 0, 0, // timestamp high, low
            3, 0, 0, 0,             // captured length
            0xdc, 0x05, 0, 0,       // original length 1500
            0xaa, 0xbb, 0xcc, 0,    // data, padded
            2, 0, 4, 0, 2, 0, 0, 0, // epb_flags: outbound
            0, 0, 0, 0,             // opt_endofopt
            48, 0, 0, 0,
        ];
        assert_eq!(enhanced_packet(&p), want);
    }

    #[test]
    fn writer_output_parses_back() {
        let mut w = Writer::new(Vec::new(), "mptcp-conformance", Some("dropped 0")).unwrap();
        let a = w.interface(&Interface { name: "server/eth1".into(), description: Some("veth".into()), link_type: LINKTYPE_ETHERNET, snaplen: 256 }).unwrap();
        let b = w.interface(&Interface { name: "client/eth1".into(), description: None, link_type: LINKTYPE_ETHERNET, snaplen: 256 }).unwrap();
        assert_eq!((a, b), (0, 1));
        let data: Vec<u8> = (0..61).collect();
        w.packet(&Packet { interface: b, timestamp_ns: 1_700_000_000_123_456_789, original_len: 9000, data: &data, direction: Some(Direction::Inbound) }).unwrap();
        w.packet(&Packet { interface: a, timestamp_ns: 1, original_len: 4, data: &data[..4], direction: None }).unwrap();
        assert!(w.packet(&Packet { interface: 2, timestamp_ns: 1, original_len: 1, data: &[0], direction: None }).is_err());
        let bytes = w.finish().unwrap();
        let blocks = parse(&bytes).unwrap();
        assert_eq!(blocks.len(), 5);
        assert_eq!(blocks[0], Block::Section { application: Some("mptcp-conformance".into()), comment: Some("dropped 0".into()) });
        assert!(matches!(&blocks[1], Block::Interface(i) if i.name == "server/eth1" && i.description.as_deref() == Some("veth")));
        assert_eq!(blocks[3], Block::Packet {
            interface: 1,
            timestamp_ns: 1_700_000_000_123_456_789,
            original_len: 9000,
            data: data.clone(),
            direction: Some(Direction::Inbound),
        });
        assert_eq!(blocks[4], Block::Packet { interface: 0, timestamp_ns: 1, original_len: 4, data: data[..4].to_vec(), direction: None });
    }

    #[test]
    fn malformed_streams_are_errors_not_panics() {
        let good = section_header("x");
        assert_eq!(parse(&good[..10]), Err(PcapError::Truncated { offset: 0 }));
        let mut bad = good.clone();
        bad[4] = 37;
        assert_eq!(parse(&bad), Err(PcapError::BadLength { offset: 0, len: 37 }));
        let mut be = good.clone();
        be[8..12].copy_from_slice(&BYTE_ORDER_MAGIC.to_be_bytes());
        assert!(matches!(parse(&be), Err(PcapError::ByteOrder(_))));
        // Every prefix of a valid stream fails cleanly or parses.
        let mut w = Writer::new(Vec::new(), "x", None).unwrap();
        w.interface(&Interface { name: "a".into(), description: None, link_type: 1, snaplen: 64 }).unwrap();
        w.packet(&Packet { interface: 0, timestamp_ns: 0, original_len: 3, data: &[1, 2, 3], direction: None }).unwrap();
        let all = w.finish().unwrap();
        for n in 0..all.len() {
            let _ = parse(&all[..n]);
        }
    }
}
