//! Per-case policy-routing rules (`hosts.<h>.rules`), added over rtnetlink (`RTM_NEWRULE`)
//! inside the host before traffic; a refusal carries the kernel's errno and extended-ACK
//! text. They live in the host's namespace and go with it.

use mptcp_spec::rule::Rule;
use mptcp_wire::nl::{AttrWriter, NLM_F_CREATE, NLM_F_EXCL};

use crate::route::{addr_bytes, rtnl};
use crate::topology::Host;

const RTM_NEWRULE: u16 = 32;
const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
const FRA_IIFNAME: u16 = 3;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FR_ACT_TO_TBL: u8 = 1;

/// The `RTM_NEWRULE` payload (`struct fib_rule_hdr` + attributes), as `ip rule add` builds it.
pub fn encode(r: &Rule) -> Vec<u8> {
    let fam = if r.v6 { libc::AF_INET6 as u8 } else { libc::AF_INET as u8 };
    let (dst_len, src_len) = (r.to.map_or(0, |t| t.1), r.from.map_or(0, |f| f.1));
    // family, dst_len, src_len, tos, table, res1, res2, action, flags (u32).
    let mut hdr = vec![fam, dst_len, src_len, 0, u8::try_from(r.table).unwrap_or(0), 0, 0, FR_ACT_TO_TBL];
    hdr.extend_from_slice(&0u32.to_ne_bytes());
    let mut w = AttrWriter::with_header(&hdr);
    w.put_u32(FRA_TABLE, r.table);
    if let Some((a, p)) = r.from
        && p > 0
    {
        w.put(FRA_SRC, &addr_bytes(a));
    }
    if let Some((a, p)) = r.to
        && p > 0
    {
        w.put(FRA_DST, &addr_bytes(a));
    }
    if let Some((m, mask)) = r.fwmark {
        w.put_u32(FRA_FWMARK, m);
        if let Some(k) = mask {
            w.put_u32(FRA_FWMASK, k);
        }
    }
    if let Some(i) = &r.iif {
        w.put_str(FRA_IIFNAME, i);
    }
    if let Some(p) = r.priority {
        w.put_u32(FRA_PRIORITY, p);
    }
    w.into_bytes()
}

/// `ip rule add <r>` in the host.
pub fn add(host: &Host, r: &Rule) -> Result<(), String> {
    let mut nl = rtnl(host)?;
    nl.request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, &encode(r)).map(drop).map_err(|e| format!("{}: ip rule add {r}: {e}", host.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tproxy_fwmark_rule() {
        let r = Rule::parse("fwmark 1 lookup 100").unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            vec![2, 0, 0, 0, 100, 0, 0, 1], 0u32.to_ne_bytes().to_vec(), // fib_rule_hdr: AF_INET, table 100, FR_ACT_TO_TBL
            vec![8, 0, 15, 0], 100u32.to_ne_bytes().to_vec(),            // FRA_TABLE 100
            vec![8, 0, 10, 0], 1u32.to_ne_bytes().to_vec(),              // FRA_FWMARK 1
        ].concat();
        assert_eq!(encode(&r), want);
        assert_eq!(encode(&Rule::parse("-6 fwmark 1 lookup 100").unwrap())[0], 10);
    }
}
