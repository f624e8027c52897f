//! `mptcp-conformance vm`: boot another kernel with virtme-ng (`vng`) and run the suite inside.
//!
//! The guest is a snapshot of this machine (vng exports the host's root filesystem read-only),
//! so the harness binary, the case library and the tools the cases use are the host's. For one
//! kernel ([`run_vm`]):
//!
//! 1. **Resolve the kernel** ([`resolve_kernel`]): a `vmlinuz`/`bzImage` file, a directory holding
//!    an unpacked Debian kernel (`boot/vmlinuz-*` or `usr/lib/modules/<v>/vmlinuz` next to
//!    `lib/modules/<v>/`), one or more Debian `.deb` files (unpacked once with `dpkg -x` into the
//!    cache, `depmod` run), or a kernel build tree (a `.config` and `arch/x86/boot/bzImage`).
//! 2. **KVM or TCG** ([`kvm_usable`]): `/dev/kvm` must open, and a tiny probe boot under KVM must
//!    print a marker in time (some hypervisors expose a `/dev/kvm` that cannot run stock kernels:
//!    the guest hangs without a word). The answer is cached per host boot. Under TCG the guest
//!    gets `KSFT_MACHINE_SLOW=yes` and `MPTCP_CT_SLOW=10` (networking is ~10x slower), runs on
//!    one TCG thread (multi-threaded TCG raced with the kernel's int3-based code patching:
//!    "Oops: int3" once in ~5 runs; single-threaded was also 2-3x faster on 2 host cores) and
//!    boots with `tsc=unstable`.
//! 3. **Boot and run**: `vng --run <kernel> --exec '<harness> run --ktap ...'` as root in the
//!    guest, with the artifact directory shared read-write (`--rwdir`) so JUnit, JSON lines and
//!    failure bundles come back. vng runs in its own process group; the run is bounded by a
//!    deadline (and a shorter one until the guest command starts) and on timeout, Ctrl-C or
//!    SIGTERM the whole group (vng and QEMU) is killed: no QEMU is left behind.
//! 4. **Stream and judge**: the guest's stdout (KTAP) and vng's stderr (the guest's stderr and
//!    the kernel console at loglevel 5: warnings, oopses, panics) are echoed live and parsed.
//!    The verdict ([`classify`]) is the guest's exit code (0 pass, 1 fail, 4 skip), checked
//!    against the KTAP it printed; vng's 255, a panic/Oops/BUG line on the console, a boot hang
//!    or the deadline make it a **crash**, never a pass or a skip.
//!
//! [`run_matrix`] does this for every kernel of `ci/kernels.toml` (already unpacked by
//! `ci/fetch-kernels` into `target/kernels/<name>/`), collects every result before failing and
//! prints a summary table (also written to `summary.txt` and, on GitHub, the step summary).
//!
//! Artifacts of one run, in `target/vm-artifacts/<label>/` unless `--artifacts` says otherwise:
//! `ktap.txt` (guest stdout), `console.log` (kernel console and guest stderr), `junit.xml` and
//! `results.jsonl` (written by the harness in the guest), `cases/<case>/` (failure bundles),
//! `vm.xml` (JUnit with one test case for the VM run itself: a crash is a failed test there) and
//! `result.txt` (the verdict line).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::library::{Library, workspace_root};
use crate::report::{KSFT_FAIL, KSFT_PASS, KSFT_SKIP, PROGRAM};

/// Exit code for a command line that does not parse (as `cli::EXIT_USAGE`).
pub const EXIT_USAGE: u8 = 2;
/// Exit code after Ctrl-C / SIGTERM (the VM was killed).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Printed by the guest command before anything else: the boot is over.
const START_MARKER: &str = "MPTCP-CT-GUEST-START";
/// Printed by the KVM probe guest.
const KVM_MARKER: &str = "MPTCP-CT-KVM-OK";
/// Slowness factor under TCG (software emulation): networking is ~10x slower than on a host.
pub const TCG_SLOWNESS: f64 = 10.0;
/// Slowness factor under KVM (a VM, often nested on CI runners).
pub const KVM_SLOWNESS: f64 = 2.0;

/// `mptcp-conformance vm --help`.
pub const USAGE: &str = "\
mptcp-conformance vm: boot a kernel with virtme-ng (vng) and run the cases inside it

Usage:
  mptcp-conformance vm --kernel PATH [--kernel PATH...] [VM OPTIONS] [RUN ARGS...]
  mptcp-conformance vm --matrix [FILE] [--kernel-name NAME]... [--kernel-tag TAG]...
                       [VM OPTIONS] [RUN ARGS...]

Kernel (--kernel):
  a vmlinuz/bzImage file; a directory with an unpacked Debian kernel (boot/vmlinuz-* and
  lib/modules/<version>/, as ci/fetch-kernels leaves them); one or more Debian .deb files
  (linux-image-*, or linux-binary-* + linux-modules-* + linux-base-*; unpacked into the cache
  with dpkg -x); or a kernel build tree (.config and arch/x86/boot/bzImage).

Matrix (--matrix): every kernel of FILE (default ci/kernels.toml), unpacked by
  ci/fetch-kernels in --kernels-dir (default target/kernels/<name>); --kernel-name and
  --kernel-tag select some. Results of all kernels are collected, then a summary table.

VM options:
  --bin PATH          harness binary run in the guest (default: this program)
  --kvm | --no-kvm    force KVM or TCG (default: KVM when a probe boot works; cached per boot;
                      also MPTCP_CT_VM_KVM=1/0)
  --cpus N            guest CPUs (default 2)
  --memory SIZE       guest memory (default 2G)
  --timeout SECS      bound of the whole VM run (default 3600 under TCG, 1200 under KVM)
  --boot-timeout SECS bound until the guest command starts (default 300 TCG, 120 KVM)
  --slow FACTOR       MPTCP_CT_SLOW in the guest (default 10 under TCG with
                      KSFT_MACHINE_SLOW=yes, 2 under KVM)
  --artifacts DIR     shared read-write with the guest: KTAP, console, JUnit, failure bundles
                      (default target/vm-artifacts/<label>; the matrix adds /<kernel name>)
  --cache DIR         unpacked .debs and the KVM probe answer (default target/vm-cache)
  --kernels-dir DIR   where the matrix finds kernels (default target/kernels)
  --name LABEL        the run's name in reports (default from the kernel path)
  --env KEY=VALUE     extra guest environment (repeatable; MPTCP_CT_* of the host is passed on)
  --guest-cmd CMD     run this shell command in the guest instead of the harness (testing the
                      runner: 'echo c > /proc/sysrq-trigger' must be reported as a crash)
  --vng PATH          the vng program (default: vng on PATH, or MPTCP_CT_VNG)
  --vng-arg ARG       one more vng argument (repeatable)
  --quiet             do not echo the kernel console (KTAP and splats are still echoed)

Run args: anything else goes to the harness in the guest. They start with a subcommand
  (run, list, probe, validate) or are `run` options and filters: `--shard 2/4 connect::`,
  `--tag smoke`, `-j 1`, `probe -v`. `run` gets --ktap, --junit and --json added.

Exit status: 0 pass, 1 a case failed or the kernel crashed / hung / timed out / did not boot,
  4 everything skipped, 2 bad command line, 130 interrupted (the VM was killed).
";

// ------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------

/// KVM or TCG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvmMode {
    /// Probe once (cached per host boot).
    #[default]
    Auto,
    /// Always KVM.
    On,
    /// Always TCG (`vng --disable-kvm`).
    Off,
}

/// Options of one VM run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VmOptions {
    /// `--kernel` paths (several only for `.deb` files).
    pub kernel: Vec<PathBuf>,
    /// The run's name in reports.
    pub label: Option<String>,
    /// The harness binary run in the guest.
    pub binary: Option<PathBuf>,
    /// Arguments for the harness in the guest.
    pub guest_args: Vec<String>,
    /// A shell command run instead of the harness (runner tests).
    pub guest_command: Option<String>,
    /// KVM or TCG.
    pub kvm: KvmMode,
    /// Guest CPUs.
    pub cpus: Option<u32>,
    /// Guest memory (`2G`).
    pub memory: Option<String>,
    /// Bound of the whole run.
    pub timeout: Option<Duration>,
    /// Bound until the guest command starts.
    pub boot_timeout: Option<Duration>,
    /// `MPTCP_CT_SLOW` in the guest.
    pub slow: Option<f64>,
    /// Artifact directory shared with the guest.
    pub artifacts: Option<PathBuf>,
    /// Cache directory (unpacked .debs, KVM probe).
    pub cache: Option<PathBuf>,
    /// Extra guest environment.
    pub env: Vec<(String, String)>,
    /// The vng program.
    pub vng: Option<PathBuf>,
    /// More vng arguments.
    pub vng_args: Vec<String>,
    /// Do not echo the kernel console.
    pub quiet: bool,
    /// Prefix of echoed lines (the matrix sets `[name] `).
    pub echo_prefix: String,
}

/// Options of a matrix run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatrixOptions {
    /// The kernel list (`ci/kernels.toml`).
    pub list: PathBuf,
    /// Where kernels are unpacked (`target/kernels`).
    pub kernels_dir: Option<PathBuf>,
    /// `--kernel-name`: only these.
    pub names: Vec<String>,
    /// `--kernel-tag`: only kernels with one of these tags.
    pub tags: Vec<String>,
    /// Options for every kernel (artifacts become `<artifacts>/<name>`).
    pub vm: VmOptions,
}

/// A parsed `vm` command line.
#[derive(Debug, Clone, PartialEq)]
pub enum VmCommand {
    /// One kernel.
    Single(VmOptions),
    /// The kernel list.
    Matrix(MatrixOptions),
    /// `--help`.
    Help,
}

fn secs(flag: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{flag} needs a number of seconds > 0, got {v:?}")),
    }
}

