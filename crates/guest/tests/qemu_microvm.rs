//! hull-guest under qemu `-M microvm` (TCG, on this host directly: no KVM needed), with qemu's
//! virtio-mmio disk and virtio-serial port standing in for hull-vmm's, so the guest side is
//! tested apart from the VMM: the test speaks hull-vmproto on the port's unix socket. One boot
//! covers the main process's stdout and stderr apart, its stdin, exec of more processes, a
//! signal, a command that does not exist, a terminal and its size, users by name, capability
//! sets, no_new_privs and seccomp, and the exit code, then the VM's power-off.
//! Needs the initramfs of scripts/build-guest-initramfs.sh (scripts/test.sh builds it first)
//! and Debian's cloud kernel in the qemu cache (scripts/qemu-guest-lib.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hull_testkit::skip;
use hull_vmproto::{
    Capabilities, Decoder, ExitStatus, Message, ProcessSpec, Rlimit, RootSpec, RunSpec,
    SeccompFilter, MAX_CHUNK, PORT_NAME, STDIN_WINDOW,
};

/// TCG on a loaded two-core machine: a boot takes seconds, sometimes tens.
const TIMEOUT: Duration = Duration::from_secs(120);

fn spec(args: &[&str]) -> ProcessSpec {
    ProcessSpec {
        args: args.iter().map(|s| (*s).to_string()).collect(),
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        ..ProcessSpec::default()
    }
}

/// The test's end of the agent port, recording every process's output.
struct Host {
    stream: UnixStream,
    decoder: Decoder,
    out: HashMap<u32, Vec<u8>>,
    err: HashMap<u32, Vec<u8>>,
    errors: Vec<String>,
    /// Stdin bytes the guest acknowledged, per process.
    acked: HashMap<u32, usize>,
}

impl Host {
    fn send(&mut self, m: &Message) {
        self.stream.write_all(&m.encode()).unwrap();
    }

