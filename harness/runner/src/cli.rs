//! The `mptcp-conformance` command line: argument parsing, case selection, the worker pool
//! that runs cases, and the `list`, `validate`, `probe` and `coverage` commands.
//!
//! `run` loads every case file of the library (a file that does not parse becomes a failed
//! result carrying its located errors, never a crash), selects cases ([`Selection`]), runs them
//! on `-j` worker threads pulling from one shared queue (serial cases are serialized inside
//! [`case::run`]), and sends every result through the reporters of [`crate::report`]. Its exit
//! code is kselftest's (0 pass, 1 fail, 4 everything skipped), so the binary can be a kselftest
//! program as is: with no subcommand it runs everything, and it prints KTAP when asked
//! (`--ktap`, `MPTCP_CT_KTAP=1`) or when the kselftest runner is detected (`KSFT_TAP_LEVEL` set
//! and stdout not a terminal).
//!
//! Worker threads never enter a namespace themselves (see [`crate::netns`]): they only call
//! [`case::run`], which does all in-namespace work on short-lived threads.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mptcp_spec::{Case, SpecErrors, Topology};

use crate::case::{self, CaseResult, RunContext, Verdict};
use crate::library::Library;
use crate::probe::{Capabilities, Strictness, capabilities};
use crate::report::{
    Event, Human, JsonLines, Junit, KSFT_FAIL, KSFT_PASS, KSFT_SKIP, Kind, Ktap, Repeat, Reporter, Timings, Totals, Unstable,
};
use crate::{env, netns};

/// Exit code for a command line that does not parse.
pub const EXIT_USAGE: u8 = 2;

/// `mptcp-conformance help`.
pub const USAGE: &str = "\
mptcp-conformance: conformance cases for Linux kernel Multipath TCP, run against this kernel

Usage:
  mptcp-conformance [run] [OPTIONS] [FILTER...]   run cases (the default command)
  mptcp-conformance list [-v] [SELECTION] [FILTER...]
                                                  print case ids (-v: summary and tags)
  mptcp-conformance validate                      check every case and topology file
  mptcp-conformance probe [-v]                    every capability probed: present or missing, and why
                                                  (-v: also the strict-mode allow-list)
  mptcp-conformance coverage [-v]                 what the cases assert on vs what this kernel exposes
                                                  (-v: also the asserted names)
  mptcp-conformance vm --kernel K [RUN ARGS]      boot kernel K (vmlinuz, bzImage, Debian .deb(s),
                                                  unpacked package or build tree) with virtme-ng and
                                                  run the suite inside (`vm --help`)
  mptcp-conformance help | --help | --version

Selection (run, list):
  FILTER...           cases whose id contains any FILTER (ids look like connect::v4_basic)
  --exact             a FILTER must equal the whole id
  --tag TAG           only cases tagged TAG (repeatable: any of them); a case file that does
                      not parse has no tags and is kept, so it still fails
  --shard I/N         only the I-th of every N selected cases in id order (1 <= I <= N)

Run options:
  -j, --jobs N        cases at once (default: the number of CPUs)
  --repeat N          run the selection N times; list cases whose verdict changed
  --until-fail        repeat until an iteration has a failure (at most N times with --repeat)
  --keep              keep a failed case's namespaces for `ip netns exec` (like MPTCP_CT_KEEP=1)
  --slow FACTOR       multiply every deadline by FACTOR >= 1 (sets MPTCP_CT_SLOW)
  --strict            a case that cannot run here fails instead of skipping, unless every
                      capability it misses is allow-listed (MPTCP_CT_ALLOW_MISSING,
                      MPTCP_CT_ALLOW_FILE); like MPTCP_CT_STRICT=1. MPTCP_CT_REQUIRE=1 makes
                      every skip a failure, allow-list or not
  --timings           print the wall time, the speed-up from -j and the 10 slowest cases
                      (on stderr)
  --ktap              print KTAP (TAP 13, kselftest style) on stdout instead of the human
                      format (also MPTCP_CT_KTAP=1, or KSFT_TAP_LEVEL set with stdout not a tty)
  --junit PATH        also write JUnit XML to PATH
  --json PATH         also write JSON lines to PATH

Exit status:
  run       0 no failure and something passed, 1 a failure (or an xfail case passed),
            4 everything skipped or nothing selected (kselftest's codes)
  validate  0 every file is valid, 1 errors were printed
  probe     0 cases can run here, 4 they cannot (the reason is printed)
  coverage  0 (the report is information, not a verdict)
  any       2 the command line does not parse

Environment: MPTCP_CT_CASES and MPTCP_CT_TOPOLOGIES (library location), MPTCP_CT_ARTIFACTS
(failure bundles), MPTCP_CT_SLOW, KSFT_MACHINE_SLOW=yes, MPTCP_CT_REQUIRE, MPTCP_CT_STRICT,
MPTCP_CT_ALLOW_MISSING, MPTCP_CT_ALLOW_FILE, MPTCP_CT_KEEP, MPTCP_CT_NAMED, MPTCP_CT_KTAP,
MPTCP_CT_PCAP=0, MPTCP_CT_SNAPLEN, MPTCP_CT_PCAP_MIB, MPTCP_CT_KMSG=0.
";

/// What can go wrong outside of a case; messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line does not parse.
    #[error("parse the command line: {0}")]
    Usage(String),
    /// The case directory cannot be listed.
    #[error("list the case files in {}: {source}", dir.display())]
    ListCases { dir: PathBuf, source: io::Error },
    /// The topology directory cannot be listed.
    #[error("list the topology files in {}: {source}", dir.display())]
    ListTopologies { dir: PathBuf, source: io::Error },
    /// A report file cannot be created.
    #[error("create the {what} report {}: {source}", path.display())]
    CreateReport { what: &'static str, path: PathBuf, source: io::Error },
    /// A report could not be written completely.
    #[error("write the {what} report: {source}")]
    WriteReport { what: String, source: io::Error },
    /// The strict-mode settings are unusable (an unreadable allow-list file).
    #[error("{0}")]
    Strictness(String),
}

/// Which cases a command applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Substrings of case ids (any matches); empty: every case.
    pub filters: Vec<String>,
    /// Filters must equal the id.
    pub exact: bool,
    /// Tags (any matches); empty: no tag filter.
    pub tags: Vec<String>,
    /// Only one shard of the selection.
    pub shard: Option<Shard>,
}

