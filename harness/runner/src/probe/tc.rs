//! Traffic control probes over rtnetlink: qdiscs on `lo` (netem, tbf, htb, clsact), the fw
//! classifier on clsact's ingress, and the pedit and csum actions; each added, then dumped back.

use mptcp_wire::nl::{self, AttrWriter, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};

use super::Capabilities;
use super::netlink::RawNl;

const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const RTM_NEWACTION: u16 = 48;
const RTM_GETACTION: u16 = 50;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_ACT_TAB: u16 = 1;
const TCA_ACT_KIND: u16 = 1;
const TCA_ACT_OPTIONS: u16 = 2;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const TC_H_INGRESS_OF_CLSACT: u32 = 0xFFFF_FFF2;
const TC_ACT_PIPE: i32 = 3;
/// `TCA_FW_CLASSID` in the fw classifier's options.
const TCA_FW_CLASSID: u16 = 1;
/// The capabilities [`probe_tc`] lists.
pub(super) const CAPABILITIES: [&str; 7] = ["qdisc:netem", "qdisc:tbf", "qdisc:htb", "qdisc:clsact", "tc:fw", "tc:csum", "tc:pedit"];

/// `lo`'s ifindex in a fresh namespace.
pub(super) const LO: i32 = 1;
/// `IFF_UP`.
pub(super) const IFF_UP: u32 = 1;
/// `RTM_NEWLINK` (`ip link set ... up`).
pub(super) const RTM_NEWLINK: u16 = 16;

pub(super) fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// `struct tcmsg`.
fn tcmsg(ifindex: i32, handle: u32, parent: u32, info: u32) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    b[8..12].copy_from_slice(&handle.to_ne_bytes());
    b[12..16].copy_from_slice(&parent.to_ne_bytes());
    b[16..20].copy_from_slice(&info.to_ne_bytes());
    b
}

/// `TCA_KIND` values of the tc messages in a dump (after a `tcmsg` / `tcamsg` header).
fn kinds_in(msgs: &[nl::DataMessage], header: usize) -> Vec<String> {
    fn walk(attrs: nl::Attrs<'_>, out: &mut Vec<String>, depth: usize) {
        for a in attrs.flatten() {
            if a.attr_type == TCA_KIND
                && let Ok(s) = a.as_str()
            {
                out.push(s.to_owned());
            } else if depth < 3 {
                walk(a.nested(), out, depth + 1);
            }
        }
    }
    let mut out = Vec::new();
    for m in msgs {
        if let Some(rest) = m.payload.get(header..) {
            walk(nl::Attrs::new(rest), &mut out, 0);
        }
    }
    out
}

