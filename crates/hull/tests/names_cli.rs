//! Containers on a user network reach each other by name (docker's user-defined networks):
//! each one's hosts file lists the others on its network, kept current as they start, end,
//! are removed or lose their monitor; containers on another network are not listed. On
//! networks of the test's own, with their own subnets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The section hull keeps in a hosts file (hull-net's `names`).
const BEGIN: &str = "# hull: containers on this container's networks";

/// A shell function `ask HOST` that reads the server's greeting, and calls it: the server
/// listens again a moment after each connection, and a connection that meets the previous
/// one's end reads nothing, so it is tried again.
const ASK: &str = "ask() { for i in $(seq 100); do g=$(nc $1 7000 2>/dev/null); \
                   [ -n \"$g\" ] && echo \"$g\" && return; sleep 0.05; done; }; ask";

/// A network of the test's own, `PREFIX-PID` on 10.SECOND.x.0/24 (x from the pid); its name.
fn network(r: &mut common::Root, prefix: &str, second: u32) -> String {
    let tag = std::process::id();
    let name = format!("{prefix}-{tag}");
    let subnet = format!("10.{second}.{}.0/24", tag % 200 + 20);
    r.ok(&["network", "create", &name, "--subnet", &subnet]);
    name
}

/// A container named `name` on `network` that runs until removed; its id.
fn sleeper(r: &mut common::Root, name: &str, network: &str) -> String {
    r.detach(&[
        "--name",
        name,
        "--network",
        network,
        "busybox",
        "sleep",
        "300",
    ])
}

fn hosts_of(r: &common::Root, name: &str) -> String {
    r.ok(&["exec", name, "cat", "/etc/hosts"])
}

