//! The path manager of one host over generic netlink (`mptcp_pm` family): what
//! `ip mptcp endpoint|limits ...` and the selftests' `pm_nl_ctl` do, with every refusal
//! reported as the command, the errno and the kernel's extended-ACK text.

use std::fmt::Write as _;
use std::time::Duration;

use mptcp_spec::case::HostSetup;
use mptcp_wire::nl::DataMessage;
use mptcp_wire::pm::{AddrTarget, Endpoint, EndpointFlags, Limits, MPTCP_PM_NAME, PmRequest};

use crate::genl::{GenlError, NlSocket};
use crate::netns::Netns;
use crate::topology::Host;

/// How long the kernel may take to answer one PM request (scaled by slowness).
fn timeout() -> Duration {
    crate::env::scaled(Duration::from_secs(5), 1)
}

/// A PM command that failed: which host, which command (as `ip mptcp` would spell it), why.
#[derive(Debug, thiserror::Error)]
#[error("{host}: `{command}`: {source}")]
pub struct PmCommandError {
    /// Host name.
    pub host: String,
    /// The command, `ip mptcp`-style.
    pub command: String,
    /// What the kernel said.
    #[source]
    pub source: GenlError,
}

/// A path-manager client bound to one namespace.
#[derive(Debug)]
pub struct PmClient {
    host: String,
    sock: NlSocket,
    family: u16,
}

impl PmClient {
    /// Opens a client inside `ns` and resolves the `mptcp_pm` family there.
    pub fn open(ns: &Netns, host: &str) -> Result<PmClient, PmCommandError> {
        Self::open_with(ns, host, false)
    }

    /// A client whose socket was created without any effective capability (see
    /// [`NlSocket::open_with`]): admin commands must be refused with EPERM.
    pub fn open_with(ns: &Netns, host: &str, unprivileged: bool) -> Result<PmClient, PmCommandError> {
        let wrap = |source| PmCommandError { host: host.to_owned(), command: "genl: resolve family mptcp_pm".into(), source };
        let sock = NlSocket::open_with(ns, unprivileged).map_err(wrap)?;
        let fam = sock.family(MPTCP_PM_NAME, timeout()).map_err(wrap)?;
        Ok(PmClient { host: host.to_owned(), sock, family: fam.id })
    }

    /// Sends a request and returns the answer's data messages.
    pub fn request(&self, req: &PmRequest) -> Result<Vec<DataMessage>, PmCommandError> {
        let seq = self.sock.next_seq();
        self.sock.request(&req.encode(self.family, seq), seq, timeout()).map_err(|source| PmCommandError {
            host: self.host.clone(),
            command: describe(req),
            source,
        })
    }

    fn decode_err(&self, req: &PmRequest, e: impl std::fmt::Display) -> PmCommandError {
        PmCommandError { host: self.host.clone(), command: describe(req), source: GenlError::Decode(e.to_string()) }
    }

    /// `ip mptcp endpoint add`.
    pub fn add(&self, ep: Endpoint) -> Result<(), PmCommandError> {
        self.request(&PmRequest::AddAddr(ep)).map(drop)
    }

    /// `ip mptcp endpoint show` (dump; with a token: the userspace PM's view).
    pub fn dump(&self, token: Option<u32>) -> Result<Vec<Endpoint>, PmCommandError> {
        let req = PmRequest::DumpAddrs { token };
        let msgs = self.request(&req)?;
        msgs.iter().map(|m| Endpoint::decode_reply(&m.payload).map_err(|e| self.decode_err(&req, e))).collect()
    }

    /// `ip mptcp endpoint show id N` (with a token: the userspace PM's view).
    pub fn get(&self, id: u8, token: Option<u32>) -> Result<Endpoint, PmCommandError> {
        let req = PmRequest::GetAddr { id, token };
        let msgs = self.request(&req)?;
        let m = msgs.first().ok_or_else(|| self.decode_err(&req, "no reply message"))?;
        Endpoint::decode_reply(&m.payload).map_err(|e| self.decode_err(&req, e))
    }

    /// `ip mptcp limits show`.
    pub fn limits(&self) -> Result<Limits, PmCommandError> {
        let req = PmRequest::GetLimits;
        let msgs = self.request(&req)?;
        let m = msgs.first().ok_or_else(|| self.decode_err(&req, "no reply message"))?;
        Limits::decode_reply(&m.payload).map_err(|e| self.decode_err(&req, e))
    }
}

