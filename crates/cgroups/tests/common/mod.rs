//! Shared helpers for the cgroup integration tests: unique names, a cgroup guard that removes what
//! it created even when a test panics, and busybox children that wait to be placed in the cgroup.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use hull_cgroups::Cgroup;
use oci_spec::runtime::LinuxResources;

/// Every cgroup the tests make is named hull-cgtest-<pid>-<test>, so the leak check can find them.
pub const PREFIX: &str = "hull-cgtest-";

pub fn id(test: &str) -> String {
    format!("cgtest-{}-{test}", std::process::id())
}

/// True (after printing why) when the test cannot run here.
pub fn skip_unless_root() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        hull_testkit::skip("cgroup tests need root");
        return true;
    }
    false
}

pub fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).expect("test resources parse")
}

/// Owns a created cgroup; removes it on drop and (in `finish`) checks nothing is left.
pub struct CgGuard(pub Cgroup);

impl CgGuard {
    pub fn create(test: &str, r: Option<&LinuxResources>) -> CgGuard {
        let mut cg = Cgroup::new(None, &id(test)).expect("Cgroup::new");
        cg.create(r).expect("create");
        CgGuard(cg)
    }

    /// Kills what is left in the cgroup (children of killed shells), removes the cgroup and asserts
    /// every per-hierarchy dir is gone.
    pub fn finish(self) {
        kill_all(&self.0);
        self.0.remove().expect("remove");
        assert_gone(&self.0);
    }
}

/// SIGKILLs every process in the cgroup (all were started by this test) and waits until empty.
pub fn kill_all(cg: &Cgroup) {
    for _ in 0..200 {
        let pids = cg.pids().unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

impl Drop for CgGuard {
    fn drop(&mut self) {
        kill_all(&self.0);
        let _ = self.0.remove();
    }
}

pub fn assert_gone(cg: &Cgroup) {
    for h in cg.hierarchies() {
        assert!(!h.path.exists(), "{} left behind", h.path.display());
    }
}

/// A busybox shell that blocks on `read` until `go()`, so it can be placed in a cgroup first.
pub struct Sh {
    pub child: Child,
    out: BufReader<ChildStdout>,
}

impl Sh {
    pub fn spawn(script: &str) -> Sh {
        let mut child = Command::new("/bin/busybox")
            .args(["sh", "-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn /bin/busybox (apt-get install busybox-static)");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Sh { child, out }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    pub fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("start child");
        stdin.flush().expect("flush");
    }

    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.out.read_line(&mut s).expect("read child output");
        s.trim_end().to_string()
    }

    pub fn rest(&mut self) -> String {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut s).expect("read child output");
        s
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait child")
    }
}

impl Drop for Sh {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn busybox_present() -> bool {
    if Path::new("/bin/busybox").exists() {
        return true;
    }
    hull_testkit::skip("/bin/busybox missing (apt-get install busybox-static)");
    false
}
