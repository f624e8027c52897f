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
