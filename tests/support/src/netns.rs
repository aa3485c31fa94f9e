//! Hosts of their own for data nodes: one network namespace per node, joined to the root
//! namespace (where the gateways, `cairn admin` and the test run) by a veth pair on a /30 of the
//! benchmarking range 198.18.0.0/15 (RFC 2544), which no real network routes. A node runs
//! through `ip netns exec` and listens on its namespace's address, so faults put on its link
//! (down, or a `tc` qdisc) hit only the traffic between it and the rest of the cluster.
//! Everything made here is removed when the `Network` (or a fault's guard) is dropped, on
//! failure too; namespaces that a killed test process left behind are removed by the next run.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The first /24 of 198.18.0.0/15: a network takes one /24 (up to 64 hosts of a /30 each).
const FIRST_NET: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const NETS: u32 = 512;
/// /24s tried before giving up: a failure past a few is not a name taken by another run.
const CLAIM_ATTEMPTS: u32 = 8;
/// The prefix of every namespace made here, followed by the owning test process's PID.
const NS_PREFIX: &str = "cairn-";

/// Networks made by this process, to give each a different /24 and names of its own.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `program args...`; its stdout, or why it failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program} (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// Runs `program args...` inside namespace `ns`.
fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    ip(&all)
}

/// Removes namespaces of earlier runs whose process is gone (their veth pairs go with them).
fn remove_stale_namespaces() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The namespaces of one test, one per data node.
pub struct Network {
    pub hosts: Vec<Host>,
}

/// One namespace and its link to the root namespace.
pub struct Host {
    /// The namespace's name.
    pub ns: String,
    /// The veth end in the root namespace.
    outer: String,
    /// The veth end inside the namespace.
    inner: String,
    /// The address inside the namespace, where the data node listens.
    pub address: Ipv4Addr,
}

impl Network {
    /// Makes `hosts` namespaces linked to the root namespace, or says why it cannot (not root,
    /// no `ip` command, no namespaces in this kernel or container), for the test to print and
    /// skip.
    pub fn create(hosts: usize) -> Result<Network, String> {
        assert!(hosts <= 64, "a network has at most 64 hosts");
        remove_stale_namespaces();
        let pid = std::process::id();
        let mut network = Network { hosts: Vec::new() };
        // A /24 is claimed by creating its first veth, whose name carries its number: the
        // kernel refuses a second link of that name, so parallel runs never share a /24.
        let first = pid
            .wrapping_mul(7)
            .wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed) * 31);
        let mut claimed = None;
        let mut last_error = String::new();
        for net in (0..CLAIM_ATTEMPTS).map(|i| (first + i) % NETS) {
            let base = Ipv4Addr::from(FIRST_NET + (net << 8));
            let in_use = ip(&["-4", "-o", "addr", "show", "to", &format!("{base}/24")])?;
            if !in_use.trim().is_empty() {
                continue;
            }
            match network.add_host(pid, net) {
                Ok(()) => {
                    claimed = Some(net);
                    break;
                }
                Err(why) => last_error = why,
            }
        }
        let Some(net) = claimed else {
            return Err(format!("cannot make a network namespace: {last_error}"));
        };
        while network.hosts.len() < hosts {
            network.add_host(pid, net)?;
        }
        Ok(network)
    }

    /// Adds host number `hosts.len()` on /24 number `net`.
    fn add_host(&mut self, pid: u32, net: u32) -> Result<(), String> {
        let index = self.hosts.len() as u32;
        let ns = format!("{NS_PREFIX}{pid}-{net}-{index}");
        // At most 15 bytes: "cf" + /24 (3 hex digits) + end + host.
        let outer = format!("cf{net:03x}h{index}");
        let inner = format!("cf{net:03x}n{index}");
        let subnet = FIRST_NET + (net << 8) + (index << 2);
        let outer_ip = Ipv4Addr::from(subnet + 1);
        let address = Ipv4Addr::from(subnet + 2);
        ip(&["netns", "add", &ns])?;
        let link = ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
        ]);
        if let Err(why) = link {
            // The name may be another run's: nothing of ours to remove but the namespace.
            let _ = ip(&["netns", "del", &ns]);
            return Err(why);
        }
        // From here the host's drop removes what was made, if a later step fails.
        self.hosts.push(Host {
            ns,
            outer,
            inner,
            address,
        });
        let host = self.hosts.last().expect("just pushed");
        ip(&["addr", "add", &format!("{outer_ip}/30"), "dev", &host.outer])?;
        ip(&["link", "set", &host.outer, "up"])?;
        let inner_addr = format!("{address}/30");
        in_ns(
            &host.ns,
            "ip",
            &["addr", "add", &inner_addr, "dev", &host.inner],
        )?;
        in_ns(&host.ns, "ip", &["link", "set", &host.inner, "up"])?;
        in_ns(&host.ns, "ip", &["link", "set", "lo", "up"])?;
        Ok(())
    }
}