/// `--shard I/N`: the I-th (1-based) of every N cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based shard number.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Selection {
    /// Whether an id passes the filters.
    pub fn matches_id(&self, id: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| if self.exact { id == f } else { id.contains(f.as_str()) })
    }

    /// Whether a case's tags pass the tag filter; `None` (an invalid case file) always does.
    pub fn matches_tags(&self, tags: Option<&[String]>) -> bool {
        self.tags.is_empty() || tags.is_none_or(|t| self.tags.iter().any(|want| t.contains(want)))
    }

    /// The selected items, sorted by id, then cut to the shard.
    pub fn apply<'a, T>(
        &self,
        items: &'a [T],
        id: impl Fn(&T) -> &str,
        tags: impl Fn(&T) -> Option<&[String]>,
    ) -> Vec<&'a T> {
        let mut chosen: Vec<&T> = items.iter().filter(|t| self.matches_id(id(t)) && self.matches_tags(tags(t))).collect();
        chosen.sort_by(|a, b| id(a).cmp(id(b)));
        match self.shard {
            None => chosen,
            Some(s) => chosen.into_iter().enumerate().filter(|(k, _)| k % s.count == s.index - 1).map(|(_, t)| t).collect(),
        }
    }
}

/// `run` options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunArgs {
    /// Which cases.
    pub selection: Selection,
    /// `-j`: cases at once (default: CPUs).
    pub jobs: Option<usize>,
    /// `--repeat`: iterations.
    pub repeat: Option<usize>,
    /// `--until-fail`.
    pub until_fail: bool,
    /// `--keep`.
    pub keep: bool,
    /// `--slow`: the slowness factor (the binary exports it as `MPTCP_CT_SLOW` first).
    pub slow: Option<f64>,
    /// `--ktap`.
    pub ktap: bool,
    /// `--junit`.
    pub junit: Option<PathBuf>,
    /// `--json`.
    pub json: Option<PathBuf>,
    /// `--strict`.
    pub strict: bool,
    /// `--timings`.
    pub timings: bool,
    /// No subcommand was given (kselftest use).
    pub implicit: bool,
}

impl RunArgs {
    /// How many times the selection runs.
    pub fn repeat(&self) -> Repeat {
        match (self.repeat, self.until_fail) {
            (Some(n), true) if n > 1 => Repeat { times: Some(n), until_fail: true },
            (None, true) => Repeat { times: None, until_fail: true },
            (Some(n), false) => Repeat { times: Some(n), until_fail: false },
            _ => Repeat::ONCE,
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `run` (or no subcommand).
    Run(RunArgs),
    /// `list`.
    List {
        /// Which cases.
        selection: Selection,
        /// `-v`: summary and tags.
        verbose: bool,
    },
    /// `validate`.
    Validate,
    /// `probe`.
    Probe {
        /// `-v`: also the strict-mode allow-list.
        verbose: bool,
    },
    /// `coverage`.
    Coverage {
        /// `-v`: also the asserted names.
        verbose: bool,
    },
    /// `help`, `--help`.
    Help,
    /// `--version`.
    Version,
}

enum Token {
    Flag(String, Option<String>),
    Arg(String),
}

/// Splits arguments into flags (`--name`, `--name=value`, `-x`, `-xVALUE`) and arguments.
struct Tokens {
    args: std::collections::VecDeque<String>,
    positional_only: bool,
}

impl Tokens {
    fn next(&mut self) -> Option<Token> {
        let a = self.args.pop_front()?;
        if self.positional_only || a == "-" || !a.starts_with('-') {
            return Some(Token::Arg(a));
        }
        if a == "--" {
            self.positional_only = true;
            return self.next();
        }
        if a.starts_with("--") {
            return Some(match a.split_once('=') {
                Some((n, v)) => Token::Flag(n.to_owned(), Some(v.to_owned())),
                None => Token::Flag(a, None),
            });
        }
        let mut chars = a.chars();
        chars.next();
        let flag = chars.next().map(|c| format!("-{c}")).unwrap_or_default();
        let rest = chars.as_str();
        Some(Token::Flag(flag, (!rest.is_empty()).then(|| rest.to_owned())))
    }

    fn value(&mut self, flag: &str, inline: Option<String>) -> Result<String, CliError> {
        inline.or_else(|| self.args.pop_front()).ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
    }
}

fn no_value(flag: &str, inline: Option<String>) -> Result<(), CliError> {
    match inline {
        None => Ok(()),
        Some(v) => Err(CliError::Usage(format!("{flag} takes no value (got {v:?})"))),
    }
}

fn count(flag: &str, v: &str) -> Result<usize, CliError> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(CliError::Usage(format!("{flag} needs a positive integer, got {v:?}"))),
    }
}

