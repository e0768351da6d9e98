//! A container's terminal and stdio as a user meets them, end to end through a real pty: `run
//! -it` (prompt, typed commands, the window size and its changes, ^P^Q, the exit status),
//! `attach` (again after a detach; stdout and stderr apart; stdin to a `-i` container), `start
//! -a`, `exec -it` and `exec -d`, `logs` of a `-t` container, and the log's rotation by
//! `--log-opt`. Each test has its own `--root` and checks that nothing is left.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{code, Root};

/// How long a pty waits for text it expects.
const WAIT: Duration = Duration::from_secs(20);

/// A `hull` command whose stdio is the slave of a pty this test holds the master of, as in a
/// terminal: the command's session has the pty as its controlling terminal.
struct Term {
    master: File,
    child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
    /// Where the next `expect` starts looking.
    mark: usize,
}

impl Term {
    fn spawn(r: &Root, args: &[&str], rows: u16, cols: u16) -> Term {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave: OwnedFd = pty.slave;
        let mut cmd = r.cmd(args);
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: between fork and exec the child only calls setsid and an ioctl on its fd 0,
        // both async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let master = File::from(pty.master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the command and all its children have closed the slave.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Term {
            master,
            child,
            seen,
            mark: 0,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until `want` shows up after what earlier expects consumed.
    fn expect(&mut self, want: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = self.seen.lock().unwrap().clone();
            let tail = String::from_utf8_lossy(&seen[self.mark.min(seen.len())..]).into_owned();
            if let Some(i) = tail.find(want) {
                self.mark += tail[..i + want.len()].len();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{want:?} not seen; the terminal shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// The terminal's new size: its session's foreground process gets SIGWINCH.
    fn resize(&self, rows: u16, cols: u16) {
        hull_sys::pty::set_window_size(self.master.as_fd(), rows, cols).unwrap();
    }

    /// The command's exit status.
    fn wait(mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "still running; the terminal shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `run -it FLAGS busybox sh` in a terminal of this size, at its first prompt.
fn shell(r: &Root, flags: &[&str], rows: u16, cols: u16) -> Term {
    let mut args = vec!["run", "-it", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend(["busybox", "sh"]);
    let mut t = Term::spawn(r, &args, rows, cols);
    t.expect("/ # ");
    t
}

fn state(r: &Root, name: &str) -> String {
    r.inspect(name)["State"]["Status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn run_it_is_a_working_terminal_with_detach_and_attach() {
    let mut r = root!("tty-it");
    let name = format!("tty-it-{}", std::process::id());
    let mut t = shell(&r, &["--name", &name], 30, 100);
    t.send("stty size\r");
    t.expect("30 100");
    // The computed value shows the command ran, not only that its line was echoed.
    t.send("echo $((6*7))x\r");
    t.expect("42x");
    t.resize(40, 120);
    // The client's SIGWINCH travels to the monitor, which sets the container's pty.
    let deadline = Instant::now() + WAIT;
    loop {
        t.send("stty size\r");
        let before = t.mark;
        t.expect("/ # ");
        let shown = t.text()[before..t.mark].to_string();
        if shown.contains("40 120") {
            break;
        }
        assert!(Instant::now() < deadline, "resize not seen: {}", t.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // ^P^Q: the client leaves with 0, the container runs on.
    t.send("\x10\x11");
    assert_eq!(t.wait(), Some(0));
    let doc = r.inspect(&name);
    r.ids.push(doc["Id"].as_str().unwrap().to_string());
    assert_eq!(doc["Config"]["Tty"], true);
    assert_eq!(doc["Config"]["OpenStdin"], true);
    assert_eq!(state(&r, &name), "running");

    let mut t = Term::spawn(&r, &["attach", &name], 30, 100);
    t.send("echo $((7*6))again\r");
    t.expect("42again");
    t.send("exit 3\r");
    assert_eq!(t.wait(), Some(3));
    assert_eq!(r.ok(&["wait", &name]).trim(), "3");
    assert_eq!(state(&r, &name), "exited");
    // The terminal's output is in the log too.
    let logs = r.ok(&["logs", &name]);
    assert!(logs.contains("30 100") && logs.contains("42x"), "{logs}");
    assert!(logs.contains("42again"), "{logs}");
    r.ok(&["rm", &name]);
    r.assert_clean();
}

#[test]
fn start_a_returns_the_exit_code_and_i_feeds_stdin() {
    let mut r = root!("tty-start");
    let id = r.create(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo started; echo oops >&2; exit 5",
    ]);
    let o = r.hull(&["start", "-a", &id]);
    assert_eq!(code(&o), Some(5), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "started\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n");
    r.ok(&["rm", &id]);

    let id = r.create(&["-i", "--network", "none", "busybox", "cat"]);
    let mut child = r.spawn(&["start", "-a", "-i", &id], Stdio::piped());
    // The end of this stdin closes the container's: cat ends.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "through stdin\n");
    r.ok(&["rm", &id]);
    assert!(r
        .bad(&["start", "-a", "a", "b"])
        .contains("multiple containers"));
    r.assert_clean();
}

#[test]
fn attach_keeps_stdout_and_stderr_apart_and_feeds_stdin() {
    let mut r = root!("tty-attach");
    let id = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ ! -e /tmp/stop ]; do echo out$i; echo err$i >&2; i=$((i+1)); sleep 0.1; done",
    ]);
    let mut child = r.spawn(&["attach", &id], Stdio::null());
    // Attached once output arrives; then the container is told to end.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 3];
    stdout.read_exact(&mut first).unwrap();
    // `start -a` of a running container attaches to it, as docker's.
    let mut again = r.spawn(&["start", "-a", &id], Stdio::null());
    again
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut [0u8; 3])
        .unwrap();
    r.ok(&["exec", &id, "touch", "/tmp/stop"]);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&first).into_owned() + &String::from_utf8_lossy(&rest);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("out") && !out.contains("err"), "stdout: {out}");
    assert!(err.contains("err") && !err.contains("out"), "stderr: {err}");
    let o = again.wait_with_output().unwrap();
    assert_eq!(code(&o), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    r.ok(&["rm", &id]);

    // A container made with -i reads what an attached client sends, until its stdin ends.
    let id = r.detach(&[
        "-i",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "cat; exit 4",
    ]);
    let mut child = r.spawn(&["attach", &id], Stdio::piped());
    child.stdin.take().unwrap().write_all(b"fed\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "fed\n");
    r.ok(&["rm", &id]);
    // Only a running container takes an attach.
    let id = r.create(&["--network", "none", "busybox", "true"]);
    let o = r.hull(&["attach", &id]);
    assert_eq!(code(&o), Some(125));
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn exec_it_has_a_terminal_and_exec_d_returns_at_once() {
    let mut r = root!("tty-exec");
    let id = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    let mut t = Term::spawn(&r, &["exec", "-it", &id, "sh"], 25, 90);
    t.expect("/ # ");
    t.send("tty; stty size\r");
    t.expect("/dev/pts/");
    t.expect("25 90");
    t.send("exit 7\r");
    assert_eq!(t.wait(), Some(7));
    // -t without -i: a terminal, but what the user types is not the process's input.
    let script = "tty; if read -t 3 x; then echo got-$x; else echo no-input; fi";
    let mut t = Term::spawn(&r, &["exec", "-t", &id, "sh", "-c", script], 25, 90);
    t.expect("/dev/pts/");
    t.send("typed\r");
    t.expect("no-input");
    assert_eq!(t.wait(), Some(0));

    let started = Instant::now();
    let o = r.hull(&["exec", "-d", &id, "sh", "-c", "sleep 2; touch /tmp/late"]);
    assert_eq!(code(&o), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(started.elapsed() < Duration::from_secs(2), "exec -d waited");
    let deadline = Instant::now() + WAIT;
    while !r
        .hull(&["exec", &id, "test", "-e", "/tmp/late"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "exec -d's process never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

/// `exec -it`'s detach keys (^P^Q, or `--detach-keys`): the command ends with 0 and the exec'd
/// process runs on, its terminal still open, until the container goes.
#[test]
fn exec_it_detaches_and_the_process_runs_on() {
    let mut r = root!("tty-execdetach");
    let id = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    for (keys, typed) in [(None, "\x10\x11"), (Some("ctrl-a,x"), "\x01x")] {
        let mut args = vec!["exec", "-it"];
        args.extend(keys.map(|k| ["--detach-keys", k]).into_iter().flatten());
        args.extend([id.as_str(), "sh"]);
        let mut t = Term::spawn(&r, &args, 24, 80);
        t.expect("/ # ");
        let mark = format!("/tmp/shell{}", typed.len());
        t.send(&format!("echo $$ > {mark}; echo $((6*7))up\r"));
        t.expect("42up");
        if keys.is_some() {
            // The default keys are input like any other under other keys.
            t.send("\x10\x11echo still$((1+1))\r");
            t.expect("still2");
        }
        t.send(typed);
        assert_eq!(t.wait(), Some(0), "{keys:?}");
        // A hung-up shell would be gone by now.
        std::thread::sleep(Duration::from_millis(500));
        let alive = format!("kill -0 $(cat {mark}) && ls -l /proc/$(cat {mark})/fd/0");
        let shown = r.ok(&["exec", &id, "sh", "-c", &alive]);
        assert!(shown.contains("/dev/pts/"), "{keys:?}: {shown}");
    }
    let o = r.hull(&["exec", "--detach-keys", "ctrl-a", &id, "true"]);
    assert_eq!(code(&o), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--detach-keys"));
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

/// docker's client rule: `-it` needs a terminal for stdin ("the input device is not a TTY",
/// exit 1, nothing made) in `run`, `exec`, `start -ai` and `attach`; `-t` alone does not; and
/// `run -i` passes a pipe's data and its end through.
#[test]
fn it_needs_a_terminal_and_i_takes_a_pipe() {
    let mut r = root!("tty-notty");
    // Output's stdin is /dev/null: no terminal.
    let refused = |r: &Root, args: &[&str]| {
        let o = r.hull(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(code(&o), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("the input device is not a TTY"),
            "{args:?}: {err}"
        );
    };
    refused(
        &r,
        &["run", "-it", "--rm", "--network", "none", "busybox", "true"],
    );
    refused(
        &r,
        &["run", "-i", "-t", "--network", "none", "busybox", "true"],
    );
    assert_eq!(
        r.ok(&["ps", "-a", "-q"]),
        "",
        "a refused run made a container"
    );
    let o = r.hull(&[
        "run",
        "-t",
        "--rm",
        "--network",
        "none",
        "busybox",
        "echo",
        "hi",
    ]);
    assert_eq!(code(&o), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\r\n");
    let id = r.detach(&["-it", "--network", "none", "busybox", "sh"]);
    refused(&r, &["exec", "-it", &id, "true"]);
    refused(&r, &["attach", &id]);
    r.ok(&["stop", "-t", "0", &id]);
    refused(&r, &["start", "-a", "-i", &id]);
    assert_eq!(r.inspect(&id)["State"]["Status"], "exited");
    r.ok(&["rm", &id]);

    // A MiB through a pipe, then its end: cat ends and the script goes on.
    let mut args: Vec<&str> = "run -i --rm --network none busybox sh -c"
        .split(' ')
        .collect();
    args.push("wc -c; echo eof-seen; exit 4");
    let mut child = r.spawn(&args, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&vec![b'x'; 1 << 20]).unwrap());
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(code(&o), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1048576\neof-seen\n");
    r.assert_clean();
}

#[test]
fn log_rotation_keeps_every_line_across_its_files() {
    let mut r = root!("tty-logrot");
    let id = r.detach(&[
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=100",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1 400); do echo line $i; done",
    ]);
    assert_eq!(r.ok(&["wait", &id]).trim(), "0");
    let config = &r.inspect(&id)["HostConfig"]["LogConfig"];
    assert_eq!(config["Config"]["max-file"], "100", "{config}");
    let log = r.path.join("containers").join(&id).join("ctr.log");
    let rotated = |k: u32| std::path::PathBuf::from(format!("{}.{k}", log.display()));
    let mut files: Vec<std::path::PathBuf> =
        (1..100).rev().map(rotated).filter(|p| p.exists()).collect();
    assert!(files.len() > 5, "rotated files: {files:?}");
    files.push(log.clone());
    let mut lines = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.len() <= 1024,
            "{} has {} bytes",
            f.display(),
            text.len()
        );
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            lines.push(v["log"].as_str().unwrap().to_string());
        }
    }
    let want: Vec<String> = (1..=400).map(|i| format!("line {i}\n")).collect();
    assert_eq!(lines, want);
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn run_it_ends_with_the_shell_status_and_rm_removes_it() {
    let r = root!("tty-exit");
    let name = format!("tty-exit-{}", std::process::id());
    let mut t = shell(&r, &["--rm", "--name", &name], 24, 80);
    t.send("exit 3\r");
    assert_eq!(t.wait(), Some(3));
    assert_eq!(r.ok(&["ps", "-a", "-q"]), "");
    r.assert_clean();
}

#[test]
fn sig_proxy_false_leaves_the_signal_to_the_client() {
    let mut r = root!("tty-sigproxy");
    let name = format!("tty-sig-{}", std::process::id());
    let mut child = r.spawn(
        &[
            "run",
            "--sig-proxy=false",
            "--name",
            &name,
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo up; sleep 1000",
        ],
        Stdio::null(),
    );
    let mut up = [0u8; 3];
    child.stdout.take().unwrap().read_exact(&mut up).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "{status:?}");
    // The container did not get it.
    let id = r.inspect(&name)["Id"].as_str().unwrap().to_string();
    r.ids.push(id);
    assert_eq!(state(&r, &name), "running");
    r.ok(&["rm", "-f", &name]);
    r.assert_clean();
}
