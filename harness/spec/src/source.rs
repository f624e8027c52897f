//! A TOML file with its text, and errors that say where: `file:line: key.path: message`.
//!
//! Two kinds of errors are located the same way. A serde error from the raw schema carries a
//! byte span; we find the deepest key whose key or value covers it, which gives the key path.
//! A semantic error from validation carries a key path; we look the key up in the parsed
//! document (toml_edit keeps spans), which gives the line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml_edit::{Item, Value};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// `hosts`, `client`, ...
    Key(String),
    /// `[0]`
    Index(usize),
}

/// Where in a file a value sits, e.g. `hosts.client.endpoints[0].flags`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// The document root.
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }
    /// This path plus one key.
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_owned()));
        KeyPath(v)
    }
    /// This path plus one array index.
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        KeyPath(v)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) => {
                    let bare = !k.is_empty()
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if bare { f.write_str(k)? } else { write!(f, "{k:?}")? }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file, as given to the loader.
    pub file: PathBuf,
    /// 1-based line, when it could be located.
    pub line: Option<usize>,
    /// The key path of the offending value.
    pub key: KeyPath,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file.display(), l, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file.display(), self.key, self.message),
        }
    }
}

impl std::error::Error for SpecError {}

/// Every problem found in one file (validation reports all of them, not just the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// A loaded TOML file: path, text and the span-keeping document.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    text: String,
    doc: Option<toml_edit::Document<String>>,
}

impl Source {
    /// Wraps a file's text (already read).
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let doc = toml_edit::Document::parse(text.clone()).ok();
        Source { path: path.into(), text, doc }
    }

    /// Reads a file.
    pub fn read(path: &Path) -> Result<Self, SpecErrors> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Source::new(path, t)),
            Err(e) => Err(SpecErrors(vec![SpecError {
                file: path.to_owned(),
                line: None,
                key: KeyPath::root(),
                message: format!("cannot read the file: {e}"),
            }])),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Deserializes the raw schema, turning a serde error into a located [`SpecError`].
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, SpecErrors> {
        toml::from_str::<T>(&self.text).map_err(|e| {
            let span = e.span();
            let (key, line) = match (&span, &self.doc) {
                (Some(s), Some(doc)) => {
                    let mut best = KeyPath::root();
                    deepest_key(doc.as_item(), s.start, &KeyPath::root(), &mut best);
                    (best, Some(self.line_of(s.start)))
                }
                (Some(s), None) => (KeyPath::root(), Some(self.line_of(s.start))),
                _ => (KeyPath::root(), None),
            };
            SpecErrors(vec![SpecError {
                file: self.path.clone(),
                line,
                key,
                message: e.message().trim().to_owned(),
            }])
        })
    }

    /// A semantic error at a key path; the line is looked up in the document.
    pub fn error(&self, key: KeyPath, message: impl Into<String>) -> SpecError {
        let line = self.locate(&key).map(|off| self.line_of(off));
        SpecError { file: self.path.clone(), line, key, message: message.into() }
    }

    /// The byte offset of the key (or array element) at `path`, or of its nearest ancestor.
    /// Errors are rare, so the walk clones the items it steps through.
    fn locate(&self, path: &KeyPath) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut item = doc.as_item().clone();
        let mut best: Option<usize> = None;
        for seg in &path.0 {
            let (span, next) = match (seg, &item) {
                (Seg::Key(k), Item::Table(t)) => match t.get_key_value(k) {
                    Some((key, it)) => (key.span(), it.clone()),
                    None => break,
                },
                (Seg::Key(k), Item::Value(Value::InlineTable(t))) => match t.get_key_value(k) {
                    Some((key, v)) => (key.span(), v.clone()),
                    None => break,
                },
                (Seg::Index(i), Item::ArrayOfTables(a)) => match a.get(*i) {
                    // A `[[x]]` element: its first key is the best line for the element.
                    Some(t) => {
                        let first = t.iter().next().and_then(|(k, _)| t.key(k)).and_then(|k| k.span());
                        (first.or(t.span()), Item::Table(t.clone()))
                    }
                    None => break,
                },
                (Seg::Index(i), Item::Value(Value::Array(a))) => match a.get(*i) {
                    Some(v) => (v.span(), Item::Value(v.clone())),
                    None => break,
                },
                _ => break,
            };
            best = span.map(|s| s.start).or(best);
            item = next;
        }
        best
    }

    fn line_of(&self, offset: usize) -> usize {
        let off = offset.min(self.text.len());
        self.text[..off].bytes().filter(|b| *b == b'\n').count() + 1
    }
}

