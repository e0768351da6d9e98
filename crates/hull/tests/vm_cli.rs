//! `hull vm run` as a user runs it on this host: the clear one-line errors before any guest
//! runs. Booting a stock kernel is tested in the nested test bed (crates/vmm/tests/nested).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

use hull_vmm::{host_kvm, HostKvm};

fn hull(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hull"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refuses_what_it_cannot_boot() {
    let (rc, err) = hull(&["vm", "run", "--kernel", "/nonexistent/vmlinux"]);
    // hull failing to run the VM is docker's 125, apart from any command's own codes.
    assert_eq!(rc, 125, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    match host_kvm() {
        HostKvm::Missing => assert!(err.contains("/dev/kvm is missing"), "{err}"),
        HostKvm::Pvm => {
            assert!(err.contains("kvm-pvm"), "{err}");
            assert!(err.contains("crates/vmm/tests/nested/run.sh"), "{err}");
        }
        HostKvm::Hardware => assert!(err.contains("cannot open /nonexistent/vmlinux"), "{err}"),
    }
}

#[test]
fn bad_sizes_are_refused() {
    let (rc, err) = hull(&["vm", "run", "--kernel", "k", "--mem", "lots"]);
    // A usage error is docker's 125, as for every hull command.
    assert_eq!(rc, 125, "{err}");
    assert!(err.contains("\"lots\" is not a size"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

/// The jail of `hull vm run`, on this host's KVM with purpose-built guests (tiny_guest's; a
/// stock kernel boots only in the nested test bed).
mod jail {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use hull_testkit::tiny_guest::{com1_out, elf, HALT, I8042_RESET};
    use hull_vmm::{host_kvm, HostKvm};

    const MEM: u64 = 128 << 20;

    struct Bed {
        dir: PathBuf,
    }

    impl Bed {
        fn new(tag: &str) -> Option<Bed> {
            if host_kvm() == HostKvm::Missing || !nix::unistd::geteuid().is_root() {
                hull_testkit::skip("the jail needs root and /dev/kvm");
                return None;
            }
            let dir =
                std::env::temp_dir().join(format!("hull-vm-jail-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut reset = com1_out(b"hi\n");
            reset.extend_from_slice(I8042_RESET);
            std::fs::write(dir.join("reset.elf"), elf(&reset, false)).unwrap();
            let mut hang = com1_out(b"up\n");
            hang.extend_from_slice(HALT);
            std::fs::write(dir.join("hang.elf"), elf(&hang, false)).unwrap();
            Some(Bed { dir })
        }

        fn cmd(&self, kernel: &str, extra: &[&str]) -> Command {
            let mut c = Command::new(env!("CARGO_BIN_EXE_hull"));
            c.arg("--root")
                .arg(self.dir.join("root"))
                .args([
                    "vm",
                    "run",
                    "--allow-pvm",
                    "--mem",
                    "128M",
                    "--vcpus",
                    "2",
                    "--kernel",
                ])
                .arg(self.dir.join(kernel))
                .args(extra);
            c
        }

        /// Starts the halting guest and waits for its "up" on the console.
        fn start_hang(&self) -> Child {
            let mut child = self
                .cmd("hang.elf", &[])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "up\n");
            child
        }

        /// Nothing of a jail is left: runtime state, bundles, cgroups.
        fn assert_clean(&self, cgroups: &[PathBuf]) {
            for sub in ["vm/runtime", "vm/bundles"] {
                let left: Vec<_> = std::fs::read_dir(self.dir.join("root").join(sub))
                    .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
                    .unwrap_or_default();
                assert!(left.is_empty(), "{sub} left: {left:?}");
            }
            for cg in cgroups {
                assert!(!cg.exists(), "cgroup left: {}", cg.display());
            }
        }
    }

    impl Drop for Bed {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The jailed VMM: the child of `hull vm run` (its subreaper) running `--in-jail`.
    fn vmm_of(cli: u32) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for p in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
                let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
                let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|s| s.split_whitespace().nth(1));
                if ppid == Some(&cli.to_string())
                    && String::from_utf8_lossy(&cmdline).contains("--in-jail")
                {
                    return p.file_name().to_string_lossy().parse().unwrap();
                }
            }
            assert!(Instant::now() < deadline, "no jailed VMM under {cli}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The cgroup directories of `pid` in each hierarchy that has `file`, and that file's value.
    fn cgroup_files(pid: u32, file: &str) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        for line in std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap()
            .lines()
        {
            let mut f = line.splitn(3, ':');
            let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let mount = if ctrls.is_empty() {
                PathBuf::from("/sys/fs/cgroup")
            } else {
                Path::new("/sys/fs/cgroup").join(
                    ctrls
                        .split(',')
                        .find(|c| !c.starts_with("name="))
                        .unwrap_or(ctrls),
                )
            };
            let dir = mount.join(path.trim_start_matches('/'));
            if let Ok(v) = std::fs::read_to_string(dir.join(file)) {
                out.push((dir, v.trim().to_string()));
            }
        }
        out
    }

    fn status_field(pid: u32, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
            .unwrap()
    }

    #[test]
    fn jailed_vmm_is_confined_and_nothing_outlives_its_kill() {
        let Some(bed) = Bed::new("confined") else {
            return;
        };
        let mut cli = bed.start_hang();
        let vmm = vmm_of(cli.id());
        for ns in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] {
            let mine = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            let its = std::fs::read_link(format!("/proc/{vmm}/ns/{ns}")).unwrap();
            assert_ne!(mine, its, "the VMM shares the {ns} namespace");
        }
        // Its whole root: the binary, the loader's libraries, the kernel, /dev with only kvm.
        let root = PathBuf::from(format!("/proc/{vmm}/root"));
        let mut top: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert!(
            top.iter()
                .all(|e| ["dev", "hull", "lib", "lib64", "usr", "vm"].contains(&e.as_str())),
            "{top:?}"
        );
        let devices: Vec<_> = std::fs::read_dir(root.join("dev"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| {
                use std::os::unix::fs::FileTypeExt;
                let t = e.file_type().unwrap();
                t.is_char_device() || t.is_block_device()
            })
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        assert_eq!(devices, ["kvm"]);
        assert_eq!(std::fs::read_dir(root.join("vm")).unwrap().count(), 1);
        assert!(
            std::fs::write(root.join("vm/kernel"), b"x").is_err(),
            "the kernel is writable"
        );
        assert_eq!(status_field(vmm, "NoNewPrivs"), "1");
        assert_eq!(status_field(vmm, "CapEff"), "0000000000000000");
        assert_eq!(status_field(vmm, "Seccomp"), "2");

        // cgroup v2's memory.max or v1's memory.limit_in_bytes: guest memory + overhead.
        let want = (MEM + hull_engine::vm_jail::MEMORY_OVERHEAD).to_string();
        let mut limits = cgroup_files(vmm, "memory.max");
        limits.extend(cgroup_files(vmm, "memory.limit_in_bytes"));
        assert!(limits.iter().any(|(_, v)| *v == want), "{limits:?}");
        let pids = cgroup_files(vmm, "pids.max");
        assert!(
            pids.iter()
                .any(|(_, v)| *v == (2 + hull_engine::vm_jail::PIDS_OVERHEAD).to_string()),
            "{pids:?}"
        );
        let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let cgroups: Vec<PathBuf> = cgroup_files(vmm, "cgroup.procs")
            .into_iter()
            .map(|(d, _)| d)
            .filter(|d| !mine.contains(&*d.file_name().unwrap().to_string_lossy()))
            .collect();
        assert!(!cgroups.is_empty());

        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(vmm).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = cli.wait().unwrap();
        assert_eq!(status.code(), Some(137), "{status:?}");
        bed.assert_clean(&cgroups);
    }

    #[test]
    fn killed_cli_takes_its_vmm_along_and_the_next_run_sweeps() {
        let Some(bed) = Bed::new("cli-killed") else {
            return;
        };
        let mut cli = bed.start_hang();
        let vmm = vmm_of(cli.id());
        let cgroups: Vec<PathBuf> = cgroup_files(vmm, "cgroup.procs")
            .into_iter()
            .map(|(d, _)| d)
            .filter(|d| d.to_string_lossy().contains("hull-vm-"))
            .collect();
        assert!(!cgroups.is_empty());
        cli.kill().unwrap();
        cli.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{vmm}")).exists() {
            assert!(
                Instant::now() < deadline,
                "the VMM outlived its hull vm run"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = bed.cmd("reset.elf", &[]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bed.assert_clean(&cgroups);
    }

    #[test]
    fn jailed_run_to_the_end_leaves_nothing() {
        let Some(bed) = Bed::new("end") else { return };
        let out = bed.cmd("reset.elf", &["--stats"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
        assert!(err.contains("stopped by reset"), "{err}");
        bed.assert_clean(&[]);
    }

    #[test]
    fn no_jail_runs_in_process() {
        let Some(bed) = Bed::new("nojail") else {
            return;
        };
        let out = bed.cmd("reset.elf", &["--no-jail"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
        assert!(!bed.dir.join("root/vm").exists(), "--no-jail made a jail");
    }
}

#[test]
fn command_flags_are_checked_before_any_vm() {
    let cases: [(&[&str], &str); 6] = [
        (&["--", "true"], "a command needs --initrd"),
        (&["-i"], "are for a command"),
        (
            &["--initrd", "i", "--disk", "r.img:rx", "--", "true"],
            "unknown option \"rx\"",
        ),
        (
            &["--initrd", "i", "-u", "", "--", "true"],
            "give USER[:GROUP]",
        ),
        (&["--initrd", "i", "--name", "a/b", "--", "true"], "--name"),
        (
            &["--initrd", "i", "-e", "NOVALUE", "--", "true"],
            "NAME=value",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["vm", "run", "--kernel", "k"];
        all.extend_from_slice(args);
        let (rc, err) = hull(&all);
        assert_eq!(rc, 125, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn exec_into_a_vm_that_is_not_running_is_one_line() {
    let dir = std::env::temp_dir().join(format!("hull-vm-exec-none-{}", std::process::id()));
    let root = dir.to_string_lossy().into_owned();
    let (rc, err) = hull(&["--root", &root, "vm", "exec", "ghost", "true"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rc, 125, "{err}");
    assert!(err.contains("no running microVM \"ghost\""), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}