/// Polls `name`'s hosts file until `want` holds of it; the last text read.
fn hosts_until(r: &common::Root, name: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = hosts_of(r, name);
        if want(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{name}'s /etc/hosts:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn containers_on_a_user_network_talk_by_name() {
    let mut r = root!("names");
    let tag = std::process::id();
    let net_a = network(&mut r, "names-a", 235);
    let net_b = network(&mut r, "names-b", 234);
    let srv = format!("srv-{tag}");
    let srv_id = r.detach(&[
        "--name",
        &srv,
        "--network",
        &net_a,
        "--network-alias",
        "db.internal",
        "busybox",
        "sh",
        "-c",
        "while true; do echo hi-from-srv | nc -l -p 7000; done",
    ]);
    // A user's own line in the server's hosts file, which hull's updates leave alone.
    r.ok(&[
        "exec",
        &srv,
        "sh",
        "-c",
        "echo '192.0.2.9\tmine' >> /etc/hosts",
    ]);

    // A client on the network reaches the server by its name and by its short id.
    let client = format!("cli-{tag}");
    let by_name = format!("{ASK} {srv}; ask {}; ask db.internal", &srv_id[..12]);
    let out = r.ok(&[
        "run",
        "--rm",
        "--name",
        &client,
        "--network",
        &net_a,
        "busybox",
        "sh",
        "-c",
        &by_name,
    ]);
    assert_eq!(out, "hi-from-srv\n".repeat(3));
    // Gone with the client (an --rm container's teardown).
    let hosts = hosts_until(&r, &srv, |h| !h.contains(&client));
    assert!(hosts.contains("192.0.2.9\tmine\n"), "{hosts}");

    // A third container started later is seen by the first, and sees it.
    let late = format!("late-{tag}");
    let late_id = sleeper(&mut r, &late, &net_a);
    let hosts = hosts_of(&r, &srv);
    let late_ip = r.inspect(&late_id)["NetworkSettings"][0]["ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        hosts.contains(&format!("{late_ip}\t{late} {}\n", &late_id[..12])),
        "{hosts}"
    );
    assert!(hosts.contains("192.0.2.9\tmine\n"), "{hosts}");
    assert!(hosts_of(&r, &late).contains(&format!("\t{srv} ")));
    let ping = r.ok(&["exec", &late, "sh", "-c", &format!("{ASK} {srv}")]);
    assert_eq!(ping, "hi-from-srv\n");

    // A container on another network neither sees them nor is seen.
    let other = format!("other-{tag}");
    sleeper(&mut r, &other, &net_b);
    let theirs = hosts_of(&r, &other);
    assert!(
        !theirs.contains(&srv) && !theirs.contains(BEGIN),
        "{theirs}"
    );
    let o = r.hull(&["exec", &other, "nc", &srv, "7000"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("bad address"),
        "{srv} resolved from another network: {err}"
    );
    assert!(!hosts_of(&r, &srv).contains(&other));

    // A removed container disappears from the others' hosts files.
    // Renamed, it is known by its new name.
    let moved = format!("moved-{tag}");
    r.ok(&["rename", &late, &moved]);
    let hosts = hosts_of(&r, &srv);
    assert!(
        hosts.contains(&format!("\t{moved} ")) && !hosts.contains(&late),
        "{hosts}"
    );
    r.ok(&["rm", "-f", &moved]);
    let hosts = hosts_of(&r, &srv);
    assert!(!hosts.contains(&moved) && !hosts.contains(BEGIN), "{hosts}");
    assert!(hosts.contains("192.0.2.9\tmine\n"), "{hosts}");

    // So does one whose monitor was killed, once the next command has cleaned up after it.
    let lost = format!("lost-{tag}");
    let lost_id = sleeper(&mut r, &lost, &net_a);
    assert!(hosts_of(&r, &srv).contains(&lost));
    let v = r.inspect(&lost_id);
    let monitor = v["State"]["MonitorPid"].as_i64().unwrap();
    kill(
        Pid::from_raw(i32::try_from(monitor).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    let ps = r.ok(&["ps", "-a", "--filter", &format!("name={lost}")]);
    assert!(ps.contains(&lost), "{ps}");
    hosts_until(&r, &srv, |h| !h.contains(&lost));

    r.ok(&["rm", "-f", &srv, &other, &lost]);
    // As docker: no names on the default network, so no aliases there either.
    let err = r.bad(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--network-alias",
        "x",
        "busybox",
        "true",
    ]);
    assert!(
        err.contains("--network-alias needs a user network"),
        "{err}"
    );
    r.assert_clean();
}

#[test]
fn a_restarted_container_is_named_again_at_its_address() {
    let mut r = root!("namesrst");
    let tag = std::process::id();
    let net = network(&mut r, "names-r", 233);
    let watcher = format!("watch-{tag}");
    sleeper(&mut r, &watcher, &net);
    // Up about a second each time, then exits to be restarted.
    let flaky = format!("flaky-{tag}");
    let id = r.detach(&[
        "--name",
        &flaky,
        "--network",
        &net,
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1",
    ]);
    let ip = r.inspect(&id)["NetworkSettings"][0]["ip"]
        .as_str()
        .unwrap()
        .to_string();
    let line = format!("{ip}\t{flaky} ");
    assert!(hosts_of(&r, &watcher).contains(&line));
    // Back after a restart (its count grew), with the same address.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = r.inspect(&id);
        if v["RestartCount"].as_u64().unwrap_or(0) >= 1 && v["State"]["Status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "never restarted: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    hosts_until(&r, &watcher, |h| h.contains(&line));
    r.ok(&["rm", "-f", &id, &watcher]);
    r.assert_clean();
}

#[test]
fn containers_started_together_all_see_each_other() {
    let mut r = root!("namespar");
    let net = network(&mut r, "names-p", 232);
    let tag = std::process::id();
    let names: Vec<String> = (0..8).map(|i| format!("par{i}-{tag}")).collect();
    // Started at once: each publish and each peer's rewrite is under one lock, so none is lost.
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            r.spawn(
                &[
                    "run",
                    "-d",
                    "--name",
                    n,
                    "--network",
                    &net,
                    "busybox",
                    "sleep",
                    "300",
                ],
                std::process::Stdio::null(),
            )
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        r.ids
            .push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    for n in &names {
        let hosts = hosts_of(&r, n);
        for other in names.iter().filter(|o| *o != n) {
            assert!(hosts.contains(&format!("\t{other} ")), "{n}:\n{hosts}");
        }
        assert_eq!(hosts.matches(BEGIN).count(), 1, "{hosts}");
    }
    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    r.ok(&rm);
    r.assert_clean();
}
