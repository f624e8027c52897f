//! Benchmark: build and tear down the `base` topology (2 namespaces, 4 veth pairs, 16
//! addresses, 8 routes, 5 sysctls per host) over rtnetlink, versus the same topology built
//! the way the shell selftests do it, one `ip` / `sysctl` process per step.
//!
//! `cargo bench -p mptcp-conformance --bench topology [-- --iterations N --ip-iterations M]`
//! (as root). Prints min / median / p90 per method and the speed-up of the medians.

use std::process::Command;
use std::time::{Duration, Instant};

use mptcp_runner::library::Library;
use mptcp_runner::topology::Topology;
use mptcp_spec::topology::Topology as Spec;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("topology benchmark: needs root; skipped");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let n_nl = arg("--iterations", 200);
    let n_ip = arg("--ip-iterations", 20);
    let lib = Library::default_location();
    let spec = Spec::load(&lib.topologies, "base").unwrap_or_else(|e| panic!("load topologies/base.toml: {e}"));
    mptcp_runner::netns::sweep();

    // Warm up both paths once.
    drop(Topology::build(&spec).expect("build base over netlink"));
    ip_build_and_teardown(&spec, 0);

    let nl: Vec<Duration> = (0..n_nl)
        .map(|_| {
            let t = Instant::now();
            let topo = Topology::build(&spec).expect("build base over netlink");
            drop(topo);
            t.elapsed()
        })
        .collect();
    let ip: Vec<Duration> = (1..=n_ip).map(|i| ip_build_and_teardown(&spec, i)).collect();

    let (nl_med, ip_med) = (report("rtnetlink", nl), report("ip processes", ip));
    println!("speed-up (median ip / median rtnetlink): {:.1}x", ip_med.as_secs_f64() / nl_med.as_secs_f64());
}

fn report(name: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "base build+teardown via {name:<13}: n={:<4} min {:7.2} ms  median {:7.2} ms  p90 {:7.2} ms",
        v.len(),
        ms(v[0]),
        ms(pick(0.5)),
        ms(pick(0.9))
    );
    pick(0.5)
}

/// The same topology with one process per step, as `mptcp_join.sh` builds it.
fn ip_build_and_teardown(spec: &Spec, i: usize) -> Duration {
    let pid = std::process::id();
    let name = |h: &str| format!("mptcpct-{pid}-bench{i}-{h}");
    let t = Instant::now();
    let run = |args: &[&str]| {
        let st = Command::new(args[0]).args(&args[1..]).status().unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(st.success(), "{args:?} failed");
    };
    for h in spec.hosts.values() {
        let ns = name(&h.name);
        run(&["ip", "netns", "add", &ns]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        for (k, v) in &h.sysctls {
            run(&["ip", "netns", "exec", &ns, "sysctl", "-q", "-w", &format!("{k}={v}")]);
        }
    }
    for l in &spec.links {
        let (a, b) = (name(&l.a.host), name(&l.b.host));
        run(&["ip", "-n", &a, "link", "add", &l.a.ifname, "type", "veth", "peer", "name", &l.b.ifname, "netns", &b]);
        for (ns, end) in [(&a, &l.a), (&b, &l.b)] {
            for addr in &end.addrs {
                let s = addr.to_string();
                if addr.addr.is_ipv6() {
                    run(&["ip", "-n", ns, "addr", "add", &s, "dev", &end.ifname, "nodad"]);
                } else {
                    run(&["ip", "-n", ns, "addr", "add", &s, "dev", &end.ifname]);
                }
            }
            run(&["ip", "-n", ns, "link", "set", &end.ifname, "up"]);
        }
    }
    for h in spec.hosts.values() {
        let ns = name(&h.name);
        for r in &h.routes {
            let mut a: Vec<String> = vec!["ip".into(), "-n".into(), ns.clone()];
            if r.v6 {
                a.push("-6".into());
            }
            a.extend(["route".into(), "add".into(), r.dst.map_or("default".into(), |d| d.to_string())]);
            if let Some(v) = r.via {
                a.extend(["via".into(), v.to_string()]);
            }
            if let Some(d) = &r.dev {
                a.extend(["dev".into(), d.clone()]);
            }
            if let Some(m) = r.metric {
                a.extend(["metric".into(), m.to_string()]);
            }
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            run(&a);
        }
    }
    for h in spec.hosts.values() {
        run(&["ip", "netns", "del", &name(&h.name)]);
    }
    t.elapsed()
}