fn shard(v: &str) -> Result<Shard, CliError> {
    let bad = || CliError::Usage(format!("--shard needs I/N with 1 <= I <= N (e.g. 1/2), got {v:?}"));
    let (i, n) = v.split_once('/').ok_or_else(bad)?;
    let (index, count) = (i.parse::<usize>().map_err(|_| bad())?, n.parse::<usize>().map_err(|_| bad())?);
    if index == 0 || index > count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

fn slowness(v: &str) -> Result<f64, CliError> {
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 1.0 => Ok(f),
        _ => Err(CliError::Usage(format!("--slow needs a factor >= 1 (e.g. 4), got {v:?}"))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Run,
    List,
    Validate,
    Probe,
    Coverage,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, CliError> {
    let mut args: std::collections::VecDeque<String> = args.into_iter().collect();
    let (sub, implicit) = match args.front().map(String::as_str) {
        Some("run") => (Sub::Run, false),
        Some("list") => (Sub::List, false),
        Some("validate") => (Sub::Validate, false),
        Some("probe") => (Sub::Probe, false),
        Some("coverage") => (Sub::Coverage, false),
        Some("help") => return Ok(Command::Help),
        _ => (Sub::Run, true),
    };
    if !implicit {
        args.pop_front();
    }
    let name = match sub {
        Sub::Run => "run",
        Sub::List => "list",
        Sub::Validate => "validate",
        Sub::Probe => "probe",
        Sub::Coverage => "coverage",
    };
    let mut toks = Tokens { args, positional_only: false };
    let mut run = RunArgs { implicit, ..RunArgs::default() };
    let mut verbose = false;
    let selects = matches!(sub, Sub::Run | Sub::List);
    let runs = sub == Sub::Run;
    while let Some(tok) = toks.next() {
        let (flag, inline) = match tok {
            Token::Arg(a) if selects => {
                run.selection.filters.push(a);
                continue;
            }
            Token::Arg(a) => return Err(CliError::Usage(format!("`{name}` takes no arguments (got {a:?})"))),
            Token::Flag(f, v) => (f, v),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--exact" if selects => {
                no_value(&flag, inline)?;
                run.selection.exact = true;
            }
            "--tag" if selects => run.selection.tags.push(toks.value(&flag, inline)?),
            "--shard" if selects => run.selection.shard = Some(shard(&toks.value(&flag, inline)?)?),
            "-j" | "--jobs" if runs => run.jobs = Some(count(&flag, &toks.value(&flag, inline)?)?),
            "--repeat" if runs => run.repeat = Some(count(&flag, &toks.value(&flag, inline)?)?),
            "--slow" if runs => run.slow = Some(slowness(&toks.value(&flag, inline)?)?),
            "--junit" if runs => run.junit = Some(PathBuf::from(toks.value(&flag, inline)?)),
            "--json" if runs => run.json = Some(PathBuf::from(toks.value(&flag, inline)?)),
            "--until-fail" | "--keep" | "--ktap" | "--strict" | "--timings" if runs => {
                no_value(&flag, inline)?;
                match flag.as_str() {
                    "--until-fail" => run.until_fail = true,
                    "--keep" => run.keep = true,
                    "--ktap" => run.ktap = true,
                    "--timings" => run.timings = true,
                    _ => run.strict = true,
                }
            }
            "-v" | "--verbose" if matches!(sub, Sub::List | Sub::Probe | Sub::Coverage) => {
                no_value(&flag, inline)?;
                verbose = true;
            }
            _ => return Err(CliError::Usage(format!("unknown option {flag} for `{name}`"))),
        }
    }
    Ok(match sub {
        Sub::Run => Command::Run(run),
        Sub::List => Command::List { selection: run.selection, verbose },
        Sub::Validate => Command::Validate,
        Sub::Probe => Command::Probe { verbose },
        Sub::Coverage => Command::Coverage { verbose },
    })
}

/// Runs a parsed command; returns the exit code.
pub fn execute(command: &Command) -> u8 {
    let lib = Library::default_location();
    let mut stdout = io::stdout();
    let text = |what: &str, r: io::Result<()>| r.map(|()| KSFT_PASS).map_err(|source| CliError::WriteReport { what: what.into(), source });
    let outcome = match command {
        Command::Help => text("usage", writeln!(stdout, "{USAGE}")),
        Command::Version => text("version", writeln!(stdout, "mptcp-conformance {}", env!("CARGO_PKG_VERSION"))),
        Command::Run(args) => run(&lib, args, Outputs::process(args)),
        Command::List { selection, verbose } => list(&lib, selection, *verbose, &mut stdout),
        Command::Validate => validate(&lib, &mut stdout),
        Command::Probe { verbose } => Strictness::from_env(false)
            .map_err(CliError::Strictness)
            .and_then(|st| probe(capabilities(), &st, *verbose, &mut stdout)),
        Command::Coverage { verbose } => coverage(&lib, capabilities(), *verbose, &mut stdout),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("mptcp-conformance: failed to {e}");
        KSFT_FAIL
    })
}

/// One case file of the library, loaded (or not).
#[derive(Debug)]
pub struct Entry {
    /// Case id.
    pub id: String,
    /// The file.
    pub file: PathBuf,
    /// The validated case, or why the file is invalid.
    pub case: Result<Case, SpecErrors>,
}

impl Entry {
    fn tags(&self) -> Option<&[String]> {
        self.case.as_ref().ok().map(|c| c.tags.as_slice())
    }
}

/// Loads every case file, sorted by id.
pub fn load_entries(lib: &Library) -> Result<Vec<Entry>, CliError> {
    let files = lib.case_files().map_err(|source| CliError::ListCases { dir: lib.cases.clone(), source })?;
    let mut entries: Vec<Entry> =
        files.into_iter().map(|file| Entry { id: lib.case_id(&file), case: lib.load(&file), file }).collect();
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

/// The result of a case file that does not parse.
pub fn invalid_case(id: &str, file: &Path, errors: &SpecErrors) -> CaseResult {
    CaseResult {
        id: id.to_owned(),
        verdict: Verdict::Fail,
        elapsed: Duration::ZERO,
        report: format!("invalid case file {}:\n{errors}\n", file.display()),
        artifacts: None,
    }
}

/// Strict mode: a case that could not run here is a failure, unless every capability it
/// misses is allow-listed (see [`Strictness`]).
pub fn strict(policy: &Strictness, case: Option<&Case>, result: CaseResult) -> CaseResult {
    if !policy.active() || !matches!(result.verdict, Verdict::Skip(_)) {
        return result;
    }
    policy.apply(capabilities(), case, result)
}

fn run_entry(entry: &Entry, ctx: &RunContext, strictness: &Strictness) -> CaseResult {
    let start = Instant::now();
    let result = match &entry.case {
        Err(errors) => invalid_case(&entry.id, &entry.file, errors),
        Ok(c) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case::run(c, ctx))).unwrap_or_else(|p| CaseResult {
            id: entry.id.clone(),
            verdict: Verdict::Fail,
            elapsed: start.elapsed(),
            report: format!("the harness panicked while running the case (a harness bug): {}\n", netns::panic_text(&p)),
            artifacts: None,
        }),
    };
    strict(strictness, entry.case.as_ref().ok(), result)
}

