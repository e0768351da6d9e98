//! The library facade as a caller uses it. A test process is multi-threaded, so the facade must
//! refuse to clone from it (create, run, exec); the rest (state, list, kill, delete) works from
//! here on a container the CLI created, and a child forked from the test (single-threaded, as
//! the engine's monitor will be) runs a container to exit with the stdio it hands in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;

use common::{can_run, TestContainer};
use hull_runtime::{CreateOptions, Error, ExecOptions, Overlap, Runtime, Status, Stdio};
use nix::sys::signal::Signal;

/// A second thread, parked until the value is dropped: the test process is multi-threaded
/// however the harness runs it.
struct ExtraThread(Option<(mpsc::Sender<()>, JoinHandle<()>)>);

impl ExtraThread {
    fn start() -> ExtraThread {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        ExtraThread(Some((tx, handle)))
    }
}

impl Drop for ExtraThread {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.0.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

fn assert_multi_threaded(err: Error, op: &str) {
    assert!(matches!(err, Error::MultiThreaded { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot {op} from a multi-threaded process (")),
        "{text}"
    );
    assert!(text.contains(" threads)"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn create_and_run_refuse_a_multi_threaded_caller() {
    if !can_run() {
        return;
    }
    let c = TestContainer::new("facade-mt");
    c.write_config();
    let _thread = ExtraThread::start();
    let runtime = Runtime::new(&c.root);
    let err = runtime
        .create(CreateOptions::new(&c.id, &c.bundle))
        .unwrap_err();
    assert_multi_threaded(err, "create a container");
    let err = runtime
        .run(CreateOptions::new(&c.id, &c.bundle), false, &mut |_| {})
        .unwrap_err();
    assert_multi_threaded(err, "create a container");
    // Refused before anything existed: no state, no cgroup.
    assert!(!c.root.join(&c.id).exists());
    assert!(common::leaked_cgroups(&c.id).is_empty());
}

#[test]
fn queries_kill_and_delete_work_but_exec_is_refused() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("facade-ops");
    c.set_args(&["sleep", "100"]);
    c.create();
    let _thread = ExtraThread::start();
    let runtime = Runtime::new(&c.root);
    let ids: Vec<String> = runtime
        .list()
        .unwrap()
        .iter()
        .map(|c| c.id().to_string())
        .collect();
    assert_eq!(ids, [c.id.clone()]);
    let container = runtime.open(&c.id).unwrap();
    assert_eq!(container.status(), Status::Created);
    assert_eq!(container.state().id, c.id);
    let process = container.config().unwrap().process().clone().unwrap();
    let err = container.exec(ExecOptions::new(process)).unwrap_err();
    assert_multi_threaded(err, "exec in a container");
    container.start().unwrap();
    assert_eq!(container.status(), Status::Running);
    container.kill(Signal::SIGKILL, false).unwrap();
    // Not our child: wait learns that it exited, not how.
    assert_eq!(container.wait().unwrap(), None);
    runtime.delete(&c.id, false).unwrap();
    assert!(runtime.list().unwrap().is_empty());
    // runc: deleting what does not exist is fine with --force, an error without.
    runtime.delete(&c.id, true).unwrap();
    let err = runtime.delete(&c.id, false).unwrap_err();
    assert_eq!(err.to_string(), "container does not exist");
}

/// In a child forked from the test (single-threaded, so the facade may clone): runs the
/// container to exit with its stdout and stderr on `log`, and exits with its status.
fn run_in_single_threaded_child(root: PathBuf, id: String, bundle: PathBuf, log: PathBuf) -> i32 {
    in_single_threaded_child(move || run_with_log(&root, &id, &bundle, &log))
}

/// `body` in a child forked from the test, which exits with the status it returns (99 and its
/// error on stderr when it fails; the test fails then).
fn in_single_threaded_child(
    mut body: impl FnMut() -> Result<i32, Error> + Send + Sync + 'static,
) -> i32 {
    let mut cmd = Command::new("/bin/busybox");
    // SAFETY: the closure runs in the child forked from the test and never returns: it calls
    // the facade (syscalls, glibc's fork-safe malloc, no std stdio or environment) and leaves
    // with _exit; close_range takes integers only.
    unsafe {
        cmd.pre_exec(move || {
            // Without std's exec-status pipe, spawn returns while the child runs.
            libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0);
            let code = match body() {
                Ok(code) => code,
                Err(err) => {
                    let msg = format!("run: {err}\n");
                    libc::write(2, msg.as_ptr().cast(), msg.len());
                    99
                }
            };
            libc::_exit(code)
        });
    }
    let out = cmd.output().expect("fork");
    assert!(
        out.stdout.is_empty(),
        "the container wrote to the caller's stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.signal().is_none(), "{:?} {stderr}", out.status);
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 99, "{stderr}");
    code
}

fn run_with_log(root: &Path, id: &str, bundle: &Path, log: &Path) -> Result<i32, Error> {
    let mut opts = CreateOptions::new(id, bundle);
    opts.stdio = stdio_to(log);
    Runtime::new(root).run(opts, false, &mut |_| {})
}

/// /dev/null in, stdout and stderr appended to `log`.
fn stdio_to(log: &Path) -> Stdio {
    let file = |path: &Path, write: bool| -> OwnedFd {
        let file = if write {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
        } else {
            std::fs::File::open(path)
        };
        file.expect("open").into()
    };
    Stdio::Fds {
        stdin: file(Path::new("/dev/null"), false),
        stdout: file(log, true),
        stderr: file(log, true),
    }
}

#[test]
fn a_single_threaded_caller_runs_a_container_with_the_stdio_it_hands_in() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("facade-run");
    c.script("echo out; echo err >&2; read line; echo \"stdin:$line.\"; exit 7");
    c.write_config();
    let log = c.dir.join("container.log");
    let code =
        run_in_single_threaded_child(c.root.clone(), c.id.clone(), c.bundle.clone(), log.clone());
    assert_eq!(code, 7);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "out\nerr\nstdin:.\n");
    // Run deletes the container once it has exited.
    assert!(!c.root.join(&c.id).exists());
}

/// Hook failures the runtime spec makes warnings reach the sink a caller gives the runtime,
/// and do not fail start or delete.
#[test]
fn hook_warnings_reach_the_runtimes_sink() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("facade-warn");
    let failing = |stage: &str| serde_json::json!([{"path": "/bin/busybox", "args": ["sh", "-c", format!("echo {stage} says no >&2; exit 1")]}]);
    c.config["hooks"] = serde_json::json!({
        "poststart": failing("poststart"),
        "poststop": failing("poststop"),
    });
    c.set_args(&["sleep", "100"]);
    c.create();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = heard.clone();
    let runtime = Runtime::new(&c.root).with_warnings(move |w| sink.lock().unwrap().push(w.into()));
    runtime.open(&c.id).unwrap().start().unwrap();
    let container = runtime.open(&c.id).unwrap();
    container.kill(Signal::SIGKILL, false).unwrap();
    assert_eq!(container.wait().unwrap(), None);
    runtime.delete(&c.id, false).unwrap();
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert!(
        heard[0].starts_with("poststart hook /bin/busybox failed")
            && heard[0].ends_with("poststart says no"),
        "{heard:?}"
    );
    assert!(
        heard[1].starts_with("poststop hook /bin/busybox failed")
            && heard[1].ends_with("poststop says no"),
        "{heard:?}"
    );
}

/// `create_overlapped` runs `before_clone` once the container is recorded and before its
/// cgroups and process exist, then `alongside` with the live process's pid before the create
/// returns: what they write in the root, the container's program sees. An error of either
/// fails the create, with its message, leaving nothing behind.
#[test]
fn overlap_runs_around_the_clone_and_its_failure_undoes_the_create() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("facade-along");
    c.script("cat /overlap");
    c.write_config();
    let log = c.dir.join("container.log");
    let marker = c.bundle.join("rootfs/overlap");
    let (root, id, bundle, out) = (c.root.clone(), c.id.clone(), c.bundle.clone(), log.clone());
    let code = in_single_threaded_child(move || {
        let mut opts = CreateOptions::new(&id, &bundle);
        opts.stdio = stdio_to(&out);
        let runtime = Runtime::new(&root);
        let state = root.join(&id).join("state.json");
        let no_cgroup = || common::leaked_cgroups(&id).is_empty();
        let before = format!("recorded {} no cgroup {}\n", state.exists(), no_cgroup());
        let overlap = Overlap {
            before_clone: &mut || {
                let seen = format!("recorded {} no cgroup {}\n", state.exists(), no_cgroup());
                std::fs::write(&marker, seen).map_err(|e| e.to_string())
            },
            alongside: &mut |pid| {
                let alive = Path::new(&format!("/proc/{pid}/ns/net")).exists();
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&marker)
                    .map_err(|e| e.to_string())?;
                writeln!(file, "alongside saw {alive}").map_err(|e| e.to_string())
            },
        };
        let created = runtime.create_overlapped(opts, overlap)?;
        // The created container holds its lock until dropped: start and wait through it.
        let container = created.container;
        container.start()?;
        let code = container.wait()?.unwrap_or(-1);
        runtime.delete(&id, false)?;
        Ok(if before == "recorded false no cgroup true\n" {
            code
        } else {
            9
        })
    });
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "recorded true no cgroup true\nalongside saw true\n"
    );

    for failing in ["before_clone", "alongside"] {
        let (root, id, bundle) = (c.root.clone(), c.id.clone(), c.bundle.clone());
        let code = in_single_threaded_child(move || {
            let fail = |at: &str| {
                if at == failing {
                    Err(format!("no {at} for it"))
                } else {
                    Ok(())
                }
            };
            let overlap = Overlap {
                before_clone: &mut || fail("before_clone"),
                alongside: &mut |_| fail("alongside"),
            };
            let runtime = Runtime::new(&root);
            Ok(
                match runtime.create_overlapped(CreateOptions::new(&id, &bundle), overlap) {
                    Ok(_) => 1,
                    Err(err) if err.to_string().ends_with(&format!("no {failing} for it")) => 0,
                    Err(_) => 2,
                },
            )
        });
        assert_eq!(code, 0, "{failing}");
        assert!(!c.root.join(&c.id).exists(), "{failing}");
        assert!(common::leaked_cgroups(&c.id).is_empty(), "{failing}");
    }
}

