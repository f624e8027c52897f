//! Expectations on a host's `mptcp_pm_events` stream, and their judge.
//!
//! ```toml
//! [expect.server]
//! # An ordered subsequence (default) or, with events_order = "exact", the whole stream.
//! events = [
//!   "listener_created",
//!   { event = "created", saddr = "10.0.1.1", sport = 10000, dport = "$conn0.client_port" },
//!   { event = "established", server_side = true },
//!   "closed",
//! ]
//! event_counts = { sub_established = 1, sub_closed = { ge = 1 } }
//! ```
//!
//! Only the attributes written are compared. Values are integers, booleans, addresses, or
//! `$variables` the runner knows (the connection's ports and addresses: `$conn0.client_port`,
//! `$conn0.client_addr`, `$conn0.server_port`, `$conn0.server_addr`, and `$conn0.token` once
//! the connection's token is known).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use mptcp_wire::event::{AttrValue, Event, EventKind};

use crate::case::CounterExpect;
use crate::judge::{Mismatch, Rule};
use crate::source::{KeyPath, Source, SpecError};

/// A value to compare an attribute with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchValue {
    /// An integer (also matches booleans as 0/1).
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// An address (v4-mapped and plain IPv4 compare equal).
    Addr(IpAddr),
    /// A `$variable`, resolved at judge time.
    Var(String),
}

impl fmt::Display for MatchValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchValue::Int(v) => write!(f, "{v}"),
            MatchValue::Bool(v) => write!(f, "{v}"),
            MatchValue::Addr(a) => write!(f, "{a}"),
            MatchValue::Var(v) => write!(f, "${v}"),
        }
    }
}

/// One expected event: a type and the attributes to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMatch {
    /// Event type name (`created`, `sub_established`, ...).
    pub kind: String,
    /// Attribute name -> expected value.
    pub attrs: Vec<(String, MatchValue)>,
}

impl fmt::Display for EventMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.kind)?;
        for (k, v) in &self.attrs {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// Event expectations of one host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventExpect {
    /// The sequence.
    pub seq: Vec<EventMatch>,
    /// Whole stream (true) or ordered subsequence (false).
    pub exact: bool,
    /// Count per event type.
    pub counts: BTreeMap<String, CounterExpect>,
    /// Count of the events of a type that carry an attribute, whatever its value
    /// (`event_attr_counts = { sub_closed = { error = 2 } }`), keyed by (type, attribute).
    pub attr_counts: BTreeMap<(String, String), CounterExpect>,
}

impl EventExpect {
    /// Whether there is anything to check.
    pub fn is_empty(&self) -> bool {
        self.seq.is_empty() && self.counts.is_empty() && self.attr_counts.is_empty()
    }
}

/// Values of `$variables` for one case run.
pub type Vars = BTreeMap<String, AttrValue>;

fn kind_names() -> Vec<&'static str> {
    EventKind::ALL.iter().filter_map(|k| k.name()).collect()
}

