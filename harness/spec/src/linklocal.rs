//! Link-local addresses as case variables: `$ll.<ifname>` is the IPv6 link-local address
//! (`fe80::/64`) the kernel assigns to the topology's interface `<ifname>` once it is up;
//! `$ll.<ifname>%<scope>` adds a scope (the interface of the socket's own host through which
//! the address is reached, as in `fe80::1%eth0`).
//!
//! They are known only at run time: the runner reads them over rtnetlink after the links are
//! up, waiting until they have left the tentative state (duplicate address detection), and
//! substitutes them before host setup. Where they may appear: a connection's `connect` and
//! `listen`, a host's `listen` (`"[$ll.ns1eth2%ns1eth2]:10000"`) and an endpoint's `addr`
//! (no scope: endpoints carry `dev`).

use std::net::{IpAddr, Ipv6Addr};

use crate::topology::Topology;

/// The prefix of a link-local variable.
pub const PREFIX: &str = "$ll.";

/// A reference to an interface's link-local address, with an optional scope interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkLocal {
    /// The interface whose address it is.
    pub of: String,
    /// The interface used as scope id (`%ifname`), in the host that uses the address.
    pub scope: Option<String>,
}

/// The placeholder stored in address fields until the runner substitutes the real address.
pub const PLACEHOLDER: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0));

impl LinkLocal {
    /// Parses `$ll.<ifname>[%<scope>]`; `None` when the text is not a link-local variable,
    /// `Some(Err)` when it is one but malformed.
    pub fn parse(text: &str) -> Option<Result<LinkLocal, String>> {
        let rest = text.strip_prefix(PREFIX)?;
        let (of, scope) = match rest.split_once('%') {
            Some((a, s)) => (a, Some(s)),
            None => (rest, None),
        };
        if of.is_empty() || scope.is_some_and(str::is_empty) {
            return Some(Err(format!("{text:?}: expected `$ll.<ifname>` or `$ll.<ifname>%<scope ifname>`")));
        }
        Some(Ok(LinkLocal { of: of.to_owned(), scope: scope.map(str::to_owned) }))
    }

    /// Checks the interfaces against the topology: `of` must exist in some host, `scope` in
    /// `user` (the host whose socket uses the address).
    pub fn check(&self, topology: &Topology, user: &str) -> Result<(), String> {
        if topology.owner_of_interface(&self.of).is_none() {
            return Err(format!("no interface {:?} in topology {:?}", self.of, topology.name));
        }
        if let Some(s) = &self.scope
            && !topology.interfaces(user).any(|i| &i.ifname == s)
        {
            return Err(format!("scope: host {user:?} has no interface {s:?}"));
        }
        Ok(())
    }
}

impl std::fmt::Display for LinkLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}", self.of)?;
        if let Some(s) = &self.scope {
            write!(f, "%{s}")?;
        }
        Ok(())
    }
}

/// Splits `"[<addr>]:<port>"` / `"<v4>:<port>"` into the address text and the port.
pub fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (a, p) = if let Some(rest) = text.strip_prefix('[') {
        let (a, p) = rest.split_once("]:")?;
        (a, p)
    } else {
        text.rsplit_once(':')?
    };
    Some((a, p.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variables_with_and_without_scope() {
        assert_eq!(LinkLocal::parse("$ll.ns1eth1"), Some(Ok(LinkLocal { of: "ns1eth1".into(), scope: None })));
        let l = LinkLocal::parse("$ll.ns1eth1%ns2eth1").unwrap().unwrap();
        assert_eq!(l.scope.as_deref(), Some("ns2eth1"));
        assert_eq!(l.to_string(), "$ll.ns1eth1%ns2eth1");
        assert_eq!(LinkLocal::parse("fe80::1"), None);
        assert!(LinkLocal::parse("$ll.").unwrap().is_err());
        assert!(LinkLocal::parse("$ll.a%").unwrap().is_err());
    }

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("[$ll.ns1eth2%ns1eth2]:10000"), Some(("$ll.ns1eth2%ns1eth2", 10000)));
        assert_eq!(split_host_port("10.0.2.1:10000"), Some(("10.0.2.1", 10000)));
        assert_eq!(split_host_port("[dead::1]:x"), None);
    }
}