/// A reporter and the first error it hit (after which it gets no more events).
struct Slot {
    what: String,
    reporter: Box<dyn Reporter + Send>,
    error: Option<io::Error>,
}

/// The reporters and the running totals, behind one lock.
struct Dispatch {
    slots: Vec<Slot>,
    totals: Totals,
}

impl Dispatch {
    fn send(&mut self, event: &Event<'_>) {
        for s in self.slots.iter_mut().filter(|s| s.error.is_none()) {
            if let Err(e) = s.reporter.report(event) {
                s.error = Some(e);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `work` once on `jobs` threads; returns each case's verdict kind.
fn run_iteration(
    work: &[&Entry],
    ctx: &RunContext,
    jobs: usize,
    iteration: Option<usize>,
    strictness: &Strictness,
    dispatch: &Mutex<Dispatch>,
) -> Vec<(String, Kind)> {
    let next = AtomicUsize::new(0);
    let kinds = Mutex::new(Vec::with_capacity(work.len()));
    let worker = || {
        while let Some(entry) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
            lock(dispatch).send(&Event::CaseStarted { id: &entry.id, iteration });
            let result = run_entry(entry, ctx, strictness);
            let mut d = lock(dispatch);
            d.totals.record(&result.verdict);
            d.send(&Event::CaseFinished { result: &result, iteration });
            drop(d);
            lock(&kinds).push((result.id.clone(), Kind::of(&result.verdict)));
        }
    };
    std::thread::scope(|s| {
        let mut spawned = 0;
        for n in 0..jobs {
            match std::thread::Builder::new().name(format!("case-worker-{n}")).spawn_scoped(s, worker) {
                Ok(_) => spawned += 1,
                Err(e) => eprintln!("mptcp-conformance: could not start worker thread {n}: {e}"),
            }
        }
        if spawned == 0 {
            worker();
        }
    });
    kinds.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Cases whose verdict was not the same in every iteration.
fn unstable(history: &BTreeMap<String, Vec<Kind>>) -> Vec<Unstable> {
    history
        .iter()
        .filter(|(_, v)| v.iter().collect::<BTreeSet<_>>().len() > 1)
        .map(|(id, v)| Unstable { id: id.clone(), verdicts: v.clone() })
        .collect()
}

/// The main output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lines for people (with progress on `Outputs::term`).
    Human,
    /// KTAP.
    Ktap,
}

/// Where `run` writes.
pub struct Outputs {
    /// The main format.
    pub format: Format,
    /// Its destination (stdout).
    pub stdout: Box<dyn Write + Send>,
    /// A terminal for the progress line (human format only), and its width.
    pub term: Option<(Box<dyn Write + Send>, usize)>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs").field("format", &self.format).field("term", &self.term.is_some()).finish()
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "1" | "yes" | "true" | "on"))
}

impl Outputs {
    /// The process's stdout and stderr, the format chosen from the options and environment.
    pub fn process(args: &RunArgs) -> Outputs {
        let kselftest = args.implicit && std::env::var_os("KSFT_TAP_LEVEL").is_some() && !io::stdout().is_terminal();
        let format = if args.ktap || env_flag("MPTCP_CT_KTAP") || kselftest { Format::Ktap } else { Format::Human };
        let term: Option<(Box<dyn Write + Send>, usize)> = (format == Format::Human && io::stderr().is_terminal())
            .then(|| (Box::new(io::stderr()) as Box<dyn Write + Send>, terminal_width()));
        Outputs { format, stdout: Box::new(io::stdout()), term }
    }
}

/// Columns of the terminal on stderr (80 if unknown).
fn terminal_width() -> usize {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct pointed to, which outlives the call.
    let rc = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 { usize::from(ws.ws_col) } else { 80 }
}

/// Suite properties for JUnit.
fn properties() -> Vec<(String, String)> {
    let mut p = Vec::new();
    if let Ok(r) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        p.push(("kernel".to_owned(), r.trim().to_owned()));
    }
    p.push(("slowness".to_owned(), env::slowness().to_string()));
    p
}

fn create(what: &'static str, path: &Path) -> Result<BufWriter<File>, CliError> {
    File::create(path).map(BufWriter::new).map_err(|source| CliError::CreateReport { what, path: path.to_owned(), source })
}