/// A config.json the caller read and checked ahead (`Config::parse`) is what the create uses:
/// it does not read the bundle's file again. One that fails the checks fails `parse` as it
/// would fail the create.
#[test]
fn a_config_parsed_ahead_is_not_read_again() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("facade-ahead");
    c.set_args(&["true"]);
    c.write_config();
    let file = c.bundle.join("config.json");
    let bytes = std::fs::read(&file).unwrap();
    assert!(hull_runtime::Config::parse(b"{\"ociVersion\": 1}".to_vec())
        .unwrap_err()
        .to_string()
        .contains("invalid config"));
    // What the create would fail on, were it to read the file.
    std::fs::write(&file, "not json").unwrap();
    let (root, id, bundle) = (c.root.clone(), c.id.clone(), c.bundle.clone());
    let code = in_single_threaded_child(move || {
        let mut opts = CreateOptions::new(&id, &bundle);
        opts.config = Some(hull_runtime::Config::parse(bytes.clone())?);
        let runtime = Runtime::new(&root);
        let container = runtime.create(opts)?.container;
        container.start()?;
        let code = container.wait()?.unwrap_or(-1);
        runtime.delete(&id, false)?;
        Ok(code)
    });
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not json");
    assert!(common::leaked_cgroups(&c.id).is_empty());
}

