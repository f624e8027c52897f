//! Property test of the case and topology parsers: thousands of documents derived from the
//! real files of `cases/` and `topologies/` by random mutations (bytes and lines deleted,
//! duplicated, swapped; TOML tokens, keys and odd values inserted; truncation) are given to
//! `Case::from_source` / `Topology::from_source`, which must return a value or located
//! errors, never panic.
//!
//! Deterministic: a small xorshift generator seeded from `MPTCP_CT_FUZZ_SEED` (default fixed);
//! `MPTCP_CT_FUZZ_ITERS` sets the number of documents (default 4000). A panicking document is
//! written to `target/fuzz-failures/` and named in the failure. No root needed.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use mptcp_spec::source::Source;
use mptcp_spec::{Case, SpecErrors, Topology};

/// xorshift64*: small, fast, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Values and tokens a mutation may insert.
const TOKENS: &[&str] = &[
    "[", "]", "{", "}", "[[", "]]", "=", "\"", "'", "\n", ",", ".", "#", "\\", "\"\"\"", "'''",
    "[[steps]]\n", "[[connections]]\n", "[expect.server]\n", "[hosts.client]\n", "[expect.client.counters]\n",
    "host = \"client\"\n", "pm = \"add\"\n", "repeat = { var = \"i\", from = 1, to = 3 }\n", "steps = [ { host = \"server\", pm = \"flush\" } ]\n",
    "-1", "0", "255", "256", "65536", "4294967296", "18446744073709551616", "99999999999999999999999", "1e400", "-0", "nan", "inf",
    "true", "\"any\"", "\"$conn0.client_token\"", "\"$\"", "\"$i\"", "\"16EiB\"", "\"1KiB\"", "\"9999999999h\"", "\"-5s\"", "\"0ms\"",
    "\"::ffff:10.0.1.1\"", "\"10.0.1.1:99999\"", "\"[::1]:0\"", "\"10.0.1.256\"", "\"\"", "\"é\u{301}\"", "\"\u{0}\"", "\"\u{feff}\"",
    "{ ge = 5, le = 1 }", "{ eq = 1, ge = 2 }", "{ x = 1 }", "[]", "[[]]", "{}", "1979-05-27T07:32:00Z",
    "{ event = \"created\", saddr = \"$conn9.client_addr\" }", "\"listener_created\"", "{ by = \"client\", after = \"1MiB\" }",
    "{ chunk = \"0\", interval = \"0ms\" }", "{ dev = \"nope\", state = \"sideways\" }",
];

