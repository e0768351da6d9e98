//! Errors callers match on read as runc's, line for line: containerd's go-runc and shims, conmon
//! and CI harnesses look for "container does not exist", "container not running", "cannot delete
//! container ... that is not stopped", in logrus's text or json lines, and for runc's exit codes.
//! The expected lines are runc 1.1.5's; where Debian's runc is installed, the same sequence runs
//! under it too and must give the same lines (one deliberate difference: runc deletes a created
//! container without --force, which the runtime spec forbids).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{can_run, runtime_bin, TestContainer};
use serde_json::Value;

const RUNC: &str = "/usr/sbin/runc";

/// One runtime binary with its own state root.
struct Runtime {
    bin: PathBuf,
    root: PathBuf,
    id: String,
    bundle: PathBuf,
    dir: PathBuf,
}

impl Runtime {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// (exit code, stderr) of `args`, `ID` in them standing for the container's id.
    fn run(&self, args: &[&str]) -> (i32, String) {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "ID" { self.id.as_str() } else { a })
            .collect();
        let out = self.command(&args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// (exit code, the message of the one error line on stderr, with the id as `ID`).
    fn error(&self, args: &[&str]) -> (i32, String) {
        let (code, stderr) = self.run(args);
        let msg = if stderr.is_empty() {
            String::new()
        } else {
            text_line_message(&stderr, "error")
        };
        (code, msg.replace(&self.id, "ID"))
    }

    fn ok(&self, args: &[&str]) {
        let (code, stderr) = self.run(args);
        assert_eq!(code, 0, "{} {args:?}: {stderr}", self.bin.display());
    }

    /// `create`, its stdio on files (the container's process keeps them).
    fn create(&self) {
        let out = std::fs::File::create(self.dir.join(format!("{}.out", self.id))).unwrap();
        let status = self
            .command(&[
                "create",
                "--bundle",
                self.bundle.to_str().unwrap(),
                &self.id,
            ])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap();
        assert!(status.success(), "{} create", self.bin.display());
    }

    fn wait_stopped(&self) {
        for _ in 0..500 {
            let out = self.command(&["state", &self.id]).output().unwrap();
            if let Ok(state) = serde_json::from_slice::<Value>(&out.stdout) {
                if state["status"] == "stopped" {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{} never stopped", self.id);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self
            .command(&["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

/// The `msg` of a logrus text line `time="…" level=LEVEL msg="…"`, checking the rest of it.
fn text_line_message(stderr: &str, level: &str) -> String {
    let line = stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "not one line: {stderr:?}");
    let rest = line.strip_prefix("time=\"").expect(line);
    let (time, rest) = rest.split_once('"').expect(line);
    check_time(time);
    let msg = rest
        .strip_prefix(&format!(" level={level} msg="))
        .expect(line);
    // Every message here has spaces: logrus quotes it.
    let msg = msg.strip_prefix('"').and_then(|m| m.strip_suffix('"'));
    msg.expect(line).to_string()
}

/// logrus's default timestamp: RFC 3339 to the second, in UTC here.
fn check_time(time: &str) {
    assert_eq!(time.len(), "2024-01-02T03:04:05Z".len(), "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
}

/// What both runtimes must say, in order, for `sequence`.
const EXPECTED: &[(i32, &str)] = &[
    (1, "container does not exist"),
    (1, "container does not exist"),
    (1, "container does not exist"),
    (1, "container does not exist"),
    (1, "container does not exist"),
    (255, "exec failed: container does not exist"),
    (1, "cannot start an already running container"),
    (1, "cannot delete container ID that is not stopped: running"),
    (1, "container not paused"),
    (1, "container not running"),
    (1, "cannot start a container in the paused state"),
    (
        255,
        "exec failed: cannot exec in a paused container (use --ignore-paused to override)",
    ),
    (1, "container not running"),
    (0, ""),
    (1, "cannot start a container that has stopped"),
    (255, "exec failed: cannot exec in a stopped container"),
    (1, "container not running"),
    (1, "container not paused"),
    (1, "container with id ID is not running"),
];

/// Every refusal callers meet, from an unknown id to each wrong state.
fn sequence(rt: &Runtime) -> Vec<(i32, String)> {
    let mut said = Vec::new();
    for args in [
        &["state", "no-such-container"][..],
        &["kill", "no-such-container", "KILL"],
        &["delete", "no-such-container"],
        &["start", "no-such-container"],
        &["pause", "no-such-container"],
        &["exec", "no-such-container", "true"],
    ] {
        said.push(rt.error(args));
    }
    rt.create();
    rt.ok(&["start", &rt.id]);
    said.push(rt.error(&["start", "ID"]));
    said.push(rt.error(&["delete", "ID"]));
    said.push(rt.error(&["resume", "ID"]));
    rt.ok(&["pause", &rt.id]);
    said.push(rt.error(&["pause", "ID"]));
    said.push(rt.error(&["start", "ID"]));
    said.push(rt.error(&["exec", "ID", "true"]));
    rt.ok(&["resume", &rt.id]);
    rt.ok(&["kill", &rt.id, "KILL"]);
    rt.wait_stopped();
    said.push(rt.error(&["kill", "ID", "KILL"]));
    said.push(rt.error(&["kill", "--all", "ID", "KILL"]));
    said.push(rt.error(&["start", "ID"]));
    said.push(rt.error(&["exec", "ID", "true"]));
    said.push(rt.error(&["pause", "ID"]));
    said.push(rt.error(&["resume", "ID"]));
    said.push(rt.error(&["events", "--stats", "ID"]));
    rt.ok(&["delete", &rt.id]);
    said
}

fn runtime_for(c: &TestContainer, bin: &Path, name: &str) -> Runtime {
    Runtime {
        bin: bin.to_path_buf(),
        root: c.dir.join(format!("{name}-root")),
        id: format!("{}-{name}", c.id),
        bundle: c.bundle.clone(),
        dir: c.dir.clone(),
    }
}

#[test]
fn refusals_read_as_runcs_with_runcs_exit_codes() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("runcwords");
    c.set_args(&["sleep", "100"]);
    c.write_config();
    let expected: Vec<(i32, String)> = EXPECTED
        .iter()
        .map(|(code, msg)| (*code, (*msg).to_string()))
        .collect();
    let hull = runtime_for(&c, Path::new(runtime_bin()), "hull");
    assert_eq!(sequence(&hull), expected);
    // The expectations are runc's own, where it is here to say so.
    if Path::new(RUNC).exists() {
        let runc = runtime_for(&c, Path::new(RUNC), "runc");
        assert_eq!(sequence(&runc), expected, "runc says otherwise");
    }
}

#[test]
fn log_lines_in_text_and_json_go_where_runcs_do() {
    if !can_run() {
        return;
    }
    let c = TestContainer::new("runclog");
    let mut bins = vec![PathBuf::from(runtime_bin())];
    if Path::new(RUNC).exists() {
        bins.push(PathBuf::from(RUNC));
    }
    for bin in bins {
        let rt = runtime_for(&c, &bin, "log");
        let who = bin.display();
        // No --log: the line goes to stderr, in either format.
        let (code, stderr) = rt.run(&["--log-format", "json", "state", "no-such-container"]);
        assert_eq!(code, 1, "{who}");
        let line: Value = serde_json::from_str(stderr.trim_end()).expect(&stderr);
        assert_eq!(line["level"], "error", "{who}: {stderr}");
        assert_eq!(line["msg"], "container does not exist", "{who}");
        check_time(line["time"].as_str().unwrap());
        assert_eq!(line.as_object().unwrap().len(), 3, "{who}: {stderr}");
        // With --log: the line goes to the file, the bare message to stderr.
        for (format, log) in [("text", "log.txt"), ("json", "log.json")] {
            let log = c.dir.join(format!(
                "{}-{log}",
                bin.file_name().unwrap().to_str().unwrap()
            ));
            let (code, stderr) = rt.run(&[
                "--log",
                log.to_str().unwrap(),
                "--log-format",
                format,
                "kill",
                "no-such-container",
            ]);
            assert_eq!(code, 1, "{who}");
            assert_eq!(stderr, "container does not exist\n", "{who} {format}");
            let text = std::fs::read_to_string(&log).unwrap();
            let last = text.lines().last().unwrap();
            if format == "text" {
                assert_eq!(
                    text_line_message(last, "error"),
                    "container does not exist",
                    "{who}"
                );
            } else {
                let line: Value = serde_json::from_str(last).unwrap();
                assert_eq!(line["level"], "error", "{who}");
                assert_eq!(line["msg"], "container does not exist", "{who}");
            }
        }
    }
}
