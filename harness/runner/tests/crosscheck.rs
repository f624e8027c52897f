//! Cross-checks of the harness's own netlink code against iproute2, in the same namespace.
//!
//! - `pm::endpoint_dump_matches_ip`: the endpoints the harness adds and decodes equal what
//!   `ip -j mptcp endpoint show` prints (address, id, port, flags, device).
//!
//! Ignored with the reason when not root or when `ip` has no `mptcp` support;
//! `MPTCP_CT_REQUIRE=1` makes that a failure.

use std::collections::BTreeSet;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use mptcp_runner::netns::Netns;
use mptcp_runner::pm::PmClient;
use mptcp_wire::pm::{Endpoint, EndpointFlags};

fn main() {
    let args = Arguments::from_args();
    let trials = vec![Trial::ignorable_test("pm::endpoint_dump_matches_ip", endpoint_dump_matches_ip)];
    libtest_mimic::run(&args, trials).exit();
}

fn skip(reason: String) -> Result<Completion, Failed> {
    if mptcp_runner::env::require() {
        Err(format!("cannot run here and MPTCP_CT_REQUIRE is set: {reason}").into())
    } else {
        Ok(Completion::ignored_with(reason))
    }
}

/// Runs `ip <args>` inside `ns` (the runner's in-namespace process helper).
fn ip_in(ns: &Netns, args: &[&str]) -> std::io::Result<std::process::Output> {
    mptcp_runner::nft::run_in(ns, "ip", args, None)
}

fn endpoint_dump_matches_ip() -> Result<Completion, Failed> {
    if !nix::unistd::geteuid().is_root() {
        return skip("needs root".into());
    }
    let ns = Netns::new("xcheck").map_err(|e| e.to_string())?;
    match ip_in(&ns, &["-j", "mptcp", "endpoint", "show"]) {
        Ok(o) if o.status.success() => {}
        Ok(o) => return skip(format!("`ip mptcp` unsupported here: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => return skip(format!("cannot run `ip`: {e}")),
    }
    let up = ip_in(&ns, &["link", "set", "lo", "up"]).map_err(|e| e.to_string())?;
    if !up.status.success() {
        return Err("ip link set lo up failed".into());
    }
    let pm = PmClient::open(&ns, "xcheck").map_err(|e| e.to_string())?;
    let lo = 1;
    let f = |s: &str| s.parse::<EndpointFlags>().map_err(|e| e.to_string());
    for ep in [
        Endpoint::new("10.0.1.1".parse().unwrap()).with_flags(f("signal")?),
        Endpoint::new("10.0.1.2".parse().unwrap()).with_flags(f("subflow backup")?).with_ifindex(lo),
        Endpoint::new("127.0.0.1".parse().unwrap()).with_flags(f("signal")?).with_port(10100).with_id(42),
        Endpoint::new("dead:beef:1::1".parse().unwrap()).with_flags(f("subflow fullmesh")?).with_id(200),
        Endpoint::new("10.0.1.5".parse().unwrap()),
    ] {
        pm.add(ep).map_err(|e| e.to_string())?;
    }
    let ours = pm.dump(None).map_err(|e| e.to_string())?;
    let out = ip_in(&ns, &["-j", "mptcp", "endpoint", "show"]).map_err(|e| e.to_string())?;
    let theirs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).map_err(|e| format!("ip -j output is not JSON: {e}"))?;

    let norm_ours: BTreeSet<String> = ours
        .iter()
        .map(|e| {
            let dev = e.ifindex.map(|i| if i == lo { "lo".to_owned() } else { format!("if{i}") });
            let mut flags = e.flags.words();
            flags.sort();
            format!("{} id={} port={:?} flags={} dev={:?}", e.addr, e.id.unwrap_or(0), e.port, flags.join(","), dev)
        })
        .collect();
    let norm_theirs: BTreeSet<String> = theirs
        .iter()
        .map(|v| {
            let mut flags: Vec<String> = ["signal", "subflow", "backup", "fullmesh", "implicit", "laminar"]
                .iter()
                .filter(|k| v.get(**k).and_then(serde_json::Value::as_bool) == Some(true))
                .map(|k| (*k).to_owned())
                .collect();
            flags.sort();
            let port = v.get("port").and_then(serde_json::Value::as_u64).map(|p| p as u16);
            let dev = v.get("dev").and_then(serde_json::Value::as_str).map(str::to_owned);
            format!(
                "{} id={} port={:?} flags={} dev={:?}",
                v.get("address").and_then(serde_json::Value::as_str).unwrap_or("?"),
                v.get("id").and_then(serde_json::Value::as_u64).unwrap_or(0),
                port,
                flags.join(","),
                dev
            )
        })
        .collect();
    if norm_ours.len() != 5 {
        return Err(format!("expected 5 endpoints in our dump, got {norm_ours:#?}").into());
    }
    if norm_ours != norm_theirs {
        return Err(format!("the harness decodes\n{norm_ours:#?}\nbut ip -j mptcp endpoint show prints\n{norm_theirs:#?}").into());
    }
    Ok(Completion::Completed)
}