pub(super) fn probe_tc(caps: &mut Capabilities, rt: &mut RawNl) {
    // Qdiscs on lo's root, each removed after it was read back (clsact stays for the filter).
    let qdisc = |rt: &mut RawNl, kind: &str, handle: u32, parent: u32, options: Option<Vec<u8>>| -> (bool, String) {
        let mut w = AttrWriter::with_header(&tcmsg(LO, handle, parent, 0));
        w.put_str(TCA_KIND, kind);
        if let Some(o) = &options {
            w.put(TCA_OPTIONS, o);
        }
        if let Err(e) = rt.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, w.as_bytes()) {
            return (false, format!("tc qdisc add dev lo ... {kind}: {e}"));
        }
        match rt.request(RTM_GETQDISC, NLM_F_DUMP, &tcmsg(LO, 0, 0, 0)) {
            Ok(msgs) if kinds_in(&msgs, 20).iter().any(|k| k == kind) => (true, "added on lo and dumped back".into()),
            Ok(_) => (false, format!("added, but `tc qdisc show dev lo` does not list {kind}")),
            Err(e) => (false, format!("dumping qdiscs failed: {e}")),
        }
    };
    let delete_root = |rt: &mut RawNl| {
        let _ = rt.request(RTM_DELQDISC, 0, &tcmsg(LO, 0x1_0000, TC_H_ROOT, 0));
    };
    // netem: struct tc_netem_qopt { latency, limit, loss, gap, duplicate, jitter }.
    let mut netem = vec![0u8; 24];
    netem[4..8].copy_from_slice(&1000u32.to_ne_bytes());
    let (p, d) = qdisc(rt, "netem", 0x1_0000, TC_H_ROOT, Some(netem));
    caps.push("qdisc:netem", p, d);
    delete_root(rt);
    // tbf: TCA_TBF_PARMS (struct tc_tbf_qopt: rate, peakrate, limit, buffer, mtu) and a burst
    // above lo's MTU (a smaller one makes the kernel warn in its log).
    let mut parms = [0u8; 36];
    parms[1] = 1; // rate.linklayer = TC_LINKLAYER_ETHERNET: no rate table needed
    parms[8..12].copy_from_slice(&125_000u32.to_ne_bytes()); // rate: 1 Mbit/s
    parms[24..28].copy_from_slice(&200_000u32.to_ne_bytes()); // limit
    let mut tbf = AttrWriter::new();
    tbf.put(1, &parms).put_u32(6, 200_000); // TCA_TBF_PARMS, TCA_TBF_BURST
    let (p, d) = qdisc(rt, "tbf", 0x1_0000, TC_H_ROOT, Some(tbf.as_bytes().to_vec()));
    caps.push("qdisc:tbf", p, d);
    delete_root(rt);
    // htb: TCA_HTB_INIT (struct tc_htb_glob: version 3, rate2quantum 10, defcls, debug, direct_pkts).
    let mut glob = [0u8; 20];
    glob[0..4].copy_from_slice(&3u32.to_ne_bytes());
    glob[4..8].copy_from_slice(&10u32.to_ne_bytes());
    let mut htb = AttrWriter::new();
    htb.put(2, &glob);
    let (p, d) = qdisc(rt, "htb", 0x1_0000, TC_H_ROOT, Some(htb.as_bytes().to_vec()));
    caps.push("qdisc:htb", p, d);
    delete_root(rt);
    let (clsact, d) = qdisc(rt, "clsact", 0xFFFF_0000, TC_H_CLSACT, None);
    caps.push("qdisc:clsact", clsact, d);

    // The fw classifier on clsact's ingress: a filter with handle 1 and a class id
    // (`tc filter add dev lo ingress protocol all prio 1 handle 1 fw classid 1:1`), read back by
    // a dump of the ingress filters, or (where a kernel refuses that dump) by getting it alone.
    // (An old-style fw filter without options is accepted too, but then every filter dump of
    // the device fails with EMSGSIZE on 6.1-7.2.)
    if clsact {
        let info = (1u32 << 16) | u32::from((libc::ETH_P_ALL as u16).to_be());
        let mut w = AttrWriter::with_header(&tcmsg(LO, 1, TC_H_INGRESS_OF_CLSACT, info));
        w.put_str(TCA_KIND, "fw");
        let opts = w.begin_nested(TCA_OPTIONS);
        w.put_u32(TCA_FW_CLASSID, 0x1_0001);
        w.end_nested(opts);
        let r = match rt.request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, w.as_bytes()) {
            Err(e) => (false, format!("tc filter add dev lo ingress ... fw: {e}")),
            Ok(_) => match rt.request(RTM_GETTFILTER, NLM_F_DUMP, &tcmsg(LO, 0, TC_H_INGRESS_OF_CLSACT, 0)) {
                Ok(msgs) if kinds_in(&msgs, 20).iter().any(|k| k == "fw") => (true, "added on clsact ingress and dumped back".into()),
                Ok(_) => (false, "added, but the filter dump does not list fw".into()),
                Err(dump_err) => {
                    let mut q = AttrWriter::with_header(&tcmsg(LO, 1, TC_H_INGRESS_OF_CLSACT, info));
                    q.put_str(TCA_KIND, "fw");
                    match rt.request(RTM_GETTFILTER, 0, q.as_bytes()) {
                        Ok(msgs) if kinds_in(&msgs, 20).iter().any(|k| k == "fw") => {
                            (true, format!("added on clsact ingress and read back (the dump failed: {dump_err})"))
                        }
                        Ok(_) => (false, format!("added, but neither the dump ({dump_err}) nor a get lists fw")),
                        Err(e) => (false, format!("added, but reading it back failed: dump {dump_err}, get {e}")),
                    }
                }
            },
        };
        caps.push("tc:fw", r.0, r.1);
    } else {
        caps.push("tc:fw", false, "no clsact qdisc to attach a filter to");
    }

    // Actions: struct tc_gen { index, capab, action, refcnt, bindcnt } first in each.
    let mut gen_ = [0u8; 20];
    gen_[8..12].copy_from_slice(&TC_ACT_PIPE.to_ne_bytes());
    // csum: TCA_CSUM_PARMS (struct tc_csum: tc_gen, update_flags = TCP).
    let mut csum = gen_.to_vec();
    csum.extend_from_slice(&8u32.to_ne_bytes());
    let r = action(rt, "csum", 1, &csum);
    caps.push("tc:csum", r.0, r.1);
    // pedit: TCA_PEDIT_PARMS (struct tc_pedit_sel: tc_gen, nkeys 1, flags, pad, then one
    // struct tc_pedit_key { mask, val, off, at, offmask, shift } that keeps every bit).
    let mut pedit = gen_.to_vec();
    pedit.extend_from_slice(&[1, 0, 0, 0]);
    let mut key = [0u8; 24];
    key[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
    pedit.extend_from_slice(&key);
    let r = action(rt, "pedit", 2, &pedit);
    caps.push("tc:pedit", r.0, r.1);
}

/// `tc actions add action <kind> ...` then `tc actions list action <kind>`.
fn action(rt: &mut RawNl, kind: &str, parms_attr: u16, parms: &[u8]) -> (bool, String) {
    let mut w = AttrWriter::with_header(&[0u8; 4]); // struct tcamsg
    let tab = w.begin_nested(TCA_ACT_TAB);
    let one = w.begin_nested(1);
    w.put_str(TCA_ACT_KIND, kind);
    let opts = w.begin_nested(TCA_ACT_OPTIONS);
    w.put(parms_attr, parms);
    w.end_nested(opts);
    w.end_nested(one);
    w.end_nested(tab);
    if let Err(e) = rt.request(RTM_NEWACTION, NLM_F_CREATE | NLM_F_EXCL, w.as_bytes()) {
        return (false, format!("tc actions add action {kind}: {e}"));
    }
    let mut q = AttrWriter::with_header(&[0u8; 4]);
    let tab = q.begin_nested(TCA_ACT_TAB);
    let one = q.begin_nested(1);
    q.put_str(TCA_ACT_KIND, kind);
    q.end_nested(one);
    q.end_nested(tab);
    match rt.request(RTM_GETACTION, NLM_F_DUMP, q.as_bytes()) {
        Ok(msgs) if kinds_in(&msgs, 4).iter().any(|k| k == kind) => (true, "added and listed back".into()),
        Ok(_) => (false, format!("added, but `tc actions list action {kind}` does not show it")),
        Err(e) => (false, format!("listing {kind} actions failed: {e}")),
    }
}