/// Every key written in the corpus (`key =` at a line start), to swap keys for keys.
fn keys_of(texts: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .filter(|k| !k.is_empty() && k.len() < 40 && !k.contains(' '))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn mutate(rng: &mut Rng, text: &str, keys: &[String]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.below(lines.len());
        match rng.below(9) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(rng.below(lines.len() + 1), l);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                // Insert a token at a random char boundary of a line.
                let l = &lines[i];
                let cut = l.char_indices().map(|(k, _)| k).nth(rng.below(l.chars().count() + 1)).unwrap_or(l.len());
                lines[i] = format!("{}{}{}", &l[..cut], rng.pick(TOKENS), &l[cut..]);
            }
            4 => {
                // Replace a value.
                if let Some((k, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{k}= {}", rng.pick(TOKENS));
                }
            }
            5 => {
                // Replace a key.
                if let Some((_, v)) = lines[i].split_once('=') {
                    lines[i] = format!("{} ={v}", rng.pick(keys));
                }
            }
            6 => {
                // Delete a char range.
                let l: Vec<char> = lines[i].chars().collect();
                let a = rng.below(l.len() + 1);
                let b = (a + rng.below(8)).min(l.len());
                lines[i] = l[..a].iter().chain(&l[b..]).collect();
            }
            7 => lines.truncate(i),
            _ => {
                // A line made only of tokens.
                let n = 1 + rng.below(5);
                lines.insert(i, (0..n).map(|_| *rng.pick(TOKENS)).collect::<Vec<_>>().join(" "));
            }
        }
    }
    let mut out = lines.join("\n");
    if rng.below(4) == 0 {
        // Cut at a random byte (on a char boundary).
        let cut = out.char_indices().map(|(k, _)| k).nth(rng.below(out.chars().count() + 1)).unwrap_or(out.len());
        out.truncate(cut);
    }
    out
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn mutated_case_and_topology_files_never_panic() {
    let root = mptcp_runner::library::workspace_root();
    let mut case_files = Vec::new();
    toml_files(&root.join("cases"), &mut case_files);
    case_files.sort();
    let mut topo_files = Vec::new();
    toml_files(&root.join("topologies"), &mut topo_files);
    topo_files.sort();
    assert!(!case_files.is_empty() && !topo_files.is_empty(), "no corpus under {}", root.display());

    let cases: Vec<String> = case_files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    let topos: Vec<(String, String)> = topo_files
        .iter()
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(p).unwrap()))
        .collect();
    let mut valid: BTreeMap<String, Topology> = BTreeMap::new();
    for (name, text) in &topos {
        if let Ok(t) = Topology::from_source(name, &Source::new(format!("topologies/{name}.toml"), text.as_str())) {
            valid.insert(name.clone(), t);
        }
    }
    let resolve = |name: &str| -> Result<Topology, SpecErrors> {
        valid.get(name).cloned().ok_or_else(|| {
            SpecErrors(vec![mptcp_spec::SpecError {
                file: format!("topologies/{name}.toml").into(),
                line: None,
                key: mptcp_spec::KeyPath::root(),
                message: "cannot read the file: not in the corpus".into(),
            }])
        })
    };
    let all_texts: Vec<String> = cases.iter().cloned().chain(topos.iter().map(|(_, t)| t.clone())).collect();
    let keys = keys_of(&all_texts);

    let iters: usize = std::env::var("MPTCP_CT_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let seed: u64 = std::env::var("MPTCP_CT_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x6d70_7463_6675_7a7a);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // The default hook would print every caught panic; keep the output to the summary.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let (mut ok, mut rejected, mut panics) = (0usize, 0usize, Vec::new());
    for n in 0..iters {
        let topo_round = n % 5 == 4;
        let (label, doc) = if topo_round {
            let (name, text) = rng.pick(&topos);
            (format!("topologies/{name}.toml"), mutate(&mut rng, text, &keys))
        } else {
            let k = rng.below(cases.len());
            (case_files[k].display().to_string(), mutate(&mut rng, &cases[k], &keys))
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            if topo_round {
                Topology::from_source("fuzz", &Source::new("topologies/fuzz.toml", doc.as_str())).is_ok()
            } else {
                Case::from_source("fuzz::case".into(), &Source::new("cases/fuzz/case.toml", doc.as_str()), &resolve).is_ok()
            }
        }));
        match r {
            Ok(true) => ok += 1,
            Ok(false) => rejected += 1,
            Err(p) => {
                let msg = p.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
                panics.push((n, label, msg, doc));
            }
        }
    }
    std::panic::set_hook(hook);
    eprintln!("case parser fuzz: {iters} documents (seed {seed}): {ok} accepted, {rejected} rejected with errors, {} panics", panics.len());
    if let Some((n, label, msg, doc)) = panics.first() {
        let dir = root.join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        for (n, _, _, doc) in &panics {
            let _ = std::fs::write(dir.join(format!("doc-{seed}-{n}.toml")), doc);
        }
        panic!("{} of {iters} documents panicked the parser; first: #{n}, mutated from {label}: {msg}\n(all written to {})\n---\n{doc}", panics.len(), dir.display());
    }
    assert!(ok > 0 && rejected > 0, "the mutations should produce both valid and invalid documents");
}