/// A container created to start at once (`start_when_created`, the engine's `run`) runs its
/// program without waiting for `start`; `start` still reports how its execve went.
#[test]
fn a_container_created_to_start_at_once_runs_before_its_start() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("facade-at-once");
    c.set_args(&["sleep", "100"]);
    c.write_config();
    let (root, id, bundle) = (c.root.clone(), c.id.clone(), c.bundle.clone());
    // Its state under the first one's root: one runtime for both.
    // A program create finds (executable) whose execve fails: its interpreter is missing.
    let mut missing = TestContainer::new("facade-at-once-missing");
    let script = missing.bundle.join("rootfs/bad-interpreter");
    std::fs::write(&script, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    missing.set_args(&["/bad-interpreter"]);
    missing.write_config();
    let (missing_id, missing_bundle) = (missing.id.clone(), missing.bundle.clone());
    let code = in_single_threaded_child(move || {
        let runtime = Runtime::new(&root);
        let mut opts = CreateOptions::new(&id, &bundle);
        opts.start_when_created = true;
        let container = runtime.create(opts)?.container;
        let exe = format!("/proc/{}/exe", container.pid());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let ran = loop {
            let target = std::fs::read_link(&exe).unwrap_or_default();
            if target
                .file_name()
                .is_some_and(|n| n == "sleep" || n == "busybox")
            {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let started = container.start().is_ok();
        let again = container.start().err().map(|e| e.to_string());
        let started =
            started && again.as_deref() == Some("cannot start an already running container");
        container.kill(Signal::SIGKILL, false)?;
        container.wait()?;
        runtime.delete(&id, false)?;
        let mut opts = CreateOptions::new(&missing_id, &missing_bundle);
        opts.start_when_created = true;
        let container = runtime.create(opts)?.container;
        let failed = container
            .start()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        drop(container);
        runtime.delete(&missing_id, true)?;
        Ok(match (ran, started, failed.contains("/bad-interpreter")) {
            (true, true, true) => 0,
            (false, _, _) => 3,
            (_, false, _) => 4,
            _ => 5,
        })
    });
    assert_eq!(
        code, 0,
        "3: not run before start, 4: start failed or a second start was not refused, 5: no exec error"
    );
    assert!(!c.root.join(&c.id).exists());
    assert!(common::leaked_cgroups(&c.id).is_empty());
    assert!(common::leaked_cgroups(&missing.id).is_empty());
}

/// A container the caller created starts without its status being read first; a start that
/// cannot happen still gets runc's refusal: twice, or after its process died.
#[test]
fn a_created_containers_refused_starts_read_as_runcs() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("facade-restart");
    c.set_args(&["sleep", "100"]);
    c.write_config();
    let (root, id, bundle) = (c.root.clone(), c.id.clone(), c.bundle.clone());
    let code = in_single_threaded_child(move || {
        let runtime = Runtime::new(&root);
        let container = runtime.create(CreateOptions::new(&id, &bundle))?.container;
        container.start()?;
        let again = container.start().map(|()| String::new());
        container.kill(Signal::SIGKILL, false)?;
        container.wait()?;
        runtime.delete(&id, false)?;
        let container = runtime.create(CreateOptions::new(&id, &bundle))?.container;
        let pid = container.pid();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        // Dead once a zombie (this process, its parent, has not reaped it).
        while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let dead = container.start().map(|()| String::new());
        drop(container);
        runtime.delete(&id, true)?;
        let said = |r: Result<String, Error>| r.err().map(|e| e.to_string()).unwrap_or_default();
        Ok(match (said(again).as_str(), said(dead).as_str()) {
            (
                "cannot start an already running container",
                "cannot start a container that has stopped",
            ) => 0,
            _ => 3,
        })
    });
    assert_eq!(code, 0);
    assert!(!c.root.join(&c.id).exists());
    assert!(common::leaked_cgroups(&c.id).is_empty());
}