/// Validates the raw `events` array.
pub(crate) fn parse_seq(raw: &[toml::Value], at: &KeyPath, src: &Source, errs: &mut Vec<SpecError>) -> Vec<EventMatch> {
    let kinds = kind_names();
    let mut out = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let ip = at.index(i);
        let (kind, table) = match v {
            toml::Value::String(s) => (s.clone(), None),
            toml::Value::Table(t) => match t.get("event") {
                Some(toml::Value::String(s)) => (s.clone(), Some(t)),
                _ => {
                    errs.push(src.error(ip, "an event table needs `event = \"<type>\"`"));
                    continue;
                }
            },
            _ => {
                errs.push(src.error(ip, "expected an event type name or a table like { event = \"created\", saddr = \"10.0.1.1\" }"));
                continue;
            }
        };
        if !kinds.contains(&kind.as_str()) {
            errs.push(src.error(if table.is_some() { ip.key("event") } else { ip.clone() }, format!("unknown event type {kind:?}; expected one of {}", kinds.join(", "))));
            continue;
        }
        let mut attrs = Vec::new();
        for (k, val) in table.into_iter().flatten() {
            if k == "event" {
                continue;
            }
            if !Event::ATTR_NAMES.contains(&k.as_str()) {
                errs.push(src.error(ip.key(k), format!("unknown event attribute {k:?}; expected one of {}", Event::ATTR_NAMES.join(", "))));
                continue;
            }
            let mv = match val {
                toml::Value::Integer(n) => MatchValue::Int(*n),
                toml::Value::Boolean(b) => MatchValue::Bool(*b),
                toml::Value::String(s) if s.starts_with('$') && s.len() > 1 => MatchValue::Var(s[1..].to_owned()),
                toml::Value::String(s) => match s.parse::<IpAddr>() {
                    Ok(a) => MatchValue::Addr(a),
                    Err(_) => {
                        errs.push(src.error(ip.key(k), format!("expected an integer, a boolean, an address or a \"$variable\", found {s:?}")));
                        continue;
                    }
                },
                _ => {
                    errs.push(src.error(ip.key(k), "expected an integer, a boolean, an address or a \"$variable\""));
                    continue;
                }
            };
            attrs.push((k.clone(), mv));
        }
        out.push(EventMatch { kind, attrs });
    }
    out
}

/// Validates `event_attr_counts`: event type -> attribute -> count expectation.
pub(crate) fn parse_attr_counts(
    raw: &BTreeMap<String, BTreeMap<String, crate::case::RawCounter>>,
    at: &KeyPath,
    src: &Source,
    errs: &mut Vec<SpecError>,
) -> BTreeMap<(String, String), CounterExpect> {
    let kinds = kind_names();
    let mut out = BTreeMap::new();
    for (kind, attrs) in raw {
        let kp = at.key(kind);
        if !kinds.contains(&kind.as_str()) {
            errs.push(src.error(kp, format!("unknown event type {kind:?}; expected one of {}", kinds.join(", "))));
            continue;
        }
        for (attr, v) in attrs {
            let ap = kp.key(attr);
            if !Event::ATTR_NAMES.contains(&attr.as_str()) {
                errs.push(src.error(ap, format!("unknown event attribute {attr:?}; expected one of {}", Event::ATTR_NAMES.join(", "))));
                continue;
            }
            if let Some(c) = crate::case::counter_expect(v, &ap, src, errs) {
                out.insert((kind.clone(), attr.clone()), c);
            }
        }
    }
    out
}

/// Checks event-type names used as `event_counts` keys.
pub(crate) fn check_count_names(counts: &BTreeMap<String, CounterExpect>, at: &KeyPath, src: &Source, errs: &mut Vec<SpecError>) {
    let kinds = kind_names();
    for k in counts.keys() {
        if !kinds.contains(&k.as_str()) {
            errs.push(src.error(at.key(k), format!("unknown event type {k:?}; expected one of {}", kinds.join(", "))));
        }
    }
}

fn canon(a: IpAddr) -> IpAddr {
    a.to_canonical()
}

fn value_matches(want: &MatchValue, got: Option<&AttrValue>, vars: &Vars) -> bool {
    let Some(got) = got else { return false };
    match (want, got) {
        (MatchValue::Var(v), g) => vars.get(v).is_some_and(|val| val == g || matches!((val, g), (AttrValue::Addr(a), AttrValue::Addr(b)) if canon(*a) == canon(*b))),
        (MatchValue::Int(n), AttrValue::Uint(u)) => u64::try_from(*n).is_ok_and(|n| n == *u),
        (MatchValue::Int(n), AttrValue::Int(i)) => n == i,
        (MatchValue::Int(n), AttrValue::Bool(b)) => (*n == 1 && *b) || (*n == 0 && !*b),
        (MatchValue::Bool(w), AttrValue::Bool(b)) => w == b,
        (MatchValue::Bool(w), AttrValue::Uint(u)) => *w == (*u != 0),
        (MatchValue::Addr(a), AttrValue::Addr(b)) => canon(*a) == canon(*b),
        _ => false,
    }
}