/// Parses the arguments after `vm`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<VmCommand, String> {
    let mut args: std::collections::VecDeque<String> = args.into_iter().collect();
    let mut o = VmOptions::default();
    let mut matrix: Option<PathBuf> = None;
    let (mut names, mut tags, mut kernels_dir) = (Vec::new(), Vec::new(), None);
    let mut passthrough = false;
    while let Some(a) = args.pop_front() {
        if passthrough {
            o.guest_args.push(a);
            continue;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let value = |args: &mut std::collections::VecDeque<String>| {
            inline.clone().or_else(|| args.pop_front()).ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" if o.guest_args.is_empty() => return Ok(VmCommand::Help),
            "--" => passthrough = true,
            "--kernel" => o.kernel.push(PathBuf::from(value(&mut args)?)),
            "--matrix" => {
                // The file is optional: take the next word only if it is not an option.
                let file = match inline.clone() {
                    Some(v) => Some(v),
                    None if args.front().is_some_and(|n| n.ends_with(".toml")) => args.pop_front(),
                    None => None,
                };
                matrix = Some(file.map(PathBuf::from).unwrap_or_else(|| base_dir().join("ci/kernels.toml")));
            }
            "--kernel-name" => names.push(value(&mut args)?),
            "--kernel-tag" => tags.push(value(&mut args)?),
            "--kernels-dir" => kernels_dir = Some(PathBuf::from(value(&mut args)?)),
            "--bin" => o.binary = Some(PathBuf::from(value(&mut args)?)),
            "--kvm" | "--no-kvm" => {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                o.kvm = if flag == "--kvm" { KvmMode::On } else { KvmMode::Off };
            }
            "--cpus" => {
                let v = value(&mut args)?;
                o.cpus = Some(v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("--cpus needs a positive integer, got {v:?}"))?);
            }
            "--memory" => o.memory = Some(value(&mut args)?),
            "--timeout" => o.timeout = Some(secs("--timeout", &value(&mut args)?)?),
            "--boot-timeout" => o.boot_timeout = Some(secs("--boot-timeout", &value(&mut args)?)?),
            "--slow" => {
                let v = value(&mut args)?;
                o.slow = Some(v.parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 1.0).ok_or_else(|| format!("--slow needs a factor >= 1, got {v:?}"))?);
            }
            "--artifacts" => o.artifacts = Some(PathBuf::from(value(&mut args)?)),
            "--cache" => o.cache = Some(PathBuf::from(value(&mut args)?)),
            "--name" => o.label = Some(value(&mut args)?),
            "--env" => {
                let v = value(&mut args)?;
                let (k, val) = v.split_once('=').filter(|(k, _)| valid_env_name(k)).ok_or_else(|| format!("--env needs KEY=VALUE, got {v:?}"))?;
                o.env.push((k.to_owned(), val.to_owned()));
            }
            "--guest-cmd" => o.guest_command = Some(value(&mut args)?),
            "--vng" => o.vng = Some(PathBuf::from(value(&mut args)?)),
            "--vng-arg" => o.vng_args.push(value(&mut args)?),
            "--quiet" => o.quiet = true,
            // Everything else is for the harness in the guest, in order (values included).
            _ => o.guest_args.push(a),
        }
    }
    match matrix {
        Some(list) => {
            if !o.kernel.is_empty() {
                return Err("--kernel and --matrix exclude each other".into());
            }
            Ok(VmCommand::Matrix(MatrixOptions { list, kernels_dir, names, tags, vm: o }))
        }
        None => {
            if !names.is_empty() || !tags.is_empty() {
                return Err("--kernel-name and --kernel-tag need --matrix".into());
            }
            if o.kernel.is_empty() {
                return Err("give a kernel with --kernel PATH (or --matrix for the kernel list)".into());
            }
            Ok(VmCommand::Single(o))
        }
    }
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && !k.starts_with(|c: char| c.is_ascii_digit()) && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `mptcp-conformance vm ARGS`: parses, runs, prints the verdict; returns the exit code.
pub fn main(args: Vec<String>) -> u8 {
    match parse(args) {
        Err(e) => {
            eprintln!("mptcp-conformance vm: failed to parse the command line: {e}\n(`mptcp-conformance vm --help` prints the usage)");
            EXIT_USAGE
        }
        Ok(VmCommand::Help) => {
            print!("{USAGE}");
            KSFT_PASS
        }
        Ok(VmCommand::Single(o)) => {
            let outcome = run_vm(&o);
            eprintln!("{}", outcome.verdict_line());
            outcome.exit_code()
        }
        Ok(VmCommand::Matrix(m)) => run_matrix(&m),
    }
}

// ------------------------------------------------------------------------------------------
// Verdicts
// ------------------------------------------------------------------------------------------

/// What a VM run amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmVerdict {
    /// The guest's run passed (exit 0, KTAP without a failure).
    Pass,
    /// A case failed (the names are in [`KtapSummary::failed`]) or the harness reported an error.
    Fail(String),
    /// Everything was skipped (exit 4).
    Skip,
    /// The kernel crashed, hung or the run timed out: the reason.
    Crash(String),
    /// The VM could not be started (vng missing, kernel not found, ...): the reason.
    Error(String),
    /// Ctrl-C / SIGTERM: the VM was killed.
    Interrupted,
}

impl VmVerdict {
    /// A short word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            VmVerdict::Pass => "PASS",
            VmVerdict::Fail(_) => "FAIL",
            VmVerdict::Skip => "SKIP",
            VmVerdict::Crash(_) => "CRASH",
            VmVerdict::Error(_) => "ERROR",
            VmVerdict::Interrupted => "INTERRUPTED",
        }
    }
}

/// How the vng process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VngExit {
    /// Exit code (vng passes the guest command's through; 255: the guest crashed).
    Code(i32),
    /// Killed by a signal we did not send.
    Signal(i32),
    /// The whole-run deadline passed: killed.
    Timeout(Duration),
    /// The guest command did not start in time: killed.
    BootTimeout(Duration),
    /// Ctrl-C / SIGTERM: killed.
    Interrupted(i32),
}

/// What the guest printed as KTAP (its stdout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KtapSummary {
    /// `TAP version` seen.
    pub header: bool,
    /// `1..N`.
    pub plan: Option<usize>,
    /// Result lines: passed (plain `ok`).
    pub pass: usize,
    /// Result lines: `not ok`.
    pub fail: usize,
    /// Result lines: `ok ... # SKIP`.
    pub skip: usize,
    /// Result lines: `ok ... # XFAIL`.
    pub xfail: usize,
    /// Names of the failed results (program prefix removed).
    pub failed: Vec<String>,
    /// The `# Totals:` line: pass, fail, xfail, xpass, skip.
    pub totals: Option<[usize; 5]>,
}

impl KtapSummary {
    /// Feeds one line of guest stdout (top-level KTAP only; nested blocks are indented).
    pub fn feed(&mut self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.starts_with("TAP version") || line.starts_with("KTAP version") {
            self.header = true;
        } else if let Some(n) = line.strip_prefix("1..").and_then(|n| n.trim().parse().ok()) {
            self.plan = Some(n);
        } else if let Some(rest) = line.strip_prefix("# Totals:") {
            let mut t = [0usize; 5];
            for field in rest.split_whitespace() {
                let Some((k, v)) = field.split_once(':') else { continue };
                let Ok(v) = v.parse::<usize>() else { continue };
                match k {
                    "pass" => t[0] = v,
                    "fail" => t[1] = v,
                    "xfail" => t[2] = v,
                    "xpass" => t[3] = v,
                    "skip" => t[4] = v,
                    _ => {}
                }
            }
            self.totals = Some(t);
        } else if let Some((ok, name, directive)) = result_line(line) {
            let directive = directive.to_ascii_uppercase();
            if !ok {
                self.fail += 1;
                self.failed.push(name);
            } else if directive.starts_with("SKIP") {
                self.skip += 1;
            } else if directive.starts_with("XFAIL") {
                self.xfail += 1;
            } else {
                self.pass += 1;
            }
        }
    }

    /// Results seen (result lines).
    pub fn results(&self) -> usize {
        self.pass + self.fail + self.skip + self.xfail
    }

    /// passed / failed / skipped, from the totals line when there is one.
    pub fn counts(&self) -> (usize, usize, usize) {
        match self.totals {
            Some([p, f, xf, xp, s]) => (p + xf, f + xp, s),
            None => (self.pass + self.xfail, self.fail, self.skip),
        }
    }
}

/// `ok 3 - mptcp-conformance: connect::v4 # SKIP why` -> (true, "connect::v4", "SKIP why").
fn result_line(line: &str) -> Option<(bool, String, String)> {
    let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
        (false, r)
    } else if let Some(r) = line.strip_prefix("ok ") {
        (true, r)
    } else {
        return None;
    };
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].trim_start();
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
    let (name, directive) = match rest.split_once(" #") {
        Some((n, d)) => (n.trim(), d.trim()),
        None => (rest.trim(), ""),
    };
    let name = name.strip_prefix(PROGRAM).and_then(|n| n.strip_prefix(": ")).unwrap_or(name);
    Some((ok, name.to_owned(), directive.to_owned()))
}

/// What the kernel console said (vng's stderr at loglevel 5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleScan {
    /// `Linux version X`.
    pub kernel_version: Option<String>,
    /// The first crash line (panic, Oops, BUG, general protection fault).
    pub crash: Option<String>,
    /// Warning-class splats (WARNING, hung task, RCU stall): the first few lines.
    pub splats: Vec<String>,
}

/// Console lines that mean the kernel crashed (or is about to).
const CRASH_PATTERNS: &[&str] = &[
    "Kernel panic - not syncing",
    "Oops",
    "BUG: ",
    "kernel BUG at ",
    "general protection fault",
    "Unable to handle kernel",
];
/// Console lines that are kernel splats short of a crash (the harness in the guest also fails
/// the case that was running when one appeared in its kernel log watch).
const SPLAT_PATTERNS: &[&str] = &["WARNING: ", "INFO: task ", "rcu: INFO: ", "watchdog: "];

/// The message of a kernel log line: after a `[  12.345678] ` stamp, or the whole line. `None`
/// for indented lines (quotes in the harness's own output are indented).
fn console_message(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix('[') {
        let (stamp, msg) = rest.split_once(']')?;
        let stamp = stamp.trim();
        if !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Some(msg.trim_start());
        }
        return None;
    }
    (!line.starts_with(char::is_whitespace)).then_some(line)
}

impl ConsoleScan {
    /// Feeds one line of vng's stderr.
    pub fn feed(&mut self, line: &str) {
        let Some(msg) = console_message(line.trim_end()) else { return };
        if self.kernel_version.is_none()
            && let Some(v) = msg.strip_prefix("Linux version ")
        {
            self.kernel_version = v.split_whitespace().next().map(str::to_owned);
        }
        if self.crash.is_none() && CRASH_PATTERNS.iter().any(|p| msg.starts_with(p)) {
            self.crash = Some(msg.to_owned());
        } else if self.splats.len() < 5 && SPLAT_PATTERNS.iter().any(|p| msg.starts_with(p)) {
            self.splats.push(msg.to_owned());
        }
    }
}

/// Everything the verdict depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// How vng ended.
    pub exit: VngExit,
    /// The guest command started (its first line came back).
    pub started: bool,
    /// The guest's KTAP.
    pub ktap: KtapSummary,
    /// The console.
    pub console: ConsoleScan,
    /// The guest ran the harness's `run` (KTAP expected), not another subcommand or a command.
    pub expects_ktap: bool,
}