/// `run`: runs the selection of `lib`; returns the kselftest exit code.
pub fn run(lib: &Library, args: &RunArgs, out: Outputs) -> Result<u8, CliError> {
    let entries = load_entries(lib)?;
    let work = args.selection.apply(&entries, |e| e.id.as_str(), Entry::tags);
    let strictness = Strictness::from_env(args.strict).map_err(CliError::Strictness)?;
    if strictness.active() && !strictness.allow.is_empty() {
        for unused in strictness.unused(capabilities()) {
            eprintln!("mptcp-conformance: allow-list entry {unused:?} matches no probed capability (see `mptcp-conformance probe`)");
        }
    }
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).min(work.len()).max(1);

    let mut slots = Vec::new();
    let (what, primary): (&str, Box<dyn Reporter + Send>) = match out.format {
        Format::Ktap => ("KTAP", Box::new(Ktap::new(out.stdout))),
        Format::Human => {
            let h = Human::new(out.stdout);
            match out.term {
                Some((term, width)) => ("human", Box::new(h.with_progress(term, width))),
                None => ("human", Box::new(h)),
            }
        }
    };
    slots.push(Slot { what: what.to_owned(), reporter: primary, error: None });
    if let Some(path) = &args.junit {
        let w = create("JUnit", path)?;
        let reporter = Box::new(Junit::new(w, properties()));
        slots.push(Slot { what: format!("JUnit ({})", path.display()), reporter, error: None });
    }
    if let Some(path) = &args.json {
        let w = create("JSON", path)?;
        slots.push(Slot { what: format!("JSON ({})", path.display()), reporter: Box::new(JsonLines::new(w)), error: None });
    }
    if args.timings {
        slots.push(Slot { what: "timings".into(), reporter: Box::new(Timings::new(io::stderr())), error: None });
    }

    if nix::unistd::geteuid().is_root() {
        for n in netns::sweep() {
            eprintln!("mptcp-conformance: swept leftover namespace {n}");
        }
    }
    let mut ctx = RunContext::from_env(jobs);
    ctx.keep |= args.keep;

    let repeat = args.repeat();
    let ids: Vec<String> = work.iter().map(|e| e.id.clone()).collect();
    let dispatch = Mutex::new(Dispatch { slots, totals: Totals::default() });
    let start = Instant::now();
    lock(&dispatch).send(&Event::RunStarted { cases: &ids, jobs, repeat });
    let mut history: BTreeMap<String, Vec<Kind>> = BTreeMap::new();
    let mut iteration = 0;
    while !work.is_empty() {
        iteration += 1;
        let kinds = run_iteration(&work, &ctx, jobs, repeat.repeats().then_some(iteration), &strictness, &dispatch);
        let failed = kinds.iter().any(|(_, k)| matches!(k, Kind::Fail | Kind::XPass));
        for (id, k) in kinds {
            history.entry(id).or_default().push(k);
        }
        if (repeat.until_fail && failed) || repeat.times == Some(iteration) {
            break;
        }
    }
    let unstable = unstable(&history);
    let mut d = lock(&dispatch);
    let totals = d.totals;
    d.send(&Event::RunFinished { totals, elapsed: start.elapsed(), unstable: &unstable });

    let mut code = totals.exit_code();
    for s in d.slots.iter_mut() {
        if let Some(source) = s.error.take() {
            eprintln!("mptcp-conformance: failed to {}", CliError::WriteReport { what: s.what.clone(), source });
            code = KSFT_FAIL;
        }
    }
    Ok(code)
}

/// `list`: the selected ids, one per line (`verbose`: with summary and tags).
pub fn list(lib: &Library, selection: &Selection, verbose: bool, out: &mut dyn Write) -> Result<u8, CliError> {
    let entries = load_entries(lib)?;
    let chosen = selection.apply(&entries, |e| e.id.as_str(), Entry::tags);
    let width = chosen.iter().map(|e| e.id.len()).max().unwrap_or(0);
    let mut text = String::new();
    for e in chosen {
        if !verbose {
            text.push_str(&e.id);
        } else {
            match &e.case {
                Ok(c) if c.tags.is_empty() => text.push_str(&format!("{:<width$}  {}", e.id, c.summary)),
                Ok(c) => text.push_str(&format!("{:<width$}  {} [{}]", e.id, c.summary, c.tags.join(", "))),
                Err(errs) => {
                    let first = errs.0.first().map(|x| x.to_string()).unwrap_or_default();
                    text.push_str(&format!("{:<width$}  (invalid case file: {first})", e.id));
                }
            }
        }
        text.push('\n');
    }
    out.write_all(text.as_bytes()).map_err(|source| CliError::WriteReport { what: "list".into(), source })?;
    Ok(KSFT_PASS)
}

/// Topology files: `(name, path)` sorted by name.
fn topology_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, CliError> {
    let err = |source| CliError::ListTopologies { dir: dir.to_owned(), source };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(err)? {
        let p = e.map_err(err)?.path();
        if p.extension().is_some_and(|x| x == "toml")
            && let Some(stem) = p.file_stem()
        {
            out.push((stem.to_string_lossy().into_owned(), p));
        }
    }
    out.sort();
    Ok(out)
}

/// `validate`: every error of every case and topology file, as `file:line: key: message`.
pub fn validate(lib: &Library, out: &mut dyn Write) -> Result<u8, CliError> {
    let topologies = topology_files(&lib.topologies)?;
    let entries = load_entries(lib)?;
    let mut text = String::new();
    let mut errors = 0;
    for (name, _) in &topologies {
        if let Err(e) = Topology::load(&lib.topologies, name) {
            errors += e.0.len();
            text.push_str(&format!("{e}\n"));
        }
    }
    for e in &entries {
        if let Err(errs) = &e.case {
            errors += errs.0.len();
            text.push_str(&format!("{errs}\n"));
        }
    }
    text.push_str(&format!(
        "checked {} case file(s) and {} topology file(s): {}\n",
        entries.len(),
        topologies.len(),
        if errors == 0 { "all valid".to_owned() } else { format!("{errors} error(s)") }
    ));
    out.write_all(text.as_bytes()).map_err(|source| CliError::WriteReport { what: "validation".into(), source })?;
    Ok(if errors == 0 { KSFT_PASS } else { KSFT_FAIL })
}

/// The probe report: a summary, then one line per capability (present or MISSING, name,
/// what was found or why it is missing). Counters are listed too; `verbose` adds the
/// strict-mode settings and which missing capabilities the allow-list covers.
pub fn probe_text(caps: &Capabilities, strictness: &Strictness, verbose: bool) -> String {
    let missing = caps.list.iter().filter(|c| !c.present).count();
    let mut t = format!(
        "{} capabilities probed in {} ms: {} present, {missing} missing\n",
        caps.list.len(),
        caps.elapsed.as_millis(),
        caps.list.len() - missing
    );
    match &caps.blocker {
        None => t.push_str("cases can run here: yes\n"),
        Some(b) => t.push_str(&format!("cases can run here: no ({b})\n")),
    }
    let width = caps.list.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &caps.list {
        let word = if c.present { "present" } else { "MISSING" };
        let line = format!("{word}  {:<width$}  {}", c.name, c.detail);
        t.push_str(line.trim_end());
        t.push('\n');
    }
    let other = caps.counters.iter().filter(|c| !c.starts_with("MPTcpExt")).count();
    t.push_str(&format!("(and {other} TcpExt/Tcp/IP counters a case may name: `counter:<name>`)\n"));
    if verbose {
        t.push_str(&format!(
            "strict mode: {}\n",
            match (strictness.require, strictness.strict) {
                (true, _) => "MPTCP_CT_REQUIRE=1 (every skip fails)",
                (false, true) => "MPTCP_CT_STRICT=1 (a skip fails unless allow-listed)",
                (false, false) => "off (run --strict or MPTCP_CT_STRICT=1 to turn it on)",
            }
        ));
        t.push_str(&format!("allow-list: {}\n", if strictness.allow.is_empty() { "(empty)".to_owned() } else { strictness.allow.join(", ") }));
        for c in caps.list.iter().filter(|c| !c.present) {
            t.push_str(&format!("  {} {}\n", c.name, if strictness.allows(&c.name) { "allowed" } else { "NOT allowed" }));
        }
        for u in strictness.unused(caps) {
            t.push_str(&format!("  allow-list entry {u:?} matches no probed capability\n"));
        }
    }
    t
}