/// A request spelled like the `ip mptcp` command (or `pm_nl_ctl` for the userspace-PM
/// commands `ip` does not have), for error messages and reports.
pub fn describe(req: &PmRequest) -> String {
    let ep = |e: &Endpoint| {
        let mut s = e.addr.to_string();
        if let Some(p) = e.port {
            let _ = write!(s, " port {p}");
        }
        if let Some(i) = e.id {
            let _ = write!(s, " id {i}");
        }
        if !e.flags.is_empty() {
            let _ = write!(s, " {}", e.flags);
        }
        if let Some(i) = e.ifindex {
            let _ = write!(s, " dev <ifindex {i}>");
        }
        s
    };
    let tok = |t: Option<u32>| t.map(|t| format!(" token {t}")).unwrap_or_default();
    match req {
        PmRequest::AddAddr(e) => format!("ip mptcp endpoint add {}", ep(e)),
        PmRequest::DelAddr { id, addr } => {
            format!("ip mptcp endpoint delete id {id}{}", addr.map(|a| format!(" {a}")).unwrap_or_default())
        }
        PmRequest::GetAddr { id, token } => format!("ip mptcp endpoint show id {id}{}", tok(*token)),
        PmRequest::DumpAddrs { token } => format!("ip mptcp endpoint show{}", tok(*token)),
        PmRequest::FlushAddrs => "ip mptcp endpoint flush".into(),
        PmRequest::SetLimits { rcv_add_addrs, subflows } => {
            let mut s = "ip mptcp limits set".to_owned();
            if let Some(a) = rcv_add_addrs {
                let _ = write!(s, " add_addr_accepted {a}");
            }
            if let Some(n) = subflows {
                let _ = write!(s, " subflows {n}");
            }
            s
        }
        PmRequest::GetLimits => "ip mptcp limits show".into(),
        PmRequest::SetFlags { target, flags, token, remote } => {
            let t = match target {
                AddrTarget::Id(i) => format!("id {i}"),
                AddrTarget::Addr(a) => format!("{}{}", a.addr, a.port.map(|p| format!(" port {p}")).unwrap_or_default()),
            };
            let words = if flags.is_empty() { "(no flags)".to_owned() } else { flags.to_string() };
            let r = remote.map(|r| format!(" rip {}{}", r.addr, r.port.map(|p| format!(" rport {p}")).unwrap_or_default())).unwrap_or_default();
            format!("ip mptcp endpoint change {t} {words}{}{r}", tok(*token))
        }
        PmRequest::Announce { endpoint, token } => format!("pm_nl_ctl ann {} token {token}", ep(endpoint)),
        PmRequest::Remove { token, loc_id } => format!("pm_nl_ctl rem token {token} id {loc_id}"),
        PmRequest::SubflowCreate { local, remote, token } => {
            format!("pm_nl_ctl csf lip {} rip {} rport {} token {token}", ep(local), remote.ip(), remote.port())
        }
        PmRequest::SubflowDestroy { local, remote, token } => format!(
            "pm_nl_ctl dsf lip {} lport {} rip {} rport {} token {token}",
            local.ip(),
            local.port(),
            remote.ip(),
            remote.port()
        ),
    }
}

/// Builds the wire endpoint of a case endpoint, resolving `dev` in the host.
pub fn endpoint(host: &Host, e: &mptcp_spec::case::Endpoint) -> Result<Endpoint, String> {
    let flags: EndpointFlags = e.flags.join(" ").parse().map_err(|err| format!("endpoint {}: {err}", e.addr))?;
    let mut ep = Endpoint::new(e.addr).with_flags(flags);
    if let Some(id) = e.id {
        ep = ep.with_id(id);
    }
    if let Some(p) = e.port {
        ep = ep.with_port(p);
    }
    if let Some(dev) = &e.dev {
        let idx = host.ifindex.get(dev).ok_or_else(|| format!("host {} has no interface {dev}", host.name))?;
        ep = ep.with_ifindex(i32::try_from(*idx).unwrap_or(i32::MAX));
    }
    Ok(ep)
}

/// Applies a host's PM limits and endpoints (in file order).
pub fn apply(host: &Host, setup: &HostSetup) -> Result<(), String> {
    if setup.limits.is_none() && setup.endpoints.is_empty() {
        return Ok(());
    }
    let pm = PmClient::open(&host.ns, &host.name).map_err(|e| e.to_string())?;
    if let Some(l) = setup.limits {
        pm.request(&PmRequest::SetLimits { rcv_add_addrs: l.add_addr_accepted, subflows: l.subflows })
            .map_err(|e| e.to_string())?;
    }
    for e in &setup.endpoints {
        pm.add(endpoint(host, e)?).map_err(|e| e.to_string())?;
    }
    Ok(())
}