/// The verdict of a VM run. A crash wins over everything the guest printed; an exit code is
/// believed only when the KTAP agrees with it.
pub fn classify(o: &Observed) -> VmVerdict {
    let console_crash = o.console.crash.as_ref().map(|l| format!("kernel crash on the console: {l}"));
    match o.exit {
        VngExit::Interrupted(_) => return VmVerdict::Interrupted,
        VngExit::Timeout(d) => {
            return VmVerdict::Crash(console_crash.unwrap_or_else(|| {
                format!("timeout: the VM run exceeded {} s and was killed (guest hung, or raise --timeout)", d.as_secs())
            }));
        }
        VngExit::BootTimeout(d) => {
            return VmVerdict::Crash(console_crash.unwrap_or_else(|| {
                format!("boot hang: the guest command did not start within {} s (the VM was killed)", d.as_secs())
            }));
        }
        VngExit::Signal(s) => return VmVerdict::Crash(format!("vng was killed by signal {s}")),
        VngExit::Code(_) => {}
    }
    if let Some(c) = console_crash {
        return VmVerdict::Crash(c);
    }
    let VngExit::Code(code) = o.exit else { unreachable!("handled above") };
    if code == 255 {
        return VmVerdict::Crash("the guest crashed: vng exited 255 (kernel panic, or the VM died)".into());
    }
    if !o.started {
        return VmVerdict::Error(format!(
            "vng exited {code} before the guest command started (the kernel did not boot, or vng/QEMU failed: see the console log)"
        ));
    }
    if !o.expects_ktap {
        return match code {
            0 => VmVerdict::Pass,
            4 => VmVerdict::Skip,
            c => VmVerdict::Fail(format!("the guest command exited {c}")),
        };
    }
    let k = &o.ktap;
    let (_, failed, _) = k.counts();
    match code {
        0 if k.totals.is_none() => VmVerdict::Fail("the harness exited 0 but printed no KTAP totals (output cut?)".into()),
        0 if failed > 0 || k.fail > 0 => VmVerdict::Fail(format!("the harness exited 0 but its KTAP has {failed} failure(s)")),
        0 => VmVerdict::Pass,
        1 if failed > 0 || k.fail > 0 => VmVerdict::Fail(format!("{} case(s) failed", failed.max(k.fail))),
        1 => VmVerdict::Fail("the harness exited 1 (see its output)".into()),
        4 if k.pass == 0 && k.fail == 0 => VmVerdict::Skip,
        4 => VmVerdict::Fail("the harness exited 4 (skip) but its KTAP has results that are not skips".into()),
        c => VmVerdict::Fail(format!("the harness exited {c} in the guest (2: bad command line, 126/127: binary not runnable there)")),
    }
}

/// The outcome of one VM run.
#[derive(Debug, Clone, PartialEq)]
pub struct VmOutcome {
    /// The run's name.
    pub label: String,
    /// The verdict.
    pub verdict: VmVerdict,
    /// What the guest printed and the console said (empty if the VM never started).
    pub observed: Option<Observed>,
    /// KVM (true) or TCG.
    pub kvm: bool,
    /// Wall time of the VM run (boot, run, power-off).
    pub wall: Duration,
    /// Where the artifacts are.
    pub artifacts: PathBuf,
}

impl VmOutcome {
    fn error(label: &str, artifacts: &Path, why: String) -> VmOutcome {
        VmOutcome {
            label: label.to_owned(),
            verdict: VmVerdict::Error(why),
            observed: None,
            kvm: false,
            wall: Duration::ZERO,
            artifacts: artifacts.to_owned(),
        }
    }

    /// kselftest's exit code: 0 pass, 1 fail or crash, 4 skip; 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            VmVerdict::Pass => KSFT_PASS,
            VmVerdict::Skip => KSFT_SKIP,
            VmVerdict::Interrupted => EXIT_INTERRUPTED,
            VmVerdict::Fail(_) | VmVerdict::Crash(_) | VmVerdict::Error(_) => KSFT_FAIL,
        }
    }

    /// The guest's KTAP counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.observed.as_ref().map(|o| o.ktap.counts()).unwrap_or_default()
    }

    /// The kernel version the console printed.
    pub fn kernel_version(&self) -> Option<&str> {
        self.observed.as_ref().and_then(|o| o.console.kernel_version.as_deref())
    }

    /// One line for people.
    pub fn verdict_line(&self) -> String {
        let (p, f, s) = self.counts();
        let kver = self.kernel_version().map(|v| format!("{v}, ")).unwrap_or_default();
        let accel = if self.kvm { "KVM" } else { "TCG" };
        let mut line = format!("vm: {} ({kver}{accel}): {}", self.label, self.verdict.word());
        match &self.verdict {
            VmVerdict::Crash(why) | VmVerdict::Error(why) | VmVerdict::Fail(why) => {
                let _ = write!(line, ": {why}");
            }
            _ => {}
        }
        let _ = write!(line, "; {p} passed, {f} failed, {s} skipped in {:.1} s", self.wall.as_secs_f64());
        if let Some(o) = &self.observed {
            if !o.ktap.failed.is_empty() {
                let _ = write!(line, "\n  failed: {}", o.ktap.failed.join(", "));
            }
            for s in &o.console.splats {
                let _ = write!(line, "\n  kernel splat: {s}");
            }
        }
        let _ = write!(line, "\n  artifacts: {}", self.artifacts.display());
        line
    }
}

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

/// A kernel ready for `vng --run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedKernel {
    /// What `vng --run` gets (an image, or a build tree).
    pub run_arg: PathBuf,
    /// The kernel image.
    pub image: PathBuf,
    /// A name derived from the input (for reports).
    pub label: String,
}

/// The kernel image of an unpacked Debian kernel: `boot/vmlinuz-*`, else
/// `{usr/,}lib/modules/*/vmlinuz` (linux-binary-* packages, trixie and newer).
pub fn find_image(dir: &Path) -> Option<PathBuf> {
    let list = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(d).map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        v.sort();
        v
    };
    let boot: Vec<PathBuf> = list(&dir.join("boot"))
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-") || n.starts_with("bzImage")))
        .filter(|p| p.exists())
        .collect();
    if let Some(p) = boot.last() {
        return Some(p.clone());
    }
    for mods in ["usr/lib/modules", "lib/modules"] {
        if let Some(p) = list(&dir.join(mods)).into_iter().map(|d| d.join("vmlinuz")).rfind(|p| p.is_file()) {
            return Some(p);
        }
    }
    None
}

fn is_build_tree(dir: &Path) -> bool {
    dir.join(".config").is_file() && dir.join("arch/x86/boot/bzImage").is_file()
}

/// A small stable hash (FNV-1a) for cache keys.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Resolves `--kernel` paths; `.deb` files are unpacked into `cache/debs/<key>/` once.
pub fn resolve_kernel(paths: &[PathBuf], cache: &Path) -> Result<ResolvedKernel, String> {
    let first = paths.first().ok_or("no kernel given")?;
    let debs = paths.iter().all(|p| p.extension().is_some_and(|e| e == "deb"));
    if debs {
        return unpack_debs(paths, cache);
    }
    if paths.len() > 1 {
        return Err("several --kernel paths are only for .deb files (e.g. linux-binary-* + linux-modules-*)".into());
    }
    let p = fs::canonicalize(first).map_err(|e| format!("kernel {}: {e}", first.display()))?;
    let label = first.file_name().and_then(|n| n.to_str()).unwrap_or("kernel").to_owned();
    if p.is_file() {
        return Ok(ResolvedKernel { run_arg: p.clone(), image: p, label });
    }
    if is_build_tree(&p) {
        return Ok(ResolvedKernel { run_arg: p.clone(), image: p.join("arch/x86/boot/bzImage"), label });
    }
    // An unpacked Debian kernel: give vng the image path as found (not canonicalized: vng walks
    // up from it to find lib/modules, and fetch-kernels' boot/ symlink must stay a symlink).
    let dir = if first.is_absolute() { first.clone() } else { std::env::current_dir().map(|c| c.join(first)).unwrap_or(p.clone()) };
    match find_image(&dir) {
        Some(image) => Ok(ResolvedKernel { run_arg: image.clone(), image, label }),
        None => Err(format!(
            "{}: no kernel here (want a vmlinuz/bzImage, boot/vmlinuz-* with lib/modules/, .deb files, or a build tree with .config and arch/x86/boot/bzImage)",
            first.display()
        )),
    }
}

fn unpack_debs(paths: &[PathBuf], cache: &Path) -> Result<ResolvedKernel, String> {
    let mut key = Vec::new();
    let mut names = Vec::new();
    for p in paths {
        let md = fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let mtime = md.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        key.extend_from_slice(format!("{name}\0{}\0{mtime}\0", md.len()).as_bytes());
        names.push(name);
    }
    names.sort();
    // Named after the image package (linux-image-*, or linux-binary-* for split kernels).
    let main = names.iter().find(|n| n.starts_with("linux-image-") || n.starts_with("linux-binary-")).or(names.first());
    let label = main.map(|n| n.split('_').next().unwrap_or(n).to_owned()).unwrap_or_else(|| "deb".into());
    let dest = cache.join("debs").join(format!("{label}-{:016x}", fnv(&key)));
    if dest.join(".complete").is_file()
        && let Some(image) = find_image(&dest)
    {
        return Ok(ResolvedKernel { run_arg: image.clone(), image, label });
    }
    let tmp = dest.with_extension(format!("unpack-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let cleanup = |e: String| {
        let _ = fs::remove_dir_all(&tmp);
        e
    };
    for p in paths {
        eprintln!("vm: unpacking {} into {}", p.display(), dest.display());
        let st = Command::new("dpkg").arg("-x").arg(p).arg(&tmp).status().map_err(|e| cleanup(format!("run dpkg -x: {e}")))?;
        if !st.success() {
            return Err(cleanup(format!("dpkg -x {} failed ({st})", p.display())));
        }
    }
    let Some(image) = find_image(&tmp) else {
        return Err(cleanup(format!("no boot/vmlinuz-* nor lib/modules/*/vmlinuz in {}", names.join(", "))));
    };
    // Debian's postinst runs depmod; dpkg -x does not, and the guest's modprobe needs it.
    if let Some((base, kver)) = module_base(&tmp) {
        let depmod = ["/usr/sbin/depmod", "/sbin/depmod"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("depmod");
        let _ = Command::new(depmod).args(["-a", "-b"]).arg(&base).arg(&kver).stderr(Stdio::null()).status();
    }
    let _ = fs::write(tmp.join(".complete"), names.join("\n"));
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&tmp, &dest).map_err(|e| cleanup(format!("rename {} to {}: {e}", tmp.display(), dest.display())))?;
    let image = dest.join(image.strip_prefix(&tmp).unwrap_or(&image));
    Ok(ResolvedKernel { run_arg: image.clone(), image, label })
}

/// (depmod base dir, kernel version) of an unpacked tree.
fn module_base(root: &Path) -> Option<(PathBuf, String)> {
    for base in [root.to_path_buf(), root.join("usr")] {
        if let Ok(rd) = fs::read_dir(base.join("lib/modules"))
            && let Some(v) = rd.filter_map(|e| e.ok()).find(|e| e.path().is_dir()).and_then(|e| e.file_name().into_string().ok())
        {
            return Some((base, v));
        }
    }
    None
}

/// One kernel of `ci/kernels.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelEntry {
    /// Directory name under target/kernels and report name.
    pub name: String,
    /// `debian` or `debian-security`.
    pub archive: String,
    /// Debian suite.
    pub suite: String,
    /// `package=version` pins.
    pub packages: Vec<String>,
    /// Kernel tags (`vm-smoke`).
    pub tags: Vec<String>,
    /// Strict mode in the guest (a skip fails unless allow-listed).
    pub strict: bool,
    /// Capabilities this kernel is known to lack.
    pub allow_missing: Vec<String>,
    /// Cases known to fail on this kernel, with why (`known_failures = [{ case, reason }]`):
    /// their failure is an xfail in this kernel's run (MPTCP_CT_KNOWN_FAILURES).
    pub known_failures: Vec<(String, String)>,
}

