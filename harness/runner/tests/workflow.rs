//! The GitHub Actions workflow (ci/github/workflow.yml) against the kernel list
//! (ci/kernels.toml): the matrix covers every listed kernel and every shard, and the steps the
//! kernel matrix depends on are there. No root, no network: it only reads files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mptcp_runner::vm::{self, VmCommand};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn workflow() -> Yaml {
    let path = root().join("ci/github/workflow.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(docs.len(), 1, "one YAML document");
    docs.remove(0)
}

fn kernel_names() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("ci/kernels.toml")).expect("ci/kernels.toml");
    vm::parse_kernel_list(&text).expect("ci/kernels.toml parses").into_iter().map(|k| k.name).collect()
}

fn s(y: &Yaml) -> String {
    match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn steps(job: &Yaml) -> &[Yaml] {
    job["steps"].as_vec().expect("a job has steps")
}

/// The step whose `uses` starts with `action` (e.g. `actions/upload-artifact@`).
fn uses<'a>(job: &'a Yaml, action: &str) -> Vec<&'a Yaml> {
    steps(job).iter().filter(|st| st["uses"].as_str().is_some_and(|u| u.starts_with(action))).collect()
}

/// The `run` scripts of a job.
fn runs(job: &Yaml) -> Vec<String> {
    steps(job).iter().filter_map(|st| st["run"].as_str().map(str::to_owned)).collect()
}

#[test]
fn the_matrix_covers_every_listed_kernel_and_shard() {
    let wf = workflow();
    let vm_job = &wf["jobs"]["vm"];
    let matrix = &vm_job["strategy"]["matrix"];
    let kernels: Vec<String> = matrix["kernel"].as_vec().expect("matrix.kernel is a list").iter().map(s).collect();
    assert_eq!(kernels, kernel_names(), "matrix.kernel must list ci/kernels.toml's kernels, in order");
    let shards_env: usize = s(&wf["env"]["SHARDS"]).parse().expect("env.SHARDS is a number");
    let shards: Vec<usize> = matrix["shard"].as_vec().expect("matrix.shard is a list").iter().map(|y| s(y).parse().expect("a shard number")).collect();
    assert_eq!(shards, (1..=shards_env).collect::<Vec<_>>(), "matrix.shard must be 1..=SHARDS");
    assert!(shards_env >= 2, "the suite is split into shards");
    assert_eq!(vm_job["strategy"]["fail-fast"].as_bool(), Some(false), "one kernel's failure must not cancel the others");
    let name = s(&vm_job["name"]);
    assert!(name.contains("${{ matrix.kernel }}") && name.contains(&format!("${{{{ matrix.shard }}}}/{shards_env}")), "job name: {name}");
    let needs: BTreeSet<String> = match &vm_job["needs"] {
        Yaml::Array(a) => a.iter().map(s).collect(),
        y => [s(y)].into(),
    };
    assert!(needs.contains("build"), "the VM jobs reuse the binary of the build job");
    assert!(vm_job["timeout-minutes"].as_i64().is_some(), "every VM job is bounded");
}

#[test]
fn the_build_job_uploads_the_binary() {
    let wf = workflow();
    let build = &wf["jobs"]["build"];
    assert!(runs(build).iter().any(|r| r.contains("cargo build --release")), "the build job builds the release binary");
    let up = uses(build, "actions/upload-artifact@");
    assert_eq!(up.len(), 1);
    assert_eq!(s(&up[0]["with"]["path"]), "target/release/mptcp-conformance");
    let artifact = s(&up[0]["with"]["name"]);
    let down = uses(&wf["jobs"]["vm"], "actions/download-artifact@");
    assert_eq!(down.len(), 1, "each VM job downloads the binary");
    assert_eq!(s(&down[0]["with"]["name"]), artifact);
    assert_eq!(s(&down[0]["with"]["path"]), "target/release");
}

#[test]
fn the_vm_job_has_its_key_steps() {
    let wf = workflow();
    let job = &wf["jobs"]["vm"];
    let scripts = runs(job).join("\n");
    // KVM for the runner user (the usual udev rule), virtme-ng and QEMU, the kernel.
    assert!(scripts.contains("/etc/udev/rules.d/") && scripts.contains("KERNEL==\"kvm\"") && scripts.contains("udevadm trigger"), "KVM udev rule step");
    assert!(scripts.contains("ci/setup-vm.sh"), "installs virtme-ng and QEMU");
    assert!(scripts.contains("ci/fetch-kernels ${{ matrix.kernel }}"), "fetches its kernel");
    for script in ["ci/setup-vm.sh", "ci/fetch-kernels", "ci/vm-run"] {
        let p = root().join(script);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap_or_else(|e| panic!("{script}: {e}")).permissions());
        assert!(mode & 0o111 != 0 || script.ends_with(".sh"), "{script} is executable");
    }
    // The run step is a `vm` command line that parses, selects this job's kernel and shard.
    let run = runs(job).into_iter().find(|r| r.contains("mptcp-conformance vm")).expect("a step runs `mptcp-conformance vm`");
    let words: Vec<String> = run
        .replace("${{ matrix.kernel }}", "debian-6.1")
        .replace("${{ matrix.shard }}", "2")
        .replace("${{ env.SHARDS }}", &s(&wf["env"]["SHARDS"]))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let at = words.iter().position(|w| w == "vm").expect("vm subcommand");
    match vm::parse(words[at + 1..].iter().cloned()).expect("the run step's vm command line parses") {
        VmCommand::Matrix(m) => {
            assert!(m.list.ends_with("ci/kernels.toml"), "{:?}", m.list);
            assert_eq!(m.names, ["debian-6.1"]);
            let shard = m.vm.guest_args.iter().position(|a| a == "--shard").expect("--shard is passed to the guest");
            assert_eq!(m.vm.guest_args[shard + 1], format!("2/{}", s(&wf["env"]["SHARDS"])));
            assert!(m.vm.timeout.is_some(), "the VM run has a deadline");
            assert_eq!(m.vm.artifacts.as_deref(), Some(Path::new("target/vm-artifacts")));
        }
        other => panic!("expected a --matrix run, got {other:?}"),
    }
    // JUnit as test results (always), artifacts on failure.
    let publish: Vec<&Yaml> = steps(job).iter().filter(|st| st["with"]["files"].as_str().is_some_and(|f| f.contains("junit.xml"))).collect();
    assert_eq!(publish.len(), 1, "a step publishes the JUnit files");
    assert!(s(&publish[0]["with"]["files"]).contains("vm.xml"), "the VM run's own JUnit (a crash) is published too");
    assert!(s(&publish[0]["if"]).contains("!cancelled()") || s(&publish[0]["if"]).contains("always()"), "results are published when the run fails");
    let upload = uses(job, "actions/upload-artifact@");
    assert_eq!(upload.len(), 1);
    assert!(s(&upload[0]["if"]).contains("failure()"), "artifacts are uploaded on failure");
    assert_eq!(s(&upload[0]["with"]["path"]).trim_end_matches('/'), "target/vm-artifacts");
    assert!(s(&upload[0]["with"]["name"]).contains("${{ matrix.kernel }}") && s(&upload[0]["with"]["name"]).contains("${{ matrix.shard }}"), "artifact names are unique per job");
}