/// The attribute as compared: `server_side` and `deny_join_id0` absent mean false.
fn attr_of(e: &Event, name: &str) -> Option<AttrValue> {
    e.attr(name).or(match name {
        "server_side" | "deny_join_id0" => Some(AttrValue::Bool(false)),
        _ => None,
    })
}

/// Whether an event matches an expectation.
pub fn event_matches(m: &EventMatch, e: &Event, vars: &Vars) -> bool {
    e.kind.name() == Some(m.kind.as_str()) && m.attrs.iter().all(|(k, v)| value_matches(v, attr_of(e, k).as_ref(), vars))
}

/// Judges a host's events; an empty result means every expectation held.
pub fn check_events(host: &str, expect: &EventExpect, events: &[Event], vars: &Vars) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mism = |what: String, expected: String, observed: String| Mismatch { host: host.to_owned(), what, expected, observed, rule: Rule::Named };
    if expect.exact {
        let n = expect.seq.len().max(events.len());
        for i in 0..n {
            match (expect.seq.get(i), events.get(i)) {
                (Some(m), Some(e)) if event_matches(m, e, vars) => {}
                (m, e) => {
                    out.push(mism(
                        format!("event #{} (exact sequence)", i + 1),
                        m.map_or("no more events".into(), ToString::to_string),
                        e.map_or("no more events".into(), ToString::to_string),
                    ));
                    break;
                }
            }
        }
    } else {
        let mut pos = 0;
        for (i, m) in expect.seq.iter().enumerate() {
            match events[pos..].iter().position(|e| event_matches(m, e, vars)) {
                Some(p) => pos += p + 1,
                None => {
                    let near: Vec<String> = events[pos..].iter().filter(|e| e.kind.name() == Some(m.kind.as_str())).map(ToString::to_string).collect();
                    out.push(mism(
                        format!("event #{} of the expected subsequence", i + 1),
                        substitute(m, vars),
                        if near.is_empty() { format!("no [{}] event after the previous match", m.kind) } else { format!("only: {}", near.join("; ")) },
                    ));
                    break;
                }
            }
        }
    }
    for (kind, want) in &expect.counts {
        let n = events.iter().filter(|e| e.kind.name() == Some(kind.as_str())).count() as i64;
        if !want.matches(n) {
            out.push(mism(format!("number of [{kind}] events"), want.to_string(), n.to_string()));
        }
    }
    for ((kind, attr), want) in &expect.attr_counts {
        // Presence only: `server_side` / `deny_join_id0` count when the kernel sent them.
        let n = events.iter().filter(|e| e.kind.name() == Some(kind.as_str()) && e.attr(attr).is_some()).count() as i64;
        if !want.matches(n) {
            out.push(mism(format!("number of [{kind}] events carrying `{attr}`"), want.to_string(), n.to_string()));
        }
    }
    out
}