/// Parses the kernel list.
pub fn parse_kernel_list(text: &str) -> Result<Vec<KernelEntry>, String> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    for key in doc.keys() {
        if key != "kernel" {
            return Err(format!("unknown top-level key `{key}` (only [[kernel]] tables)"));
        }
    }
    let Some(list) = doc.get("kernel") else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or("`kernel` must be an array of tables ([[kernel]])")?;
    let mut out: Vec<KernelEntry> = Vec::new();
    for (i, k) in list.iter().enumerate() {
        let t = k.as_table().ok_or_else(|| format!("kernel[{i}] is not a table"))?;
        let at = |f: &str| format!("kernel[{i}].{f}");
        let string = |f: &str, required: bool| -> Result<String, String> {
            match t.get(f) {
                Some(toml::Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("{} must be a string", at(f))),
                None if required => Err(format!("{} is missing", at(f))),
                None => Ok(String::new()),
            }
        };
        let strings = |f: &str| -> Result<Vec<String>, String> {
            match t.get(f) {
                None => Ok(Vec::new()),
                Some(toml::Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("{} must hold strings", at(f)))).collect(),
                Some(_) => Err(format!("{} must be an array of strings", at(f))),
            }
        };
        for key in t.keys() {
            if !["name", "archive", "suite", "packages", "tags", "strict", "allow_missing", "known_failures"].contains(&key.as_str()) {
                return Err(format!("unknown field {}", at(key)));
            }
        }
        let e = KernelEntry {
            name: string("name", true)?,
            archive: { let a = string("archive", false)?; if a.is_empty() { "debian".into() } else { a } },
            suite: string("suite", true)?,
            packages: strings("packages")?,
            tags: strings("tags")?,
            strict: match t.get("strict") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err(format!("{} must be true or false", at("strict"))),
            },
            allow_missing: strings("allow_missing")?,
            known_failures: match t.get("known_failures") {
                None => Vec::new(),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(j, v)| {
                        let at = format!("{}[{j}]", at("known_failures"));
                        let t = v.as_table().ok_or_else(|| format!("{at} must be a table {{ case, reason }}"))?;
                        if let Some(k) = t.keys().find(|k| !["case", "reason"].contains(&k.as_str())) {
                            return Err(format!("unknown field {at}.{k}"));
                        }
                        let get = |f: &str| t.get(f).and_then(|v| v.as_str()).filter(|s| !s.trim().is_empty()).map(str::to_owned).ok_or_else(|| format!("{at}.{f} must be a non-empty string"));
                        let (case, reason) = (get("case")?, get("reason")?);
                        if case.contains(char::is_whitespace) || reason.contains('\n') {
                            return Err(format!("{at}: the case id has no spaces and the reason is one line"));
                        }
                        Ok((case, reason))
                    })
                    .collect::<Result<_, String>>()?,
                Some(_) => return Err(format!("{} must be an array of tables", at("known_failures"))),
            },
        };
        if e.name.is_empty() || !e.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(format!("{}: {:?} must be non-empty [A-Za-z0-9._-]", at("name"), e.name));
        }
        if e.packages.is_empty() {
            return Err(format!("{} is empty", at("packages")));
        }
        if let Some(p) = e.packages.iter().find(|p| !p.contains('=')) {
            return Err(format!("{}: {p:?} is not pinned (write package=version)", at("packages")));
        }
        if out.iter().any(|o| o.name == e.name) {
            return Err(format!("{}: duplicate name {:?}", at("name"), e.name));
        }
        out.push(e);
    }
    Ok(out)
}

/// The kernels a matrix selects.
pub fn select_kernels<'a>(all: &'a [KernelEntry], names: &[String], tags: &[String]) -> Result<Vec<&'a KernelEntry>, String> {
    if let Some(n) = names.iter().find(|n| !all.iter().any(|k| &&k.name == n)) {
        let known: Vec<&str> = all.iter().map(|k| k.name.as_str()).collect();
        return Err(format!("no kernel named {n:?} (known: {})", known.join(", ")));
    }
    Ok(all
        .iter()
        .filter(|k| names.is_empty() || names.contains(&k.name))
        .filter(|k| tags.is_empty() || k.tags.iter().any(|t| tags.contains(t)))
        .collect())
}

// ------------------------------------------------------------------------------------------
// KVM
// ------------------------------------------------------------------------------------------

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// Whether KVM can run this kernel here: `/dev/kvm` opens read-write and a probe boot prints a
/// marker within 60 s (given up after 20 s without a kernel message). The answer is cached in
/// `cache/kvm-probe` for this host boot. Returns the answer and why.
pub fn kvm_usable(vng: &Path, kernel: &ResolvedKernel, cache: &Path) -> (bool, String) {
    if let Err(e) = fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return (false, format!("/dev/kvm cannot be opened read-write ({e})"));
    }
    let file = cache.join("kvm-probe");
    let id = boot_id();
    if let Ok(text) = fs::read_to_string(&file) {
        let mut lines = text.lines();
        if lines.next() == Some(id.as_str()) && !id.is_empty() {
            let usable = lines.next() == Some("yes");
            let why = lines.next().unwrap_or("").to_owned();
            return (usable, format!("{why} (cached in {})", file.display()));
        }
    }
    eprintln!("vm: probing KVM with a short boot (the answer is cached for this host boot)");
    let started = Instant::now();
    let mut cmd = Command::new(vng);
    cmd.arg("--run").arg(&kernel.run_arg).args(["--cpus", "1", "--memory", "512M", "--force-9p", "--verbose", "--user", "root"]);
    cmd.args(["--exec", &format!("echo {KVM_MARKER}")]);
    let mut saw_marker = false;
    let mut kernel_spoke = false;
    // "Probing EDD" comes from the boot stub; the kernel proper prints `[    0.000000] ...`.
    let limits = Limits { total: Duration::from_secs(60), boot: Duration::from_secs(20) };
    let exit = supervise(cmd, limits, &mut |_, line: &str| {
        kernel_spoke |= line.starts_with('[') && console_message(line).is_some();
        saw_marker |= line.contains(KVM_MARKER);
        Started::from(kernel_spoke || saw_marker)
    });
    let secs = started.elapsed().as_secs_f64();
    let interrupted = matches!(exit, Ok(VngExit::Interrupted(_)));
    let (usable, why) = match exit {
        Ok(VngExit::Code(0)) if saw_marker => (true, format!("a KVM probe boot worked in {secs:.1} s")),
        Ok(VngExit::BootTimeout(_)) => (false, "a KVM probe boot printed no kernel message in 20 s (this /dev/kvm cannot run the kernel)".to_owned()),
        Ok(e) => (false, format!("a KVM probe boot failed: {e:?} after {secs:.1} s")),
        Err(e) => (false, format!("a KVM probe boot could not start: {e}")),
    };
    if !interrupted {
        let _ = fs::create_dir_all(cache);
        let _ = fs::write(&file, format!("{id}\n{}\n{why}\n", if usable { "yes" } else { "no" }));
    }
    (usable, why)
}

// ------------------------------------------------------------------------------------------
// Running vng under a deadline
// ------------------------------------------------------------------------------------------

/// The process group of the vng being supervised (0: none); the signal handler kills it.
static CHILD_PGID: AtomicI32 = AtomicI32::new(0);
/// The signal that interrupted us (0: none).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, Ordering::SeqCst);
    let pg = CHILD_PGID.load(Ordering::SeqCst);
    if pg > 0 {
        // SAFETY: kill(2) is async-signal-safe; a stale group id at worst gets ESRCH.
        unsafe { libc::kill(-pg, libc::SIGTERM) };
    }
}

/// Installs the SIGINT/SIGTERM/SIGHUP handler for the guard's life; restores the old ones.
struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    fn install() -> SignalGuard {
        let mut old = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: plain sigaction(2) with a handler that only touches atomics and kill(2);
            // the structs are zero-initialised C PODs.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut act.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &act, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        SignalGuard { old }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores what sigaction returned above.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// vng's stdout: the guest command's stdout.
    Stdout,
    /// vng's stderr: the guest command's stderr and the kernel console.
    Stderr,
}

/// What the line sink reports back: whether the guest command has started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Started(bool);

impl From<bool> for Started {
    fn from(b: bool) -> Self {
        Started(b)
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    total: Duration,
    /// Until the sink reports the start (`Started(true)`).
    boot: Duration,
}

fn kill_group(pgid: i32, sig: libc::c_int) {
    if pgid > 0 {
        // SAFETY: kill(2) on our own child's process group.
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// Whether a live (not zombie) process is left in the process group.
fn group_alive(pgid: i32) -> bool {
    let Ok(rd) = fs::read_dir("/proc") else { return false };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
            let Some((_, rest)) = stat.rsplit_once(") ") else { return false };
            let f: Vec<&str> = rest.split_whitespace().take(3).collect();
            f.len() == 3 && f[0] != "Z" && f[0] != "X" && f[2].parse::<i32>().ok() == Some(pgid)
        })
}

/// SIGKILLs the group, then waits (at most 3 s) until no live member is left (a zombie waits
/// for whoever inherited it to reap it: it runs nothing).
fn kill_group_and_wait(pgid: i32) {
    if pgid <= 0 {
        return;
    }
    kill_group(pgid, libc::SIGKILL);
    let _ = crate::wait::poll_until(crate::wait::Deadline::after(Duration::from_secs(3)), || {
        // Orphans of the group (QEMU once vng is gone) are ours to reap: see `supervise`.
        // SAFETY: waitpid(2) on members of our own child's group, non-blocking; vng itself
        // was reaped before this is called.
        while unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        if !group_alive(pgid) {
            return Some(());
        }
        kill_group(pgid, libc::SIGKILL);
        None
    });
}

/// Stops the group: SIGTERM, up to 5 s for vng to exit, then SIGKILL to the whole group.
fn stop(child: &mut Child, pgid: i32) -> Option<ExitStatus> {
    kill_group(pgid, libc::SIGTERM);
    let status = crate::wait::poll_until(crate::wait::Deadline::after(Duration::from_secs(5)), || child.try_wait().ok().flatten()).ok();
    kill_group(pgid, libc::SIGKILL);
    let status = status.or_else(|| child.wait().ok());
    kill_group_and_wait(pgid);
    status
}

fn reader(stream: Stream, mut src: impl Read + Send + 'static, tx: mpsc::Sender<(Stream, Option<String>)>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(&mut src);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send((stream, Some(line))).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send((stream, None));
    });
}