/// `probe`: what this machine can run.
pub fn probe(caps: &Capabilities, strictness: &Strictness, verbose: bool, out: &mut dyn Write) -> Result<u8, CliError> {
    let text = probe_text(caps, strictness, verbose);
    out.write_all(text.as_bytes()).map_err(|source| CliError::WriteReport { what: "probe".into(), source })?;
    Ok(if caps.blocker.is_some() { KSFT_SKIP } else { KSFT_PASS })
}

/// `coverage`: what the valid case files assert on, against what this kernel exposes.
pub fn coverage(lib: &Library, caps: &Capabilities, verbose: bool, out: &mut dyn Write) -> Result<u8, CliError> {
    let entries = load_entries(lib)?;
    let cases: Vec<&Case> = entries.iter().filter_map(|e| e.case.as_ref().ok()).collect();
    let invalid = entries.len() - cases.len();
    let (exposed, note) = crate::coverage::exposed(caps);
    let rows = crate::coverage::compare(&crate::coverage::asserted(cases.iter().copied()), &exposed);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "(unknown)".into());
    let mut text = crate::coverage::render(&rows, cases.len(), &kernel, note.as_deref(), verbose);
    if invalid > 0 {
        text.push_str(&format!("\n({invalid} invalid case file(s) not counted: `mptcp-conformance validate` lists them)\n"));
    }
    out.write_all(text.as_bytes()).map_err(|source| CliError::WriteReport { what: "coverage".into(), source })?;
    Ok(KSFT_PASS)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn args(line: &str) -> Result<Command, CliError> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    fn run_args(line: &str) -> RunArgs {
        match args(line) {
            Ok(Command::Run(r)) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn no_subcommand_means_run() {
        assert_eq!(run_args(""), RunArgs { implicit: true, ..RunArgs::default() });
        let r = run_args("--ktap connect::");
        assert!(r.implicit && r.ktap);
        assert_eq!(r.selection.filters, ["connect::"]);
    }

    #[test]
    fn run_options() {
        let r = run_args("run -j 3 --repeat=5 --until-fail --keep --slow 2.5 --junit /tmp/j.xml --json=/tmp/j.jsonl --strict --timings --tag smoke --tag v6 --shard 2/3 --exact a b -- --not-a-flag");
        assert_eq!(r, RunArgs {
            selection: Selection {
                filters: vec!["a".into(), "b".into(), "--not-a-flag".into()],
                exact: true,
                tags: vec!["smoke".into(), "v6".into()],
                shard: Some(Shard { index: 2, count: 3 }),
            },
            jobs: Some(3),
            repeat: Some(5),
            until_fail: true,
            keep: true,
            slow: Some(2.5),
            ktap: false,
            junit: Some("/tmp/j.xml".into()),
            json: Some("/tmp/j.jsonl".into()),
            strict: true,
            timings: true,
            implicit: false,
        });
        assert_eq!(run_args("run -j4").jobs, Some(4));
        assert_eq!(r.repeat(), Repeat { times: Some(5), until_fail: true });
        assert_eq!(run_args("run --until-fail").repeat(), Repeat { times: None, until_fail: true });
        assert_eq!(run_args("run --until-fail --repeat 1").repeat(), Repeat::ONCE);
        assert_eq!(run_args("run").repeat(), Repeat::ONCE);
    }

    #[test]
    fn other_commands() {
        assert_eq!(args("list -v --tag smoke x").unwrap(), Command::List {
            selection: Selection { filters: vec!["x".into()], tags: vec!["smoke".into()], ..Selection::default() },
            verbose: true,
        });
        assert_eq!(args("validate").unwrap(), Command::Validate);
        assert_eq!(args("probe --verbose").unwrap(), Command::Probe { verbose: true });
        assert_eq!(args("coverage -v").unwrap(), Command::Coverage { verbose: true });
        assert_eq!(args("help").unwrap(), Command::Help);
        assert_eq!(args("run connect --help").unwrap(), Command::Help);
        assert_eq!(args("--version").unwrap(), Command::Version);
    }

    #[test]
    fn bad_command_lines_say_why() {
        let msg = |line: &str| args(line).map(|c| format!("parsed: {c:?}")).unwrap_or_else(|e| e.to_string());
        assert_eq!(msg("run --shard 0/2"), "parse the command line: --shard needs I/N with 1 <= I <= N (e.g. 1/2), got \"0/2\"");
        assert!(msg("run --shard 3/2").contains("1 <= I <= N"));
        assert!(msg("run --shard x").contains("got \"x\""));
        assert_eq!(msg("run -j 0"), "parse the command line: -j needs a positive integer, got \"0\"");
        assert_eq!(msg("run --slow 0.5"), "parse the command line: --slow needs a factor >= 1 (e.g. 4), got \"0.5\"");
        assert_eq!(msg("run --junit"), "parse the command line: --junit needs a value");
        assert_eq!(msg("list --ktap"), "parse the command line: unknown option --ktap for `list`");
        assert_eq!(msg("validate extra"), "parse the command line: `validate` takes no arguments (got \"extra\")");
        assert_eq!(msg("run --keep=yes"), "parse the command line: --keep takes no value (got \"yes\")");
        assert_eq!(msg("--frobnicate"), "parse the command line: unknown option --frobnicate for `run`");
    }

    fn ids(n: usize) -> Vec<(String, Vec<String>)> {
        // Deliberately not in order: selection sorts by id.
        (0..n).rev().map(|i| (format!("area{}::case{i:02}", i % 2), if i % 3 == 0 { vec!["smoke".to_owned()] } else { vec![] })).collect()
    }

    fn select(sel: &Selection, items: &[(String, Vec<String>)]) -> Vec<String> {
        sel.apply(items, |t| t.0.as_str(), |t| Some(t.1.as_slice())).into_iter().map(|t| t.0.clone()).collect()
    }

    #[test]
    fn filters_match_substrings_or_whole_ids() {
        let items = ids(6);
        let sel = |f: &[&str], exact| Selection { filters: f.iter().map(|s| s.to_string()).collect(), exact, ..Selection::default() };
        assert_eq!(select(&sel(&[], false), &items).len(), 6);
        assert_eq!(select(&sel(&["area1::"], false), &items), ["area1::case01", "area1::case03", "area1::case05"]);
        assert_eq!(select(&sel(&["case00", "case05"], false), &items), ["area0::case00", "area1::case05"]);
        assert_eq!(select(&sel(&["case00"], true), &items), Vec::<String>::new());
        assert_eq!(select(&sel(&["area0::case00"], true), &items), ["area0::case00"]);
        let tagged = Selection { tags: vec!["smoke".into()], ..Selection::default() };
        assert_eq!(select(&tagged, &items), ["area0::case00", "area1::case03"]);
        assert!(tagged.matches_tags(None), "an invalid case file is kept by a tag filter");
    }

    #[test]
    fn shards_are_deterministic_disjoint_and_complete() {
        let items = ids(7);
        let shard = |index, count| Selection { shard: Some(Shard { index, count }), ..Selection::default() };
        // Sorted: area0::case00 02 04 06, area1::case01 03 05.
        assert_eq!(select(&shard(1, 3), &items), ["area0::case00", "area0::case06", "area1::case05"]);
        assert_eq!(select(&shard(2, 3), &items), ["area0::case02", "area1::case01"]);
        assert_eq!(select(&shard(3, 3), &items), ["area0::case04", "area1::case03"]);
        let mut all: Vec<String> = (1..=3).flat_map(|i| select(&shard(i, 3), &items)).collect();
        all.sort();
        assert_eq!(all, select(&Selection::default(), &items));
        let mut reversed = items.clone();
        reversed.reverse();
        assert_eq!(select(&shard(2, 3), &reversed), select(&shard(2, 3), &items), "input order does not matter");
        assert_eq!(select(&shard(1, 1), &items).len(), 7);
    }

    #[test]
    fn strict_mode_turns_skips_into_failures() {
        let skip = CaseResult {
            id: "connect::v4_basic".into(),
            verdict: Verdict::Skip("needs root".into()),
            elapsed: Duration::ZERO,
            report: String::new(),
            artifacts: None,
        };
        let caps = Capabilities {
            blocker: Some("needs root".into()),
            list: vec![crate::probe::Capability { name: "root".into(), present: false, detail: "needs root".into() }],
            ..Capabilities::default()
        };
        let policy = Strictness { strict: true, ..Strictness::default() };
        let r = policy.apply(&caps, None, skip.clone());
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(
            r.report,
            "could not run here, and strict mode (--strict, MPTCP_CT_STRICT=1) makes that a failure: needs root\n\
             not in the allow-list (MPTCP_CT_ALLOW_MISSING / MPTCP_CT_ALLOW_FILE): root\n"
        );
        let pass = CaseResult { verdict: Verdict::Pass, ..skip.clone() };
        assert_eq!(strict(&policy, None, pass).verdict, Verdict::Pass);
        assert_eq!(strict(&Strictness::default(), None, skip.clone()).verdict, skip.verdict, "off: a skip stays a skip");
    }

    #[test]
    fn unstable_cases_changed_verdict() {
        let mut h = BTreeMap::new();
        h.insert("a".to_owned(), vec![Kind::Pass, Kind::Pass]);
        h.insert("b".to_owned(), vec![Kind::Pass, Kind::Fail]);
        assert_eq!(unstable(&h), [Unstable { id: "b".into(), verdicts: vec![Kind::Pass, Kind::Fail] }]);
    }

    /// A throwaway library on disk: one topology, one good case, two broken ones.
    struct TempLibrary {
        root: PathBuf,
        lib: Library,
    }

    impl TempLibrary {
        fn new(tag: &str) -> TempLibrary {
            let root = std::env::temp_dir().join(format!("mptcp-cli-test-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let lib = Library { cases: root.join("cases"), topologies: root.join("topologies") };
            let write = |rel: &str, text: &str| {
                let p = root.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            };
            write("topologies/pair.toml", "summary = \"two hosts\"\n[hosts.server]\n[hosts.client]\n[[links]]\na = { host = \"server\", ifname = \"e1\", addrs = [\"10.0.1.1/24\"] }\nb = { host = \"client\", ifname = \"e2\", addrs = [\"10.0.1.2/24\"] }\n");
            write("cases/area/good.toml", "summary = \"fine\"\ntopology = \"pair\"\ntags = [\"smoke\"]\n[[connections]]\nclient = \"client\"\nserver = \"server\"\nconnect = \"10.0.1.1\"\n");
            write("cases/area/typo.toml", "summary = \"typo\"\ntopology = \"pair\"\n\n[[connections]]\nclient = \"client\"\nserver = \"server\"\nconect = \"10.0.1.1\"\n");
            write("cases/other/no_topology.toml", "summary = \"x\"\ntopology = \"missing\"\n");
            TempLibrary { root, lib }
        }
    }

    impl Drop for TempLibrary {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn validate_prints_located_errors() {
        let t = TempLibrary::new("validate");
        let mut out = Vec::new();
        assert_eq!(validate(&t.lib, &mut out).unwrap(), KSFT_FAIL);
        let text = String::from_utf8(out).unwrap();
        let typo = t.lib.cases.join("area/typo.toml");
        assert!(text.contains(&format!("{}:7: connections[0].conect: unknown field `conect`", typo.display())), "{text}");
        assert!(text.contains("no_topology.toml:2: topology: unknown topology \"missing\""), "{text}");
        assert!(text.ends_with("checked 3 case file(s) and 1 topology file(s): 2 error(s)\n"), "{text}");
    }

    #[test]
    fn list_shows_ids_and_details() {
        let t = TempLibrary::new("list");
        let mut out = Vec::new();
        list(&t.lib, &Selection::default(), false, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "area::good\narea::typo\nother::no_topology\n");
        let mut out = Vec::new();
        list(&t.lib, &Selection { tags: vec!["smoke".into()], ..Selection::default() }, true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("area::good          fine [smoke]\narea::typo          (invalid case file: "), "{text}");
        assert!(text.contains("other::no_topology  (invalid case file: "), "{text}");
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run_capture(lib: &Library, args: &RunArgs, format: Format) -> (u8, String) {
        let buf = Shared::default();
        let out = Outputs { format, stdout: Box::new(buf.clone()), term: None };
        let code = run(lib, args, out).unwrap();
        let text = String::from_utf8(lock(&buf.0).clone()).unwrap();
        (code, text)
    }

    #[test]
    fn an_invalid_case_file_is_a_failed_result_not_a_crash() {
        let t = TempLibrary::new("run");
        let json = t.root.join("out.jsonl");
        let junit = t.root.join("out.xml");
        let args = RunArgs {
            selection: Selection { filters: vec!["typo".into(), "no_topology".into()], ..Selection::default() },
            jobs: Some(2),
            json: Some(json.clone()),
            junit: Some(junit.clone()),
            ..RunArgs::default()
        };
        let (code, text) = run_capture(&t.lib, &args, Format::Ktap);
        assert_eq!(code, KSFT_FAIL);
        assert!(text.starts_with("TAP version 13\n1..2\n"), "{text}");
        assert!(text.contains("not ok 1 - mptcp-conformance: "), "{text}");
        assert!(text.contains("# invalid case file "), "{text}");
        assert!(text.ends_with("# Totals: pass:0 fail:2 xfail:0 xpass:0 skip:0 error:0\n"), "{text}");
        let json = std::fs::read_to_string(json).unwrap();
        assert_eq!(json.lines().count(), 3);
        assert!(json.lines().last().unwrap().starts_with("{\"summary\":{\"pass\":0,\"fail\":2,"), "{json}");
        assert!(std::fs::read_to_string(junit).unwrap().contains("failures=\"2\""));
    }

    #[test]
    fn nothing_selected_is_a_skip() {
        let t = TempLibrary::new("empty");
        let args = RunArgs { selection: Selection { filters: vec!["nothing-matches".into()], ..Selection::default() }, ..RunArgs::default() };
        let (code, text) = run_capture(&t.lib, &args, Format::Human);
        assert_eq!(code, KSFT_SKIP);
        assert_eq!(text.lines().last(), Some("0 passed, 0 failed, 0 skipped"));
    }

    #[test]
    fn repeated_runs_name_iterations_and_stop_at_a_failure() {
        let t = TempLibrary::new("repeat");
        let args = RunArgs {
            selection: Selection { filters: vec!["area::typo".into()], exact: true, ..Selection::default() },
            repeat: Some(5),
            until_fail: true,
            ..RunArgs::default()
        };
        let (code, text) = run_capture(&t.lib, &args, Format::Ktap);
        assert_eq!(code, KSFT_FAIL);
        assert!(text.contains("not ok 1 - mptcp-conformance: area::typo (iteration 1) # time=0ms\n"), "{text}");
        assert!(!text.contains("iteration 2"), "stops after the first failing iteration: {text}");
        assert!(text.contains("\n1..1\n"), "the plan comes last: {text}");
    }

    #[test]
    fn probe_prints_what_the_probe_found() {
        use crate::probe::Capability;
        let cap = |name: &str, present: bool, detail: &str| Capability { name: name.into(), present, detail: detail.into() };
        let mut caps = Capabilities {
            blocker: None,
            counters: ["MPTcpExtMPJoinSynRx", "TcpExtTCPLossProbes"].map(str::to_owned).into(),
            list: vec![
                cap("mptcp", true, "IPPROTO_MPTCP sockets"),
                cap("qdisc:netem", false, "ENOENT: \"Specified qdisc kind is unknown\""),
                cap("counter:MPTcpExtMPJoinSynRx", true, ""),
            ],
            elapsed: Duration::from_millis(31),
        };
        let policy = Strictness { strict: true, allow: vec!["netem".into(), "tc:typo".into()], ..Strictness::default() };
        let mut out = Vec::new();
        assert_eq!(probe(&caps, &policy, false, &mut out).unwrap(), KSFT_PASS);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "3 capabilities probed in 31 ms: 2 present, 1 missing\n\
             cases can run here: yes\n\
             present  mptcp                        IPPROTO_MPTCP sockets\n\
             MISSING  qdisc:netem                  ENOENT: \"Specified qdisc kind is unknown\"\n\
             present  counter:MPTcpExtMPJoinSynRx\n\
             (and 1 TcpExt/Tcp/IP counters a case may name: `counter:<name>`)\n"
        );
        let v = probe_text(&caps, &policy, true);
        assert!(v.ends_with("strict mode: MPTCP_CT_STRICT=1 (a skip fails unless allow-listed)\nallow-list: netem, tc:typo\n  qdisc:netem allowed\n  allow-list entry \"tc:typo\" matches no probed capability\n"), "{v}");
        caps.blocker = Some("needs root".into());
        let mut out = Vec::new();
        assert_eq!(probe(&caps, &policy, false, &mut out).unwrap(), KSFT_SKIP);
        assert!(String::from_utf8(out).unwrap().contains("cases can run here: no (needs root)\n"));
    }
}