impl Host {
    /// The command a data node runs through to live in this namespace.
    pub fn wrapper(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.ns]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// The address a data node listens on: this namespace's, on a free port.
    pub fn listen(&self) -> String {
        format!("{}:0", self.address)
    }

    /// Cuts the link: the namespace's end goes down, so nothing passes either way and what the
    /// root namespace sends is dropped without an answer, as across a partition; connections
    /// stay open and stall. Healed when the guard is dropped.
    pub fn partition(&self) -> Partition<'_> {
        self.set_link("down");
        Partition { host: self }
    }

    fn set_link(&self, state: &str) {
        in_ns(&self.ns, "ip", &["link", "set", &self.inner, state])
            .unwrap_or_else(|why| panic!("{why}"));
    }

    /// Limits the link to `rate` (as `tc` spells it, e.g. `40mbit`) each way: a token bucket
    /// whose queue holds 200 ms and drops beyond it, so that a transfer takes the time it would
    /// across a real network. Removed when the guard is dropped.
    pub fn limit(&self, rate: &str) -> Shaped<'_> {
        let guard = Shaped { host: self };
        self.add_qdisc(&["tbf", "rate", rate, "burst", "32kb", "latency", "200ms"])
            .unwrap_or_else(|why| panic!("{why}"));
        guard
    }

    /// Slows the link each way with `tc netem delay 200ms loss 5%`, or, on a kernel without
    /// netem (sch_netem), a 2 Mbit/s [`Host::limit`]. Returns the guard, which removes the
    /// qdiscs, and what it put on the link.
    pub fn slow(&self) -> (Shaped<'_>, &'static str) {
        let guard = Shaped { host: self };
        match self.add_qdisc(&["netem", "delay", "200ms", "loss", "5%"]) {
            Ok(()) => (guard, "netem delay 200ms loss 5% each way"),
            Err(netem) => {
                crate::report!("no netem ({netem}): a token bucket slows the link instead");
                // Half of it may be in place: start again from a bare link.
                drop(guard);
                (
                    self.limit("2mbit"),
                    "tbf rate 2mbit burst 32kb latency 200ms each way (no netem in this kernel)",
                )
            }
        }
    }

    /// Puts `qdisc` at the root of both ends of the link.
    fn add_qdisc(&self, qdisc: &[&str]) -> Result<(), String> {
        let mut outer = vec!["qdisc", "add", "dev", &self.outer, "root"];
        outer.extend_from_slice(qdisc);
        run("tc", &outer)?;
        let mut inner = vec!["qdisc", "add", "dev", &self.inner, "root"];
        inner.extend_from_slice(qdisc);
        in_ns(&self.ns, "tc", &inner).map(drop)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth end inside it and so the pair; the outer
        // end is deleted first in case a process still holds the namespace open.
        let _ = ip(&["link", "del", &self.outer]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// A cut link, healed on drop.
pub struct Partition<'a> {
    host: &'a Host,
}

impl Partition<'_> {
    /// Heals the link now.
    pub fn heal(self) {}
}

impl Drop for Partition<'_> {
    fn drop(&mut self) {
        self.host.set_link("up");
    }
}

/// A slowed or limited link, restored on drop.
pub struct Shaped<'a> {
    host: &'a Host,
}

impl Drop for Shaped<'_> {
    fn drop(&mut self) {
        let host = self.host;
        let _ = run("tc", &["qdisc", "del", "dev", &host.outer, "root"]);
        let _ = in_ns(
            &host.ns,
            "tc",
            &["qdisc", "del", "dev", &host.inner, "root"],
        );
    }
}