/// Runs vng in its own process group, feeding every output line to `sink` as it comes, under
/// the limits. On a deadline or a signal the whole group (vng, QEMU, virtiofsd) is killed; when
/// vng exits by itself, whatever is left in its group is killed too.
fn supervise(mut cmd: Command, limits: Limits, sink: &mut dyn FnMut(Stream, &str) -> Started) -> io::Result<VngExit> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    // Become the reaper of orphaned descendants, so QEMU, reparented when vng dies, is reaped
    // here instead of lingering as a zombie under an init that may be slow to reap.
    // SAFETY: prctl(2) with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let _signals = SignalGuard::install();
    if INTERRUPTED.load(Ordering::SeqCst) != 0 {
        return Ok(VngExit::Interrupted(INTERRUPTED.load(Ordering::SeqCst)));
    }
    let mut child = cmd.spawn()?;
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    CHILD_PGID.store(pgid, Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        reader(Stream::Stdout, out, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        reader(Stream::Stderr, err, tx.clone());
    }
    drop(tx);
    let begin = Instant::now();
    let mut started = false;
    let mut open = 2;
    let mut exit: Option<VngExit> = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((_, None)) => open -= 1,
            Ok((stream, Some(line))) => {
                started |= sink(stream, &line).0;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open = 0,
        }
        if exit.is_none() {
            let sig = INTERRUPTED.load(Ordering::SeqCst);
            let killed = if sig != 0 {
                Some(VngExit::Interrupted(sig))
            } else if begin.elapsed() > limits.total {
                Some(VngExit::Timeout(limits.total))
            } else if !started && begin.elapsed() > limits.boot {
                Some(VngExit::BootTimeout(limits.boot))
            } else {
                None
            };
            if let Some(k) = killed {
                stop(&mut child, pgid);
                exit = Some(k);
            } else if let Ok(Some(status)) = child.try_wait() {
                exit = Some(match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                    (Some(c), _) => VngExit::Code(c),
                    (None, Some(s)) => VngExit::Signal(s),
                    (None, None) => VngExit::Code(-1),
                });
                // Nothing of the VM may outlive vng.
                kill_group_and_wait(pgid);
            }
            if exit.is_some() {
                drain_until = Some(Instant::now() + Duration::from_secs(5));
            }
        }
        if open == 0 && exit.is_some() {
            break;
        }
        if drain_until.is_some_and(|t| Instant::now() > t) {
            break;
        }
    }
    CHILD_PGID.store(0, Ordering::SeqCst);
    Ok(exit.unwrap_or(VngExit::Code(-1)))
}

// ------------------------------------------------------------------------------------------
// One VM run
// ------------------------------------------------------------------------------------------

/// The repository the defaults are relative to: the workspace this binary was built in when it
/// is still there (the harness finds its library there too), else the current directory (a
/// binary copied to another checkout, as CI jobs do).
pub fn base_dir() -> PathBuf {
    let built = workspace_root();
    if built.join("ci/kernels.toml").is_file() || built.join("cases").is_dir() {
        return built;
    }
    std::env::current_dir().unwrap_or(built)
}

/// Quotes a word for `sh`.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The harness binary to run in the guest: `--bin`, else this program if it is the harness,
/// else `mptcp-conformance` next to it, else the workspace's release build.
pub fn default_binary() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if exe.file_name().is_some_and(|n| n == "mptcp-conformance") {
            return exe;
        }
        if let Some(sibling) = exe.parent().map(|d| d.join("mptcp-conformance")).filter(|p| p.is_file()) {
            return sibling;
        }
    }
    base_dir().join("target/release/mptcp-conformance")
}

const SUBCOMMANDS: &[&str] = &["run", "list", "probe", "validate", "help", "coverage"];

/// The harness's arguments in the guest; `true` when it is a `run` (KTAP expected).
pub fn guest_harness_args(user: &[String], artifacts: &Path) -> (Vec<String>, bool) {
    let (sub, rest): (&str, &[String]) = match user.first().map(String::as_str) {
        Some(s) if SUBCOMMANDS.contains(&s) => (s, &user[1..]),
        _ => ("run", user),
    };
    let mut args = vec![sub.to_owned()];
    if sub == "run" {
        args.push("--ktap".into());
        args.push("--junit".into());
        args.push(artifacts.join("junit.xml").display().to_string());
        args.push("--json".into());
        args.push(artifacts.join("results.jsonl").display().to_string());
    }
    args.extend(rest.iter().cloned());
    (args, sub == "run")
}

/// The guest's environment: slowness, the library location, artifacts, `MPTCP_CT_*` of the
/// host, then `--env`.
pub fn guest_env(o: &VmOptions, kvm: bool, artifacts: &Path, host_env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in host_env {
        let host_only = k.starts_with("MPTCP_CT_VM") || k.starts_with("MPTCP_CT_KERNELS") || k == "MPTCP_CT_BIN" || k == "MPTCP_CT_VNG";
        if (k.starts_with("MPTCP_CT_") && !host_only) || k == "KSFT_MACHINE_SLOW" {
            env.insert(k.clone(), v.clone());
        }
    }
    let lib = Library::default_location();
    let here = base_dir();
    // The library the harness would use on this host; if it is not there (a copied binary),
    // the one of the checkout we run in.
    let pick = |p: PathBuf, dir: &str| {
        let p = if p.is_dir() || !here.join(dir).is_dir() { p } else { here.join(dir) };
        fs::canonicalize(&p).unwrap_or(p)
    };
    env.insert("MPTCP_CT_CASES".into(), pick(lib.cases, "cases").display().to_string());
    env.insert("MPTCP_CT_TOPOLOGIES".into(), pick(lib.topologies, "topologies").display().to_string());
    env.insert("MPTCP_CT_ARTIFACTS".into(), artifacts.join("cases").display().to_string());
    let slow = o.slow.unwrap_or(if kvm { KVM_SLOWNESS } else { TCG_SLOWNESS });
    env.insert("MPTCP_CT_SLOW".into(), format!("{slow}"));
    if !kvm {
        env.insert("KSFT_MACHINE_SLOW".into(), "yes".into());
    }
    for (k, v) in &o.env {
        env.insert(k.clone(), v.clone());
    }
    env.into_iter().collect()
}

/// The shell command vng runs in the guest: the start marker, then the harness (or
/// `--guest-cmd`) with its environment.
pub fn guest_script(binary: &Path, args: &[String], env: &[(String, String)], cwd: &Path, custom: Option<&str>) -> String {
    let mut s = format!("echo {START_MARKER}; cd {} || exit 125; ", sh_quote(&cwd.display().to_string()));
    let exports: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", sh_quote(v))).collect();
    if !exports.is_empty() {
        s.push_str(&format!("export {}; ", exports.join(" ")));
    }
    match custom {
        Some(c) => s.push_str(c),
        None => {
            s.push_str("exec ");
            s.push_str(&sh_quote(&binary.display().to_string()));
            for a in args {
                s.push(' ');
                s.push_str(&sh_quote(a));
            }
        }
    }
    s
}

/// vng's arguments.
pub fn vng_args(kernel: &ResolvedKernel, kvm: bool, o: &VmOptions, rwdir: &Path, cwd: &Path, script: &str) -> Vec<String> {
    let mut a = vec!["--run".to_owned(), kernel.run_arg.display().to_string()];
    if !kvm {
        a.push("--disable-kvm".into());
    }
    a.extend([
        "--cpus".to_owned(),
        o.cpus.unwrap_or(2).to_string(),
        "--memory".to_owned(),
        o.memory.clone().unwrap_or_else(|| "2G".into()),
        // virtiofsd is often missing or refuses to start (waits ~4 s, then 9p anyway).
        "--force-9p".to_owned(),
        // The console on stderr, at loglevel 5: warnings, oopses and panics, not the boot chatter.
        "--verbose".to_owned(),
        "--append".to_owned(),
        "loglevel=5".to_owned(),
    ]);
    if !kvm {
        // The TSC is unreliable under emulation and the kernel finds out late, flipping the
        // sched_clock static key on a running SMP guest; under TCG that cross-CPU code patching
        // once oopsed (int3 in sched_clock_cpu, Debian 7.2). Saying so up front avoids the flip.
        a.extend(["--append".to_owned(), "tsc=unstable".to_owned()]);
        // Multi-threaded TCG (one host thread per vCPU) races with the kernel's cross-CPU code
        // patching (static keys flipped via int3, e.g. netstamp_needed when a capture starts):
        // "Oops: int3" in patched code, seen on 6.12 and 7.2 about once in five runs. One TCG
        // thread for all vCPUs keeps the guest SMP and its code coherent.
        // (One word: vng's argparse would take a separate "-accel ..." for an option.)
        a.push("--qemu-opts=-accel tcg,thread=single".to_owned());
    }
    a.extend([
        "--user".to_owned(),
        "root".to_owned(),
        "--name".to_owned(),
        "mptcp-ct".to_owned(),
        "--rwdir".to_owned(),
        rwdir.display().to_string(),
        "--cwd".to_owned(),
        cwd.display().to_string(),
    ]);
    a.extend(o.vng_args.iter().cloned());
    a.push("--exec".into());
    a.push(script.to_owned());
    a
}

fn label_of(o: &VmOptions, k: &ResolvedKernel) -> String {
    o.label.clone().unwrap_or_else(|| k.label.clone())
}

fn vng_program(o: &VmOptions) -> PathBuf {
    o.vng.clone().or_else(|| std::env::var_os("MPTCP_CT_VNG").map(PathBuf::from)).unwrap_or_else(|| PathBuf::from("vng"))
}

/// Files of a previous run in the artifact directory (removed before a run).
const ARTIFACT_FILES: &[&str] = &["ktap.txt", "console.log", "junit.xml", "results.jsonl", "vm.xml", "result.txt"];

