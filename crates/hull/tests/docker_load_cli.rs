//! `hull save` read by a real `docker load`: a private dockerd (Debian's docker.io, with the
//! containerd it manages itself) on its own data and exec roots, socket, pidfile and trust key,
//! without a bridge or firewall rules; it loads hull's archive and lists the image under the
//! id and names hull gives it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use hull_testkit::dockerd;

struct Dockerd {
    dir: PathBuf,
    child: Child,
    /// dockerd makes /run/docker/plugins whatever its exec root: removed after if it was new.
    made_run_docker: bool,
}

impl Dockerd {
    fn start(dir: PathBuf) -> Dockerd {
        let made_run_docker = !Path::new("/run/docker").exists();
        let mut cmd = dockerd::dockerd(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd {
            dir,
            child,
            made_run_docker,
        };
        let up = (0..300).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            d.docker(&["version"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        assert!(
            up,
            "dockerd did not start: {}",
            std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default()
        );
        d
    }

    fn docker(&self, args: &[&str]) -> Command {
        dockerd::docker(&self.dir, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args).output().unwrap();
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let stopped = (0..300).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            self.child.try_wait().ok().flatten().is_some()
        });
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.made_run_docker {
            let _ = std::fs::remove_dir("/run/docker/plugins");
            let _ = std::fs::remove_dir("/run/docker");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if !std::thread::panicking() {
            assert!(stopped, "dockerd did not stop on SIGTERM");
        }
    }
}

fn have_docker() -> bool {
    Path::new(dockerd::DOCKERD).exists()
        && Command::new(dockerd::DOCKER)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[test]
fn docker_loads_what_hull_saves() {
    if !have_docker() {
        hull_testkit::skip!(
            "dockerd or the docker CLI is not installed (apt-get install docker.io)"
        );
    }
    let r = root!("dockerload");
    r.ok(&["tag", "busybox", "localhost/hull/second:2"]);
    let id = r.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    let archive = r.path.join("saved.tar");
    r.ok(&[
        "save",
        "busybox",
        "localhost/hull/second:2",
        "-o",
        archive.to_str().unwrap(),
    ]);
    let docker = Dockerd::start(r.path.join("docker"));
    let loaded = docker.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        loaded,
        "Loaded image: busybox:latest\nLoaded image: localhost/hull/second:2\n"
    );
    let listed = docker.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    let mut lines: Vec<&str> = listed.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            format!("busybox:latest {id}"),
            format!("localhost/hull/second:2 {id}")
        ]
    );
}
