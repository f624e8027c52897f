//! Offload features of an interface (`hosts.<h>.offloads`): `ethtool -K DEV tso off ...`
//! run inside the host's namespace (as `nft` and `tc` are), then read back with
//! `ethtool -k DEV`: a setting that did not take effect fails the case instead of letting it
//! run with the offloads on. The interface lives in the case's namespace and goes with it.

use mptcp_spec::case::Offload;

use crate::netns::Netns;
use crate::nft::run_in;

/// `ethtool -k` names of the features a case can set.
pub fn long_name(short: &str) -> &'static str {
    match short {
        "tso" => "tcp-segmentation-offload",
        "gso" => "generic-segmentation-offload",
        "gro" => "generic-receive-offload",
        _ => "unknown-feature",
    }
}

/// The state `ethtool -k` prints for a feature (`on`, `off`, with `[fixed]` or
/// `[requested on]` dropped), if it prints it.
pub fn shown(text: &str, feature: &str) -> Option<bool> {
    let prefix = format!("{feature}:");
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(&prefix)?;
        match rest.split_whitespace().next()? {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        }
    })
}

fn onoff(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Applies one interface's settings and checks them.
pub fn apply(ns: &Netns, host: &str, o: &Offload) -> Result<(), String> {
    let mut args = vec!["-K", o.dev.as_str()];
    for (f, on) in &o.features {
        args.push(f);
        args.push(onoff(*on));
    }
    let cmd = format!("ethtool {}", args.join(" "));
    let out = run_in(ns, "ethtool", &args, None).map_err(|e| format!("{host}: cannot run `{cmd}` (install ethtool): {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() {
        return Err(format!("{host}: `{cmd}` failed ({}): {err}", out.status));
    }
    let show = run_in(ns, "ethtool", &["-k", &o.dev], None).map_err(|e| format!("{host}: cannot run ethtool: {e}"))?;
    let text = String::from_utf8_lossy(&show.stdout);
    for (f, on) in &o.features {
        let name = long_name(f);
        if shown(&text, name) != Some(*on) {
            return Err(format!(
                "{host}: `{cmd}` did not take effect: `ethtool -k {}` shows {name}: {}{}",
                o.dev,
                shown(&text, name).map_or("nothing", onoff),
                if err.is_empty() { String::new() } else { format!(" (ethtool said: {err})") }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWN: &str = "Features for ns3eth2:\nrx-checksumming: on\ntcp-segmentation-offload: off\n\ttx-tcp-segmentation: off\ngeneric-segmentation-offload: on [requested off]\ngeneric-receive-offload: off [fixed]\n";

    #[test]
    fn reads_what_ethtool_shows() {
        assert_eq!(shown(SHOWN, long_name("tso")), Some(false));
        assert_eq!(shown(SHOWN, long_name("gso")), Some(true));
        assert_eq!(shown(SHOWN, long_name("gro")), Some(false));
        assert_eq!(shown(SHOWN, "large-receive-offload"), None);
    }
}