/// Boots the kernel and runs the harness (or `--guest-cmd`) inside; never panics, every error
/// is an outcome.
pub fn run_vm(o: &VmOptions) -> VmOutcome {
    let root = base_dir();
    let cache = o.cache.clone().unwrap_or_else(|| root.join("target/vm-cache"));
    let pre_label = o.label.clone().unwrap_or_else(|| o.kernel.first().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("kernel").to_owned());
    let pre_artifacts = o.artifacts.clone().unwrap_or_else(|| root.join("target/vm-artifacts").join(&pre_label));
    let kernel = match resolve_kernel(&o.kernel, &cache) {
        Ok(k) => k,
        Err(e) => return VmOutcome::error(&pre_label, &pre_artifacts, e),
    };
    let label = label_of(o, &kernel);
    let artifacts = o.artifacts.clone().unwrap_or_else(|| root.join("target/vm-artifacts").join(&label));
    if let Err(e) = fs::create_dir_all(artifacts.join("cases")) {
        return VmOutcome::error(&label, &artifacts, format!("create {}: {e}", artifacts.display()));
    }
    for f in ARTIFACT_FILES {
        let _ = fs::remove_file(artifacts.join(f));
    }
    let _ = fs::remove_dir_all(artifacts.join("cases")).and_then(|()| fs::create_dir_all(artifacts.join("cases")));
    let artifacts = fs::canonicalize(&artifacts).unwrap_or(artifacts);
    let binary = o.binary.clone().unwrap_or_else(default_binary);
    let binary = fs::canonicalize(&binary).unwrap_or(binary);
    if o.guest_command.is_none() && !binary.is_file() {
        return VmOutcome::error(&label, &artifacts, format!("the harness binary {} does not exist (cargo build --release, or --bin)", binary.display()));
    }
    let vng = vng_program(o);
    let kvm_env = std::env::var("MPTCP_CT_VM_KVM").ok();
    let mode = match (o.kvm, kvm_env.as_deref()) {
        (KvmMode::Auto, Some("1" | "yes" | "on")) => KvmMode::On,
        (KvmMode::Auto, Some("0" | "no" | "off")) => KvmMode::Off,
        (m, _) => m,
    };
    let kvm = match mode {
        KvmMode::On => true,
        KvmMode::Off => false,
        KvmMode::Auto => {
            let (usable, why) = kvm_usable(&vng, &kernel, &cache);
            eprintln!("vm: {}: {why}", if usable { "KVM" } else { "no KVM, TCG (software emulation)" });
            usable
        }
    };
    if INTERRUPTED.load(Ordering::SeqCst) != 0 {
        return VmOutcome { verdict: VmVerdict::Interrupted, ..VmOutcome::error(&label, &artifacts, String::new()) };
    }
    let host_env: Vec<(String, String)> = std::env::vars().collect();
    let env = guest_env(o, kvm, &artifacts, &host_env);
    let (args, is_run) = guest_harness_args(&o.guest_args, &artifacts);
    let expects_ktap = is_run && o.guest_command.is_none();
    let script = guest_script(&binary, &args, &env, &root, o.guest_command.as_deref());
    let vargs = vng_args(&kernel, kvm, o, &artifacts, &root, &script);
    let limits = Limits {
        total: o.timeout.unwrap_or(Duration::from_secs(if kvm { 1200 } else { 3600 })),
        boot: o.boot_timeout.unwrap_or(Duration::from_secs(if kvm { 120 } else { 300 })),
    };
    eprintln!(
        "vm: {label}: booting {} under {} ({} CPUs, {}), at most {} s; artifacts in {}",
        kernel.image.display(),
        if kvm { "KVM" } else { "TCG" },
        o.cpus.unwrap_or(2),
        o.memory.as_deref().unwrap_or("2G"),
        limits.total.as_secs(),
        artifacts.display()
    );
    let mut ktap_log = fs::File::create(artifacts.join("ktap.txt")).ok();
    let mut console_log = fs::File::create(artifacts.join("console.log")).ok();
    let _ = console_log.as_mut().map(|f| writeln!(f, "# {} {}", vng.display(), vargs.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")));
    let mut ktap = KtapSummary::default();
    let mut console = ConsoleScan::default();
    let mut started = false;
    let prefix = o.echo_prefix.clone();
    let quiet = o.quiet;
    let begin = Instant::now();
    let mut cmd = Command::new(&vng);
    cmd.args(&vargs).current_dir(&root);
    let exit = supervise(cmd, limits, &mut |stream, line| {
        match stream {
            Stream::Stdout => {
                if !started && line.trim() == START_MARKER {
                    started = true;
                    return Started(true);
                }
                ktap.feed(line);
                let _ = ktap_log.as_mut().map(|f| writeln!(f, "{line}"));
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "{prefix}{line}");
                let _ = out.flush();
            }
            Stream::Stderr => {
                console.feed(line);
                let _ = console_log.as_mut().map(|f| writeln!(f, "{line}"));
                let splat = console.crash.as_deref().is_some_and(|c| line.contains(c)) || console.splats.iter().any(|s| line.contains(s.as_str()));
                if !quiet || splat {
                    let _ = writeln!(io::stderr().lock(), "{prefix}{line}");
                }
            }
        }
        Started(started)
    });
    let wall = begin.elapsed();
    let exit = match exit {
        Ok(e) => e,
        Err(e) => {
            let why = if e.kind() == io::ErrorKind::NotFound {
                format!("{} not found: install virtme-ng (ci/setup-vm.sh) or give --vng", vng.display())
            } else {
                format!("start {}: {e}", vng.display())
            };
            return VmOutcome { kvm, ..VmOutcome::error(&label, &artifacts, why) };
        }
    };
    let observed = Observed { exit, started, ktap, console, expects_ktap };
    let verdict = classify(&observed);
    let outcome = VmOutcome { label, verdict, observed: Some(observed), kvm, wall, artifacts: artifacts.clone() };
    let _ = fs::write(artifacts.join("result.txt"), format!("{}\n", outcome.verdict_line()));
    let _ = fs::write(artifacts.join("vm.xml"), vm_junit(&outcome));
    outcome
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// JUnit for the VM run itself (one test case), so a crash shows up in GitHub's test report
/// even when the guest wrote no JUnit.
pub fn vm_junit(o: &VmOutcome) -> String {
    let name = xml_escape(&o.label);
    let time = o.wall.as_secs_f64();
    let (failures, errors, body) = match &o.verdict {
        VmVerdict::Pass | VmVerdict::Skip => (0, 0, String::new()),
        VmVerdict::Fail(why) => (1, 0, format!("<failure message=\"{}\"/>", xml_escape(why))),
        VmVerdict::Crash(why) => (1, 0, format!("<failure message=\"kernel crash: {}\"/>", xml_escape(why))),
        VmVerdict::Error(why) => (0, 1, format!("<error message=\"{}\"/>", xml_escape(why))),
        VmVerdict::Interrupted => (0, 1, "<error message=\"interrupted\"/>".to_owned()),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vm\" tests=\"1\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">\n<testcase classname=\"vm\" name=\"{name}\" time=\"{time:.3}\">{body}</testcase>\n</testsuite>\n</testsuites>\n"
    )
}

// ------------------------------------------------------------------------------------------
// The matrix
// ------------------------------------------------------------------------------------------

fn human_time(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// The summary table of a matrix run (plain text), failed cases and crash reasons below it.
pub fn summary_table(outcomes: &[VmOutcome]) -> String {
    let mut rows = vec![["kernel", "version", "accel", "result", "passed", "failed", "skipped", "wall", "crash"].map(str::to_owned).to_vec()];
    for o in outcomes {
        let (p, f, s) = o.counts();
        rows.push(vec![
            o.label.clone(),
            o.kernel_version().unwrap_or("-").to_owned(),
            (if o.kvm { "KVM" } else { "TCG" }).to_owned(),
            o.verdict.word().to_owned(),
            p.to_string(),
            f.to_string(),
            s.to_string(),
            human_time(o.wall),
            (if matches!(o.verdict, VmVerdict::Crash(_)) { "yes" } else { "no" }).to_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r.iter().enumerate().map(|(c, v)| if (4..=6).contains(&c) { format!("{v:>w$}", w = widths[c]) } else { format!("{v:<w$}", w = widths[c]) }).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for o in outcomes {
        match &o.verdict {
            VmVerdict::Crash(why) | VmVerdict::Error(why) | VmVerdict::Fail(why) => {
                let _ = writeln!(out, "{}: {}: {why}", o.label, o.verdict.word());
            }
            _ => {}
        }
        if let Some(obs) = &o.observed {
            for f in &obs.ktap.failed {
                let _ = writeln!(out, "{}: failed: {f}", o.label);
            }
        }
    }
    out
}

/// The same as a Markdown table (GitHub step summary).
pub fn summary_markdown(outcomes: &[VmOutcome]) -> String {
    let mut out = String::from("| kernel | version | accel | result | passed | failed | skipped | wall | crash |\n|---|---|---|---|--:|--:|--:|--:|---|\n");
    for o in outcomes {
        let (p, f, s) = o.counts();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {p} | {f} | {s} | {} | {} |",
            o.label,
            o.kernel_version().unwrap_or("-"),
            if o.kvm { "KVM" } else { "TCG" },
            o.verdict.word(),
            human_time(o.wall),
            if matches!(o.verdict, VmVerdict::Crash(_)) { "yes" } else { "no" }
        );
    }
    for o in outcomes {
        if let Some(obs) = &o.observed
            && !obs.ktap.failed.is_empty()
        {
            let _ = writeln!(out, "\n**{}** failed: {}", o.label, obs.ktap.failed.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "));
        }
    }
    out
}

/// The exit code of a matrix: 1 if any kernel failed, crashed or could not run; 4 if every
/// kernel skipped everything; 130 if interrupted; else 0.
pub fn matrix_exit(outcomes: &[VmOutcome]) -> u8 {
    if outcomes.iter().any(|o| o.verdict == VmVerdict::Interrupted) {
        EXIT_INTERRUPTED
    } else if outcomes.iter().any(|o| matches!(o.verdict, VmVerdict::Fail(_) | VmVerdict::Crash(_) | VmVerdict::Error(_))) {
        KSFT_FAIL
    } else if outcomes.iter().all(|o| o.verdict == VmVerdict::Skip) {
        // Also when nothing ran.
        KSFT_SKIP
    } else {
        KSFT_PASS
    }
}

/// Runs every selected kernel of the list, one after the other, then prints the summary.
pub fn run_matrix(m: &MatrixOptions) -> u8 {
    let text = match fs::read_to_string(&m.list) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mptcp-conformance vm: failed to read the kernel list {}: {e}", m.list.display());
            return KSFT_FAIL;
        }
    };
    let all = match parse_kernel_list(&text) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mptcp-conformance vm: {}: {e}", m.list.display());
            return KSFT_FAIL;
        }
    };
    let chosen = match select_kernels(&all, &m.names, &m.tags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mptcp-conformance vm: {e}");
            return EXIT_USAGE;
        }
    };
    if chosen.is_empty() {
        eprintln!("mptcp-conformance vm: no kernel selected");
        return KSFT_SKIP;
    }
    let root = base_dir();
    let kernels_dir = m.kernels_dir.clone().unwrap_or_else(|| root.join("target/kernels"));
    let art_root = m.vm.artifacts.clone().unwrap_or_else(|| root.join("target/vm-artifacts"));
    let mut outcomes = Vec::new();
    for k in chosen {
        let mut o = m.vm.clone();
        o.kernel = vec![kernels_dir.join(&k.name)];
        o.label = Some(k.name.clone());
        o.artifacts = Some(art_root.join(&k.name));
        o.echo_prefix = format!("[{}] ", k.name);
        // The kernel list decides the guest's strictness (not the host's environment, whose
        // allow-list is about the host kernel); `--env` still overrides both.
        o.env.insert(0, ("MPTCP_CT_STRICT".into(), if k.strict { "1" } else { "0" }.into()));
        o.env.insert(1, ("MPTCP_CT_ALLOW_MISSING".into(), k.allow_missing.join(",")));
        if !k.known_failures.is_empty() {
            // A file beside the kernel's artifacts (the guest sees the host's file system).
            let path = art_root.join(format!("{}.known-failures.txt", k.name));
            let text: String = k.known_failures.iter().map(|(c, r)| format!("{c} {r}\n")).collect();
            match std::fs::create_dir_all(&art_root).and_then(|()| std::fs::write(&path, text)) {
                Ok(()) => o.env.insert(2, ("MPTCP_CT_KNOWN_FAILURES".into(), path.display().to_string())),
                Err(e) => eprintln!("[{}] cannot write {}: {e}; known failures not applied", k.name, path.display()),
            }
        }
        let outcome = if find_image(&kernels_dir.join(&k.name)).is_none() {
            VmOutcome::error(&k.name, &art_root.join(&k.name), format!("not fetched: no kernel in {} (run ci/fetch-kernels {})", kernels_dir.join(&k.name).display(), k.name))
        } else {
            run_vm(&o)
        };
        eprintln!("{}", outcome.verdict_line());
        let stop = outcome.verdict == VmVerdict::Interrupted;
        outcomes.push(outcome);
        if stop {
            break;
        }
    }
    let table = summary_table(&outcomes);
    println!("\n{table}");
    let _ = fs::create_dir_all(&art_root);
    let _ = fs::write(art_root.join("summary.txt"), &table);
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        let _ = fs::OpenOptions::new().append(true).create(true).open(path).and_then(|mut f| f.write_all(summary_markdown(&outcomes).as_bytes()));
    }
    matrix_exit(&outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<VmCommand, String> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn command_lines() {
        let VmCommand::Single(o) = args("--kernel /k/vmlinuz --no-kvm --cpus 4 --timeout 90 --shard 2/4 connect:: --env A=b").unwrap() else { panic!() };
        assert_eq!(o.kernel, [PathBuf::from("/k/vmlinuz")]);
        assert_eq!(o.kvm, KvmMode::Off);
        assert_eq!(o.cpus, Some(4));
        assert_eq!(o.timeout, Some(Duration::from_secs(90)));
        assert_eq!(o.guest_args, ["--shard", "2/4", "connect::"]);
        assert_eq!(o.env, [("A".to_owned(), "b".to_owned())]);
        let VmCommand::Single(o) = args("--kernel a.deb --kernel b.deb probe -v").unwrap() else { panic!() };
        assert_eq!(o.kernel.len(), 2);
        assert_eq!(o.guest_args, ["probe", "-v"]);
        let VmCommand::Single(o) = args("--kernel k -- --kernel x").unwrap() else { panic!() };
        assert_eq!(o.guest_args, ["--kernel", "x"], "after -- everything is the guest's");
        let VmCommand::Matrix(m) = args("--matrix ci/kernels.toml --kernel-tag vm-smoke --kernel-name debian-6.1 --tag smoke").unwrap() else { panic!() };
        assert_eq!(m.list, PathBuf::from("ci/kernels.toml"));
        assert_eq!((m.tags.as_slice(), m.names.as_slice()), (&["vm-smoke".to_owned()][..], &["debian-6.1".to_owned()][..]));
        assert_eq!(m.vm.guest_args, ["--tag", "smoke"]);
        let VmCommand::Matrix(m) = args("--matrix --shard 1/2").unwrap() else { panic!() };
        assert!(m.list.ends_with("ci/kernels.toml"));
        assert_eq!(args("--help").unwrap(), VmCommand::Help);
        assert!(args("").unwrap_err().contains("--kernel"));
        assert!(args("--kernel k --matrix").unwrap_err().contains("exclude"));
        assert!(args("--kernel k --kernel-tag x").unwrap_err().contains("--matrix"));
        assert!(args("--kernel k --cpus 0").unwrap_err().contains("--cpus"));
        assert!(args("--kernel k --env 1=2").unwrap_err().contains("KEY=VALUE"));
        assert!(args("--kernel k --timeout").unwrap_err().contains("needs a value"));
    }

    #[test]
    fn ktap_is_counted_and_failures_named() {
        let mut k = KtapSummary::default();
        for l in [
            "TAP version 13",
            "1..4",
            "# mptcp-conformance: 4 case(s), 2 at a time",
            "ok 1 - mptcp-conformance: connect::v4_basic # time=12ms",
            "not ok 2 - mptcp-conformance: pm_netlink::03_simple_add_get_addr # time=103ms",
            "# expected MPTcpExtMPJoinSynRx = 2, observed 1",
            "ok 3 - mptcp-conformance: join::fail::x # SKIP needs qdisc:netem",
            "ok 4 - mptcp-conformance: join::y # XFAIL known bug",
            "  ok 1 - nested lines are ignored",
            "# Totals: pass:1 fail:1 xfail:1 xpass:0 skip:1 error:0",
        ] {
            k.feed(l);
        }
        assert!(k.header);
        assert_eq!(k.plan, Some(4));
        assert_eq!((k.pass, k.fail, k.skip, k.xfail), (1, 1, 1, 1));
        assert_eq!(k.failed, ["pm_netlink::03_simple_add_get_addr"]);
        assert_eq!(k.totals, Some([1, 1, 1, 0, 1]));
        assert_eq!(k.counts(), (2, 1, 1));
        assert_eq!(result_line("ok 7 - plain"), Some((true, "plain".into(), String::new())));
        assert_eq!(result_line("ok - no number"), None);
        assert_eq!(result_line("okay 1"), None);
    }

    #[test]
    fn console_crashes_and_splats() {
        let mut c = ConsoleScan::default();
        c.feed("[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12)");
        c.feed("[   12.5] WARNING: CPU: 1 PID: 3 at net/mptcp/protocol.c:1 foo+0x1/0x2");
        c.feed("  [ 1.0] Kernel panic - not syncing: quoted and indented by the harness: ignored");
        c.feed("# BUG: inside KTAP comments: ignored");
        assert_eq!(c.crash, None);
        c.feed("[   39.127909] Kernel panic - not syncing: sysrq triggered crash");
        c.feed("[   40.0] BUG: later lines do not replace the first crash");
        assert_eq!(c.kernel_version.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(c.crash.as_deref(), Some("Kernel panic - not syncing: sysrq triggered crash"));
        assert_eq!(c.splats, ["WARNING: CPU: 1 PID: 3 at net/mptcp/protocol.c:1 foo+0x1/0x2"]);
        let mut c = ConsoleScan::default();
        c.feed("Oops: general protection fault, probably for non-canonical address");
        assert!(c.crash.is_some(), "a console without timestamps still counts");
    }

    fn obs(exit: VngExit, ktap: &[&str]) -> Observed {
        let mut k = KtapSummary::default();
        ktap.iter().for_each(|l| k.feed(l));
        Observed { exit, started: true, ktap: k, console: ConsoleScan::default(), expects_ktap: true }
    }

    const PASSING: &[&str] = &["TAP version 13", "1..1", "ok 1 - mptcp-conformance: a::b # time=1ms", "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0"];

    #[test]
    fn verdicts_never_turn_a_crash_into_a_pass() {
        assert_eq!(classify(&obs(VngExit::Code(0), PASSING)), VmVerdict::Pass);
        let crash = classify(&obs(VngExit::Code(255), &[]));
        assert!(matches!(&crash, VmVerdict::Crash(w) if w.contains("255")), "{crash:?}");
        let mut o = obs(VngExit::Code(0), PASSING);
        o.console.crash = Some("Kernel panic - not syncing: x".into());
        assert!(matches!(classify(&o), VmVerdict::Crash(w) if w.contains("Kernel panic")));
        let mut o = obs(VngExit::Code(4), &[]);
        o.console.crash = Some("BUG: kernel NULL pointer dereference".into());
        assert!(matches!(classify(&o), VmVerdict::Crash(_)), "a crash is never a skip");
        assert!(matches!(classify(&obs(VngExit::Timeout(Duration::from_secs(9)), PASSING)), VmVerdict::Crash(w) if w.contains("timeout")));
        assert!(matches!(classify(&obs(VngExit::BootTimeout(Duration::from_secs(9)), &[])), VmVerdict::Crash(w) if w.contains("boot hang")));
        assert!(matches!(classify(&obs(VngExit::Signal(9), &[])), VmVerdict::Crash(_)));
        assert_eq!(classify(&obs(VngExit::Interrupted(2), PASSING)), VmVerdict::Interrupted);
    }

    #[test]
    fn verdicts_check_the_exit_code_against_the_ktap() {
        assert!(matches!(classify(&obs(VngExit::Code(0), &["TAP version 13"])), VmVerdict::Fail(w) if w.contains("no KTAP totals")));
        let failing = ["not ok 1 - mptcp-conformance: a::b # time=1ms", "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"];
        assert!(matches!(classify(&obs(VngExit::Code(1), &failing)), VmVerdict::Fail(w) if w == "1 case(s) failed"));
        assert!(matches!(classify(&obs(VngExit::Code(0), &failing)), VmVerdict::Fail(_)));
        let skipped = ["ok 1 - mptcp-conformance: a::b # SKIP x", "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0"];
        assert_eq!(classify(&obs(VngExit::Code(4), &skipped)), VmVerdict::Skip);
        assert!(matches!(classify(&obs(VngExit::Code(4), PASSING)), VmVerdict::Fail(_)));
        assert!(matches!(classify(&obs(VngExit::Code(127), &[])), VmVerdict::Fail(w) if w.contains("127")));
        let mut o = obs(VngExit::Code(1), &[]);
        o.started = false;
        assert!(matches!(classify(&o), VmVerdict::Error(w) if w.contains("before the guest command started")));
        let mut o = obs(VngExit::Code(0), &[]);
        o.expects_ktap = false;
        assert_eq!(classify(&o), VmVerdict::Pass, "probe/list/--guest-cmd: the exit code alone");
    }

    #[test]
    fn guest_command_is_quoted_and_carries_the_environment() {
        assert_eq!(sh_quote("/work/x-1.2"), "/work/x-1.2");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        let (a, run) = guest_harness_args(&["--shard".into(), "1/4".into(), "connect::".into()], Path::new("/art"));
        assert!(run);
        assert_eq!(a, ["run", "--ktap", "--junit", "/art/junit.xml", "--json", "/art/results.jsonl", "--shard", "1/4", "connect::"]);
        let (a, run) = guest_harness_args(&["probe".into(), "-v".into()], Path::new("/art"));
        assert!(!run);
        assert_eq!(a, ["probe", "-v"]);
        let env = [("A".to_owned(), "x y".to_owned())];
        let s = guest_script(Path::new("/b/mptcp-conformance"), &a, &env, Path::new("/w"), None);
        assert_eq!(s, format!("echo {START_MARKER}; cd /w || exit 125; export A='x y'; exec /b/mptcp-conformance probe -v"));
        let s = guest_script(Path::new("/b"), &a, &[], Path::new("/w"), Some("echo c > /proc/sysrq-trigger"));
        assert!(s.ends_with("cd /w || exit 125; echo c > /proc/sysrq-trigger"), "{s}");
    }

    #[test]
    fn guest_environment_slows_tcg_down() {
        let o = VmOptions { env: vec![("MPTCP_CT_PCAP".into(), "0".into())], ..VmOptions::default() };
        let host = [("MPTCP_CT_STRICT".to_owned(), "1".to_owned()), ("MPTCP_CT_VM_KVM".to_owned(), "0".to_owned()), ("HOME".to_owned(), "/root".to_owned())];
        let env: BTreeMap<String, String> = guest_env(&o, false, Path::new("/art"), &host).into_iter().collect();
        assert_eq!(env["KSFT_MACHINE_SLOW"], "yes");
        assert_eq!(env["MPTCP_CT_SLOW"], "10");
        assert_eq!(env["MPTCP_CT_ARTIFACTS"], "/art/cases");
        assert_eq!(env["MPTCP_CT_STRICT"], "1");
        assert_eq!(env["MPTCP_CT_PCAP"], "0");
        assert!(env["MPTCP_CT_CASES"].ends_with("cases"));
        assert!(!env.contains_key("MPTCP_CT_VM_KVM") && !env.contains_key("HOME"));
        let env: BTreeMap<String, String> = guest_env(&VmOptions { slow: Some(3.0), ..o }, true, Path::new("/a"), &[]).into_iter().collect();
        assert_eq!(env["MPTCP_CT_SLOW"], "3");
        assert!(!env.contains_key("KSFT_MACHINE_SLOW"));
    }

    #[test]
    fn vng_command_line() {
        let k = ResolvedKernel { run_arg: "/k/boot/vmlinuz-6.1".into(), image: "/k/boot/vmlinuz-6.1".into(), label: "k".into() };
        let a = vng_args(&k, false, &VmOptions::default(), Path::new("/art"), Path::new("/w"), "true");
        let s = a.join(" ");
        assert!(s.starts_with("--run /k/boot/vmlinuz-6.1 --disable-kvm --cpus 2 --memory 2G --force-9p --verbose --append loglevel=5 --append tsc=unstable --qemu-opts=-accel tcg,thread=single --user root"), "{s}");
        assert!(s.ends_with("--rwdir /art --cwd /w --exec true"), "{s}");
        let a = vng_args(&k, true, &VmOptions::default(), Path::new("/art"), Path::new("/w"), "true");
        assert!(!a.contains(&"--disable-kvm".to_owned()) && !a.contains(&"tsc=unstable".to_owned()));
    }

    #[test]
    fn kernel_list_parses_and_selects() {
        let text = "[[kernel]]\nname = \"a\"\nsuite = \"bookworm\"\npackages = [\"linux-image-x=1\"]\ntags = [\"vm-smoke\"]\n\n[[kernel]]\nname = \"b\"\narchive = \"debian-security\"\nsuite = \"s\"\npackages = [\"p=2\", \"q=2\"]\nstrict = true\nallow_missing = [\"qdisc:netem\"]\n";
        let all = parse_kernel_list(text).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].archive, "debian");
        assert!(all[1].strict);
        assert_eq!(select_kernels(&all, &[], &["vm-smoke".into()]).unwrap().len(), 1);
        assert_eq!(select_kernels(&all, &["b".into()], &[]).unwrap()[0].name, "b");
        assert!(select_kernels(&all, &["c".into()], &[]).unwrap_err().contains("known: a, b"));
        assert!(parse_kernel_list("[[kernel]]\nname = \"a\"\nsuite = \"s\"\npackages = [\"unpinned\"]\n").unwrap_err().contains("not pinned"));
        assert!(parse_kernel_list("[[kernel]]\nname = \"a\"\nsuite = \"s\"\npackages = [\"p=1\"]\ntypo = 1\n").unwrap_err().contains("unknown field kernel[0].typo"));
        let kf = "[[kernel]]\nname = \"a\"\nsuite = \"s\"\npackages = [\"p=1\"]\nknown_failures = [{ case = \"join::x\", reason = \"a bug\" }]\n";
        assert_eq!(parse_kernel_list(kf).unwrap()[0].known_failures, [("join::x".to_owned(), "a bug".to_owned())]);
        assert!(parse_kernel_list(&kf.replace("reason", "why")).unwrap_err().contains("unknown field kernel[0].known_failures[0].why"));
        assert!(parse_kernel_list(&kf.replace("\"a bug\"", "\"\"")).unwrap_err().contains("known_failures[0].reason must be a non-empty string"));
        let repo = parse_kernel_list(&fs::read_to_string(workspace_root().join("ci/kernels.toml")).unwrap()).unwrap();
        assert!(repo.len() >= 3, "the repository's list parses");
        // Every known failure names a case of the library.
        let lib = crate::library::Library::default_location();
        for k in &repo {
            for (case, _) in &k.known_failures {
                let file = lib.cases.join(case.replace("::", "/") + ".toml");
                assert!(file.is_file(), "{}: known failure {case}: no {}", k.name, file.display());
            }
        }
    }

    #[test]
    fn unpacked_kernels_are_found() {
        let root = std::env::temp_dir().join(format!("mptcp-vm-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let deb12 = root.join("a");
        fs::create_dir_all(deb12.join("boot")).unwrap();
        fs::create_dir_all(deb12.join("lib/modules/6.1.0-1-amd64")).unwrap();
        fs::write(deb12.join("boot/vmlinuz-6.1.0-1-amd64"), b"x").unwrap();
        fs::write(deb12.join("boot/config-6.1.0-1-amd64"), b"x").unwrap();
        assert_eq!(find_image(&deb12), Some(deb12.join("boot/vmlinuz-6.1.0-1-amd64")));
        let split = root.join("b");
        fs::create_dir_all(split.join("usr/lib/modules/7.2.1+deb13-amd64")).unwrap();
        fs::write(split.join("usr/lib/modules/7.2.1+deb13-amd64/vmlinuz"), b"x").unwrap();
        assert_eq!(find_image(&split), Some(split.join("usr/lib/modules/7.2.1+deb13-amd64/vmlinuz")));
        assert_eq!(module_base(&split), Some((split.join("usr"), "7.2.1+deb13-amd64".to_owned())));
        let k = resolve_kernel(std::slice::from_ref(&split), &root.join("cache")).unwrap();
        assert_eq!(k.run_arg, split.join("usr/lib/modules/7.2.1+deb13-amd64/vmlinuz"));
        assert!(resolve_kernel(std::slice::from_ref(&root), &root.join("cache")).unwrap_err().contains("no kernel here"));
        let tree = root.join("linux");
        fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
        fs::write(tree.join(".config"), b"CONFIG_MPTCP=y\n").unwrap();
        fs::write(tree.join("arch/x86/boot/bzImage"), b"x").unwrap();
        let k = resolve_kernel(std::slice::from_ref(&tree), &root.join("cache")).unwrap();
        assert_eq!((k.run_arg.file_name(), k.image.ends_with("arch/x86/boot/bzImage")), (Some("linux".as_ref()), true), "a build tree goes to vng as a directory");
        assert!(resolve_kernel(&[deb12.clone(), split.clone()], &root).unwrap_err().contains(".deb"));
        let _ = fs::remove_dir_all(&root);
    }

    fn outcome(label: &str, verdict: VmVerdict, ktap: &[&str]) -> VmOutcome {
        let mut o = obs(VngExit::Code(0), ktap);
        o.console.kernel_version = Some("6.1.0-56-amd64".into());
        VmOutcome { label: label.into(), verdict, observed: Some(o), kvm: false, wall: Duration::from_secs(75), artifacts: "/a".into() }
    }

    #[test]
    fn matrix_summary_and_exit() {
        let failing = ["not ok 1 - mptcp-conformance: a::b # time=1ms", "# Totals: pass:3 fail:1 xfail:0 xpass:0 skip:2 error:0"];
        let runs = [
            outcome("debian-6.1", VmVerdict::Pass, PASSING),
            outcome("debian-6.12", VmVerdict::Fail("1 case(s) failed".into()), &failing),
            outcome("debian-7.2", VmVerdict::Crash("the guest crashed: vng exited 255".into()), &[]),
        ];
        let t = summary_table(&runs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "kernel       version         accel  result  passed  failed  skipped  wall   crash");
        assert_eq!(lines[2], "debian-6.12  6.1.0-56-amd64  TCG    FAIL         3       1        2  1m15s  no");
        assert!(lines[3].ends_with("CRASH        0       0        0  1m15s  yes"), "{t}");
        assert!(t.contains("debian-6.12: failed: a::b\n"), "{t}");
        assert!(t.contains("debian-7.2: CRASH: the guest crashed"), "{t}");
        assert_eq!(matrix_exit(&runs), KSFT_FAIL);
        assert_eq!(matrix_exit(&runs[..1]), KSFT_PASS);
        assert_eq!(matrix_exit(&[outcome("x", VmVerdict::Skip, &[])]), KSFT_SKIP);
        assert!(summary_markdown(&runs).contains("| debian-7.2 | 6.1.0-56-amd64 | TCG | CRASH | 0 | 0 | 0 | 1m15s | yes |"));
        let x = vm_junit(&runs[2]);
        assert!(x.contains("<failure message=\"kernel crash: the guest crashed: vng exited 255\"/>"), "{x}");
        assert_eq!(runs[2].exit_code(), KSFT_FAIL);
    }

    #[test]
    fn a_killed_group_leaves_nothing_behind() {
        // A stand-in for vng: a shell whose child (a stand-in for QEMU) ignores nothing and
        // sleeps; the deadline must kill both.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; sleep 300 & echo $! ; wait"]);
        let mut lines = Vec::new();
        let limits = Limits { total: Duration::from_millis(800), boot: Duration::from_secs(60) };
        let exit = supervise(cmd, limits, &mut |_, l| {
            lines.push(l.to_owned());
            Started(true)
        })
        .unwrap();
        assert_eq!(exit, VngExit::Timeout(Duration::from_millis(800)));
        let pid: i32 = lines.get(1).and_then(|l| l.trim().parse().ok()).expect("the sleeper's pid");
        // Gone: not even a zombie (this process reaps the group's orphans).
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the grandchild {pid} survived the group kill");
        // A normal exit passes the code through, and a boot deadline fires without output.
        let exit = supervise(Command::new("false"), limits, &mut |_, _| Started(true)).unwrap();
        assert_eq!(exit, VngExit::Code(1));
        let quiet = Limits { total: Duration::from_secs(60), boot: Duration::from_millis(300) };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo not-the-marker; sleep 300"]);
        assert_eq!(supervise(cmd, quiet, &mut |_, _| Started(false)).unwrap(), VngExit::BootTimeout(Duration::from_millis(300)));
    }
}