fn covers(span: Option<Range<usize>>, off: usize) -> bool {
    span.is_some_and(|s| s.start <= off && off <= s.end)
}

/// Finds the deepest key whose key span or value span covers `off`.
fn deepest_key(item: &Item, off: usize, here: &KeyPath, best: &mut KeyPath) {
    match item {
        Item::Table(t) => {
            for (k, v) in t.iter() {
                let key_span = t.key(k).and_then(|kk| kk.span());
                let path = here.key(k);
                if covers(key_span.clone(), off) {
                    *best = path.clone();
                }
                if covers(item_span(v), off) || covers(key_span, off) {
                    *best = path.clone();
                    deepest_key(v, off, &path, best);
                } else if matches!(v, Item::Table(_) | Item::ArrayOfTables(_)) {
                    deepest_key(v, off, &path, best);
                }
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let path = here.index(i);
                if covers(t.span(), off) {
                    *best = path.clone();
                }
                deepest_key(&Item::Table(t.clone()), off, &path, best);
            }
        }
        Item::Value(Value::InlineTable(t)) => {
            for (k, v) in t.iter() {
                let key_span = t.key(k).and_then(|kk| kk.span());
                let path = here.key(k);
                if covers(key_span.clone(), off) || covers(v.span(), off) {
                    *best = path.clone();
                    deepest_key(&Item::Value(v.clone()), off, &path, best);
                }
            }
        }
        Item::Value(Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                if covers(v.span(), off) {
                    let path = here.index(i);
                    *best = path.clone();
                    deepest_key(&Item::Value(v.clone()), off, &path, best);
                }
            }
        }
        _ => {}
    }
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Raw {
        name: String,
        #[serde(default)]
        hosts: std::collections::BTreeMap<String, RawHost>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct RawHost {
        mtu: Option<u32>,
    }

    const TEXT: &str = "name = \"x\"\n\n[hosts.client]\nmtu = 1500\n\n[hosts.server]\nmtux = 3\n";

    #[test]
    fn serde_errors_name_key_and_line() {
        let s = Source::new("t.toml", TEXT);
        let e = s.deserialize::<Raw>().unwrap_err().0.remove(0);
        assert_eq!(e.line, Some(7));
        assert_eq!(e.key.to_string(), "hosts.server.mtux");
        assert!(e.message.contains("unknown field `mtux`"), "{}", e.message);
        assert!(e.to_string().starts_with("t.toml:7: hosts.server.mtux: "), "{e}");
    }

    #[test]
    fn wrong_type_is_located() {
        let s = Source::new("t.toml", "name = \"x\"\n[hosts.a]\nmtu = \"big\"\n");
        let e = s.deserialize::<Raw>().unwrap_err().0.remove(0);
        assert_eq!((e.line, e.key.to_string()), (Some(3), "hosts.a.mtu".to_owned()));
    }

    #[test]
    fn semantic_errors_find_the_line_of_a_key_path() {
        let s = Source::new("t.toml", TEXT);
        let e = s.error(KeyPath::root().key("hosts").key("client").key("mtu"), "too big");
        assert_eq!(e.line, Some(4));
        let text = "a = 1\n[[conn]]\nx = 1\n[[conn]]\nx = 2\ny = [1, 2,\n 3]\n";
        let s = Source::new("c.toml", text);
        let p = KeyPath::root().key("conn").index(1).key("y").index(2);
        assert_eq!(s.error(p.clone(), "m").line, Some(7));
        assert_eq!(p.to_string(), "conn[1].y[2]");
        assert_eq!(s.error(KeyPath::root().key("conn").index(1).key("x"), "m").line, Some(5));
        // A missing key falls back to its nearest located ancestor.
        assert_eq!(s.error(KeyPath::root().key("conn").index(0).key("zz"), "m").line, Some(3));
    }

    #[test]
    fn key_paths_quote_odd_keys() {
        let p = KeyPath::root().key("hosts").key("client").key("sysctls").key("net.mptcp.enabled");
        assert_eq!(p.to_string(), "hosts.client.sysctls.\"net.mptcp.enabled\"");
    }
}
