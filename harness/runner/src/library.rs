//! The case library on disk: `cases/**/*.toml` and `topologies/*.toml`.

use std::path::{Path, PathBuf};

use mptcp_spec::{Case, SpecErrors};

/// Where the library lives.
#[derive(Debug, Clone)]
pub struct Library {
    /// `cases/`.
    pub cases: PathBuf,
    /// `topologies/`.
    pub topologies: PathBuf,
}

impl Library {
    /// The repository's own library, or `MPTCP_CT_CASES` / `MPTCP_CT_TOPOLOGIES`.
    pub fn default_location() -> Library {
        let root = workspace_root();
        let pick = |var: &str, dir: &str| std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| root.join(dir));
        Library { cases: pick("MPTCP_CT_CASES", "cases"), topologies: pick("MPTCP_CT_TOPOLOGIES", "topologies") }
    }

    /// Every case file, sorted by path.
    pub fn case_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        walk(&self.cases, &mut out)?;
        out.sort();
        Ok(out)
    }

    /// The trial name of a case file.
    pub fn case_id(&self, file: &Path) -> String {
        mptcp_spec::case::case_id(&self.cases, file)
    }

    /// Loads one case file.
    pub fn load(&self, file: &Path) -> Result<Case, SpecErrors> {
        Case::load(&self.cases, file, &self.topologies)
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

/// The repository root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().and_then(Path::parent).unwrap_or(here).to_path_buf()
}