/// An expectation with its variables replaced by their values, for reports.
pub fn substitute(m: &EventMatch, vars: &Vars) -> String {
    let mut s = format!("[{}]", m.kind);
    for (k, v) in &m.attrs {
        match v {
            MatchValue::Var(name) => match vars.get(name) {
                Some(val) => s += &format!(" {k}={val} (${name})"),
                None => s += &format!(" {k}=${name} (undefined)"),
            },
            other => s += &format!(" {k}={other}"),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, f: impl FnOnce(&mut Event)) -> Event {
        let mut e = Event::new(kind);
        f(&mut e);
        e
    }

    fn stream() -> Vec<Event> {
        vec![
            ev(EventKind::ListenerCreated, |e| { e.family = Some(10); e.sport = Some(10000); e.saddr = Some("::".parse().unwrap()); }),
            ev(EventKind::Created, |e| { e.token = Some(7); e.saddr = Some("10.0.1.1".parse().unwrap()); e.sport = Some(10000); e.dport = Some(40000); e.server_side = Some(1); }),
            ev(EventKind::Established, |e| { e.token = Some(7); }),
            ev(EventKind::Closed, |e| { e.token = Some(7); }),
        ]
    }

    fn m(kind: &str, attrs: &[(&str, MatchValue)]) -> EventMatch {
        EventMatch { kind: kind.into(), attrs: attrs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect() }
    }

    #[test]
    fn subsequence_with_attributes_and_variables() {
        let mut vars = Vars::new();
        vars.insert("conn0.client_port".into(), AttrValue::Uint(40000));
        let x = EventExpect {
            seq: vec![
                m("created", &[("saddr", MatchValue::Addr("::ffff:10.0.1.1".parse().unwrap())), ("dport", MatchValue::Var("conn0.client_port".into())), ("server_side", MatchValue::Bool(true))]),
                m("closed", &[]),
            ],
            exact: false,
            counts: [("closed".to_owned(), CounterExpect::Eq(1))].into(),
            attr_counts: BTreeMap::new(),
        };
        assert!(check_events("server", &x, &stream(), &vars).is_empty());
        // Wrong value: reported with the events of that type that were seen.
        vars.insert("conn0.client_port".into(), AttrValue::Uint(1));
        let r = check_events("server", &x, &stream(), &vars);
        assert_eq!(r.len(), 1);
        assert!(r[0].expected.contains("dport=1 ($conn0.client_port)"), "{}", r[0]);
        assert!(r[0].observed.starts_with("only: [created]"), "{}", r[0]);
    }

    #[test]
    fn order_matters_and_counts_are_checked() {
        let x = EventExpect { seq: vec![m("closed", &[]), m("created", &[])], exact: false, counts: BTreeMap::new(), attr_counts: BTreeMap::new() };
        assert_eq!(check_events("h", &x, &stream(), &Vars::new()).len(), 1);
        let c = EventExpect { seq: vec![], exact: false, counts: [("sub_established".to_owned(), CounterExpect::Eq(1))].into(), attr_counts: BTreeMap::new() };
        let r = check_events("h", &c, &stream(), &Vars::new());
        assert_eq!(r[0].to_string(), "h: number of [sub_established] events: expected 1, observed 0");
    }

    #[test]
    fn exact_sequence_and_absent_server_side() {
        let x = EventExpect {
            seq: vec![m("listener_created", &[]), m("created", &[]), m("established", &[("server_side", MatchValue::Bool(false))]), m("closed", &[])],
            exact: true,
            counts: BTreeMap::new(),
            attr_counts: BTreeMap::new(),
        };
        assert!(check_events("h", &x, &stream(), &Vars::new()).is_empty());
        let short = EventExpect { seq: x.seq[..2].to_vec(), ..x };
        let r = check_events("h", &short, &stream(), &Vars::new());
        assert_eq!(r[0].expected, "no more events");
    }

    #[test]
    fn events_carrying_an_attribute_are_counted_whatever_its_value() {
        let closed = |err: Option<u8>| ev(EventKind::SubClosed, |e| e.error = err);
        let events = vec![closed(Some(111)), closed(None), closed(Some(104)), ev(EventKind::Closed, |_| {})];
        let want = |n| EventExpect { attr_counts: [(("sub_closed".to_owned(), "error".to_owned()), CounterExpect::Eq(n))].into(), ..EventExpect::default() };
        assert!(check_events("client", &want(2), &events, &Vars::new()).is_empty());
        let r = check_events("client", &want(3), &events, &Vars::new());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].to_string(), "client: number of [sub_closed] events carrying `error`: expected 3, observed 2");
    }
}
