//! nftables inside a host: `nft -f -` run with the host's namespace (the process joins it
//! between fork and exec). Rules die with the namespace.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::netns::Netns;

/// Loads a ruleset into the namespace; the error carries nft's own message.
pub fn load(ns: &Netns, rules: &str) -> Result<(), String> {
    let out = run_in(ns, "nft", &["-f", "-"], Some(rules)).map_err(|e| format!("cannot run nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft -f - failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Lists the ruleset of the namespace (`nft list ruleset`).
pub fn list(ns: &Netns) -> Result<String, String> {
    let out = run_in(ns, "nft", &["list", "ruleset"], None).map_err(|e| format!("cannot run nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Runs a program inside `ns` with optional standard input.
pub fn run_in(ns: &Netns, program: &str, args: &[&str], stdin: Option<&str>) -> std::io::Result<std::process::Output> {
    let fd = ns.fd().as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setns(2) is async-signal-safe; runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes())?;
    }
    child.wait_with_output()
}

/// The packet count of a named counter object of the namespace (`nft list counters`):
/// `None` when no table has a counter of that name.
pub fn counter_packets(ns: &Netns, name: &str) -> Result<Option<u64>, String> {
    let out = run_in(ns, "nft", &["list", "counters"], None).map_err(|e| format!("cannot run nft: {e}"))?;
    if !out.status.success() {
        return Err(format!("nft list counters failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    packets_in(&String::from_utf8_lossy(&out.stdout), name)
}

/// The packet count of the counter `name` in `nft list counters` output (`table <family>
/// <table> {`, `counter <name> {`, `packets N bytes M`); an error when several tables have
/// one of that name or its packet line is missing.
fn packets_in(listing: &str, name: &str) -> Result<Option<u64>, String> {
    let mut table = String::new();
    let mut current: Option<String> = None;
    let mut found: Vec<(String, Option<u64>)> = Vec::new();
    for line in listing.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", family, t, "{"] => table = format!("{family} {t}"),
            ["counter", n, "{"] => {
                current = (*n == name).then(|| table.clone());
                if let Some(t) = &current {
                    found.push((t.clone(), None));
                }
            }
            ["packets", p, "bytes", _] if current.is_some() => {
                if let Some(last) = found.last_mut() {
                    last.1 = p.parse().ok();
                }
                current = None;
            }
            _ => {}
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [(_, Some(p))] => Ok(Some(*p)),
        [(t, None)] => Err(format!("counter {name:?} of table {t} lists no packet count")),
        many => Err(format!("several tables have a counter {name:?}: {}", many.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft list counters` as nftables 1.0.6 prints it.
    const LISTED: &str = "table inet t {\n\tcounter echo_drop {\n\t\tpackets 4 bytes 240\n\t}\n}\n\
                          table ip u {\n\tcounter other {\n\t\tpackets 0 bytes 0\n\t}\n}\n";

    #[test]
    fn counters_are_found_by_name() {
        assert_eq!(packets_in(LISTED, "echo_drop"), Ok(Some(4)));
        assert_eq!(packets_in(LISTED, "other"), Ok(Some(0)));
        assert_eq!(packets_in(LISTED, "nope"), Ok(None));
        let twice = LISTED.replace("counter other", "counter echo_drop");
        assert!(packets_in(&twice, "echo_drop").unwrap_err().contains("inet t, ip u"));
        assert!(packets_in("table inet t {\n\tcounter x {\n\t}\n}\n", "x").is_err());
    }
}
