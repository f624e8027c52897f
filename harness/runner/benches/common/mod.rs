//! What the benches share: reading back the JSON lines a `run` wrote.

/// Per-case times and the summary counts of one run's JSON lines.
pub struct RunJson {
    /// `(case, time_ms)` per result line.
    pub times: Vec<(String, u64)>,
    /// pass, fail, skip, xfail, xpass from the summary line.
    pub counts: [u64; 5],
}

/// Parses the file `run --json` wrote (a missing or unreadable file reads as empty).
pub fn read(path: &std::path::Path) -> RunJson {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = [0u64; 5];
    let mut times = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let (Some(case), Some(ms)) = (v.get("case").and_then(|c| c.as_str()), v.get("time_ms").and_then(|t| t.as_u64())) {
            times.push((case.to_owned(), ms));
        }
        if let Some(s) = v.get("summary") {
            for (i, k) in ["pass", "fail", "skip", "xfail", "xpass"].iter().enumerate() {
                counts[i] = s.get(*k).and_then(|x| x.as_u64()).unwrap_or(0);
            }
        }
    }
    RunJson { times, counts }
}