    /// Reads until a message `want` accepts, recording output on the way.
    fn until(&mut self, what: &str, want: impl Fn(&Message) -> bool) -> Message {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            while let Some(m) = self.decoder.next().unwrap() {
                match &m {
                    Message::Stdout { id, data } => self.out.entry(*id).or_default().extend(data),
                    Message::Stderr { id, data } => self.err.entry(*id).or_default().extend(data),
                    Message::Error { message, .. } => self.errors.push(message.clone()),
                    Message::StdinConsumed { id, bytes } => {
                        *self.acked.entry(*id).or_default() += *bytes as usize;
                    }
                    _ => {}
                }
                if want(&m) {
                    return m;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {what} from the guest in {TIMEOUT:?}"
            );
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf).unwrap();
            assert!(n > 0, "the guest closed the port while waiting for {what}");
            self.decoder.push(&buf[..n]);
        }
    }

    fn exit_of(&mut self, id: u32) -> ExitStatus {
        match self.until(
            "an exit",
            |m| matches!(m, Message::Exit { id: i, .. } if *i == id),
        ) {
            Message::Exit { status, .. } => status,
            _ => unreachable!(),
        }
    }

    fn out(&self, id: u32) -> String {
        String::from_utf8_lossy(self.out.get(&id).map_or(&[][..], |v| v)).into_owned()
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
    web:x:1000:1000::/home/web:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nweb:x:1000:\nwheel:x:10:web\n";

fn make_disk(dir: &Path) -> Option<PathBuf> {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    for d in ["proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).ok()?;
    for a in [
        "sh",
        "echo",
        "cat",
        "sleep",
        "hostname",
        "id",
        "mkdir",
        "sha256sum",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    // The root's own user database, where `user` names are looked up.
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(root.join("etc/group"), GROUP).unwrap();
    // erofs, lz4-compressed, as image layers will be (the nested test bed's disk is ext4).
    let img = dir.join("root.img");
    let ok = Command::new("mkfs.erofs")
        .arg("-zlz4")
        .arg(&img)
        .arg(&root)
        .stdout(Stdio::null())
        .status()
        .ok()?
        .success();
    ok.then_some(img)
}

fn boot(kernel: &Path, initrd: &Path, disk: &Path, sock: &Path, log: &Path) -> Child {
    let drive = format!(
        "id=d0,file={},format=raw,if=none,readonly=on",
        disk.display()
    );
    let chardev = format!("socket,id=agent,path={},server=on,wait=on", sock.display());
    let port = format!("virtserialport,chardev=agent,name={PORT_NAME}");
    let serial = format!("file:{}", log.display());
    // qemu waits for the test to connect to the port's socket before it starts the guest.
    Command::new("flock")
        .arg("/tmp/hull-qemu.lock")
        .args([
            "qemu-system-x86_64",
            "-M",
            "microvm",
            "-accel",
            "tcg",
            "-cpu",
            "max",
        ])
        .args([
            "-m",
            "256",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-nodefaults",
        ])
        .args(["-serial", &serial, "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 reboot=t panic=-1 quiet tsc_early_khz=2000000",
        ])
        .args(["-drive", &drive])
        .args(["-device", "virtio-blk-device,drive=d0,serial=hull-disk0"])
        .args(["-device", "virtio-serial-device", "-chardev", &chardev])
        .args(["-device", &port])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// qemu starts once the shared qemu lock is free: other qemu jobs may hold it for minutes.
const LOCK_WAIT: Duration = Duration::from_secs(900);

fn connect(sock: &Path, qemu: &mut Child) -> UnixStream {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        if let Ok(s) = UnixStream::connect(sock) {
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            return s;
        }
        assert!(
            qemu.try_wait().unwrap().is_none(),
            "qemu exited before its socket was up"
        );
        assert!(
            Instant::now() < deadline,
            "qemu's agent socket did not appear"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn guest_runs_processes_over_the_agent_port() {
    let initrd = hull_testkit::guest::initramfs();
    if !initrd.exists() {
        skip!(
            "no guest initramfs at {} (scripts/build-guest-initramfs.sh)",
            initrd.display()
        );
    }
    let Some(kernel) = hull_testkit::guest::kernel() else {
        skip!(
            "no Debian cloud kernel in the qemu cache (crates/vmm/tests/nested/run.sh fetches it)"
        );
    };
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        skip!("no qemu-system-x86_64");
    }
    let dir = std::env::temp_dir().join(format!("hull-guest-qemu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let Some(disk) = make_disk(&dir) else {
        skip!("cannot make an erofs image with busybox (mkfs.erofs of erofs-utils, /bin/busybox)");
    };
    let (sock, log) = (dir.join("agent.sock"), dir.join("console.log"));
    let mut qemu = boot(&kernel, &initrd, &disk, &sock, &log);
    let stream = connect(&sock, &mut qemu);
    let mut host = Host {
        stream,
        decoder: Decoder::default(),
        out: HashMap::new(),
        err: HashMap::new(),
        errors: vec![],
        acked: HashMap::new(),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        exercise(&mut host);
    }));
    let stopped = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        qemu.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = qemu.kill();
        let _ = qemu.wait();
    }
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    if let Err(e) = result {
        eprintln!("guest console:\n{console}");
        std::panic::resume_unwind(e);
    }
    assert!(
        stopped,
        "the guest did not power off after the main process; console:\n{console}"
    );
}

fn exercise(host: &mut Host) {
    host.send(&Message::Run(RunSpec {
        hostname: "hull-test".into(),
        root: Some(RootSpec {
            serial: "hull-disk0".into(),
            overlay: true,
            read_only: true,
            lower_serials: Vec::new(),
        }),
        process: spec(&[
            "sh",
            "-c",
            "echo out; echo err >&2; hostname; echo rw > /f; read x; echo got-$x; cat /f; \
             read y || exit 3",
        ]),
        ..RunSpec::default()
    }));
    // Stdin right behind Run reaches the agent in the same read as Run: it must not sit in
    // the agent's buffer unseen (the main process reads it at once; its stdin ends last).
    host.send(&Message::Stdin {
        id: 0,
        data: b"hi\n".to_vec(),
    });
    let start = Instant::now();
    host.until("Ready", |m| *m == Message::Ready);
    eprintln!(
        "guest agent ready {:.2} s after qemu connected",
        start.elapsed().as_secs_f64()
    );
    host.until("Started", |m| *m == Message::Started { id: 0 });

    host.send(&Message::Exec {
        id: 1,
        spec: spec(&["sh", "-c", "echo exec-ok; echo exec-err >&2; exit 5"]),
    });
    assert_eq!(host.exit_of(1), ExitStatus::Code(5));
    assert_eq!(host.out(1), "exec-ok\n");
    assert_eq!(
        host.err.get(&1).map(Vec::as_slice),
        Some(&b"exec-err\n"[..])
    );

    host.send(&Message::Exec {
        id: 2,
        spec: spec(&["sleep", "60"]),
    });
    host.until("Started 2", |m| *m == Message::Started { id: 2 });
    host.send(&Message::Signal { id: 2, signal: 9 });
    let status = host.exit_of(2);
    assert_eq!((status, status.code()), (ExitStatus::Signal(9), 137));

    // The OCI settings beyond the user: rlimits and no_new_privs; and an unknown rlimit is an
    // error, not ignored.
    let mut limited = spec(&[
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; busybox grep NoNewPrivs /proc/self/status",
    ]);
    limited.rlimits = vec![Rlimit {
        kind: "RLIMIT_NOFILE".into(),
        soft: 77,
        hard: 88,
    }];
    limited.no_new_privileges = true;
    host.send(&Message::Exec {
        id: 5,
        spec: limited.clone(),
    });
    assert_eq!(host.exit_of(5), ExitStatus::Code(0));
    assert_eq!(host.out(5), "77\n88\nNoNewPrivs:\t1\n");
    limited.rlimits[0].kind = "RLIMIT_BOGUS".into();
    host.send(&Message::Exec {
        id: 6,
        spec: limited,
    });
    assert_eq!(host.exit_of(6), ExitStatus::Code(126));
    assert!(
        host.errors.iter().any(|e| e.contains("RLIMIT_BOGUS")),
        "{:?}",
        host.errors
    );

    users_capabilities_and_seccomp(host);
    stdin_flow_control(host);

    host.send(&Message::Exec {
        id: 3,
        spec: spec(&["/no/such/command"]),
    });
    assert_eq!(host.exit_of(3), ExitStatus::Code(127));
    assert!(
        host.errors.iter().any(|e| e.contains("/no/such/command")),
        "{:?}",
        host.errors
    );

    // A terminal: the size the host sets is the one the process reads; output in the pty's
    // line discipline (\r\n), stdout and stderr one stream.
    let mut tty = spec(&["sh", "-c", "read x; busybox stty size; echo e >&2"]);
    tty.terminal = true;
    host.send(&Message::Exec { id: 4, spec: tty });
    host.until("Started 4", |m| *m == Message::Started { id: 4 });
    host.send(&Message::Resize {
        id: 4,
        rows: 40,
        cols: 100,
    });
    host.send(&Message::Stdin {
        id: 4,
        data: b"go\n".to_vec(),
    });
    assert_eq!(host.exit_of(4), ExitStatus::Code(0));
    assert_eq!(
        host.out(4),
        "go\r\n40 100\r\ne\r\n",
        "echo, then the size, then stderr"
    );
    assert!(!host.err.contains_key(&4));

    host.send(&Message::StdinClose { id: 0 });
    assert_eq!(host.exit_of(0), ExitStatus::Code(3));
    assert_eq!(host.out(0), "out\nhull-test\ngot-hi\nrw\n");
    assert_eq!(host.err.get(&0).map(Vec::as_slice), Some(&b"err\n"[..]));
}

/// Runs `spec` as process `id`; its exit status and stdout.
fn run_one(host: &mut Host, id: u32, spec: ProcessSpec) -> (ExitStatus, String) {
    host.send(&Message::Exec { id, spec });
    let status = host.exit_of(id);
    (status, host.out(id))
}

/// The process settings beyond ids: `user` names from the root's files, the OCI capability
/// sets, and a seccomp filter compiled by hull-runtime, with and without no_new_privs.
fn users_capabilities_and_seccomp(host: &mut Host) {
    let mut web = spec(&["sh", "-c", "echo $(id -u) $(id -g) $(id -G) $HOME; id -un"]);
    web.user = Some("web".into());
    web.additional_gids = vec![29];
    let (status, out) = run_one(host, 10, web);
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(out, "1000 1000 1000 10 29 /home/web\nweb\n");

    let mut nobody = spec(&["sh", "-c", "echo $(id -u):$(id -g)"]);
    nobody.user = Some("nobody:wheel".into());
    assert_eq!(
        run_one(host, 11, nobody.clone()),
        (ExitStatus::Code(0), "65534:10\n".into())
    );
    nobody.user = Some("ghost".into());
    assert_eq!(run_one(host, 12, nobody).0, ExitStatus::Code(126));
    assert!(
        host.errors
            .iter()
            .any(|e| e.contains("unable to find user ghost")),
        "{:?}",
        host.errors
    );

    let caps = |names: &[&str]| names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>();
    let status_of = "busybox grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' \
                     /proc/self/status | busybox tr -d '\\t'";
    // Root with a narrow bounding set: execve gives root what the bounding set has.
    let mut root = spec(&["sh", "-c", status_of]);
    let two = caps(&["CAP_CHOWN", "CAP_KILL"]);
    root.capabilities = Some(Capabilities {
        bounding: two.clone(),
        effective: two.clone(),
        permitted: two,
        ..Capabilities::default()
    });
    let want = "CapInh:0000000000000000\nCapPrm:0000000000000021\nCapEff:0000000000000021\n\
                CapBnd:0000000000000021\nCapAmb:0000000000000000\nNoNewPrivs:0\nSeccomp:0\n";
    assert_eq!(run_one(host, 13, root), (ExitStatus::Code(0), want.into()));
    // A user that is not root keeps a capability only through the ambient set.
    let bind = caps(&["CAP_NET_BIND_SERVICE"]);
    let mut user = spec(&["sh", "-c", status_of]);
    user.user = Some("nobody".into());
    user.no_new_privileges = true;
    user.capabilities = Some(Capabilities {
        bounding: bind.clone(),
        effective: bind.clone(),
        permitted: bind.clone(),
        inheritable: bind.clone(),
        ambient: bind,
    });
    let want = "CapInh:0000000000000400\nCapPrm:0000000000000400\nCapEff:0000000000000400\n\
                CapBnd:0000000000000400\nCapAmb:0000000000000400\nNoNewPrivs:1\nSeccomp:0\n";
    assert_eq!(run_one(host, 14, user), (ExitStatus::Code(0), want.into()));

    // mkdir refused by the filter, loaded before the user changes (root, no no_new_privs)
    // and after it (nobody, no_new_privs).
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let state = tempdir_for_runtime();
    let (flags, program) = hull_runtime::Runtime::new(&state)
        .compile_seccomp(&profile)
        .unwrap();
    let _ = std::fs::remove_dir_all(&state);
    let program: Vec<_> = program.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect();
    let filter = SeccompFilter::new(flags, &program);
    let script = "mkdir /tmp/d 2>/dev/null; echo mkdir=$?; \
                  busybox grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | busybox tr -d '\\t'";
    for (id, user, nnp) in [(15, None, false), (16, Some("nobody"), true)] {
        let mut p = spec(&["sh", "-c", script]);
        p.user = user.map(String::from);
        p.no_new_privileges = nnp;
        p.seccomp = Some(filter.clone());
        let (status, out) = run_one(host, id, p);
        assert_eq!(status, ExitStatus::Code(0));
        assert_eq!(
            out,
            format!("mkdir=1\nNoNewPrivs:{}\nSeccomp:2\n", u8::from(nnp)),
            "{user:?}"
        );
    }
}

fn tempdir_for_runtime() -> PathBuf {
    std::env::temp_dir().join(format!("hull-guest-seccomp-{}", std::process::id()))
}

/// Stdin larger than the window arrives whole, the host sending only on the guest's credit,
/// and every byte is acknowledged.
fn stdin_flow_control(host: &mut Host) {
    let mut data = vec![0u8; 4 << 20];
    let mut x: u32 = 1;
    for b in &mut data {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = x.to_le_bytes()[2];
    }
    let mut sum = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sum.stdin.take().unwrap().write_all(&data).unwrap();
    let want = String::from_utf8(sum.wait_with_output().unwrap().stdout).unwrap();
    let id = 20;
    host.send(&Message::Exec {
        id,
        spec: spec(&["sha256sum"]),
    });
    let mut sent = 0;
    for chunk in data.chunks(MAX_CHUNK) {
        while sent + chunk.len() - host.acked.get(&id).copied().unwrap_or(0) > STDIN_WINDOW {
            host.until("a stdin acknowledgement", |m| {
                matches!(m, Message::StdinConsumed { .. })
            });
        }
        host.send(&Message::Stdin {
            id,
            data: chunk.to_vec(),
        });
        sent += chunk.len();
    }
    host.send(&Message::StdinClose { id });
    assert_eq!(host.exit_of(id), ExitStatus::Code(0));
    assert_eq!(host.out(id), want);
    assert_eq!(host.acked.get(&id).copied(), Some(data.len()));
}
