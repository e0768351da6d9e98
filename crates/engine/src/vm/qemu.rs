//! The qemu backend of VM isolation: `qemu-system-x86_64 -M microvm` with hull's guest kernel,
//! hull-guest's initramfs and agent, one read-only virtio-blk disk per image layer (the shared
//! erofs images of the image store, top layer first) and the agent's virtio-console port on a
//! unix socket the caller listens on. KVM where it boots a stock kernel, TCG otherwise (this
//! kind of host's kvm-pvm does not). A library, not CLI code: the engine's monitor and, later,
//! the runtime's VM path start VMs through [`spawn`].

use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hull_vmm::proto::PORT_NAME;

use crate::error::EngineError;

pub const QEMU: &str = "qemu-system-x86_64";
/// Where qemu's stderr goes, in the VM's directory.
pub const QEMU_LOG: &str = "qemu.log";

/// The guest's command line: console on COM1 (the console log), reset on the guest's reboot
/// (hull-guest reboots when the main process ends, and `-no-reboot` turns that into qemu's
/// exit), no PS/2 devices to probe.
const CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 quiet i8042.noaux i8042.nokbd";
/// Under TCG a third of the boots hang calibrating the TSC without a given frequency.
const TCG_TSC: &str = "tsc_early_khz=2000000";

/// How qemu runs the guest's CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// KVM when this host's /dev/kvm boots a stock kernel, TCG otherwise.
    pub fn for_host() -> Accel {
        match hull_vmm::host_kvm() {
            hull_vmm::HostKvm::Hardware => Accel::Kvm,
            hull_vmm::HostKvm::Pvm | hull_vmm::HostKvm::Missing => Accel::Tcg,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One VM.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub memory: u64,
    pub vcpus: u32,
    /// Read-only disks, in the order of their serials ([`layer_serial`]).
    pub disks: Vec<PathBuf>,
    /// qemu's working directory, which relative paths below are relative to (a unix socket's
    /// path must fit in 108 bytes).
    pub dir: PathBuf,
    /// The unix socket qemu connects the agent port to (the caller listens on it first).
    pub agent_socket: PathBuf,
    /// Where the guest's serial console goes.
    pub console_log: PathBuf,
    pub accel: Accel,
}

/// The serial the guest finds layer disk `i` by.
pub fn layer_serial(i: usize) -> String {
    format!("hull-layer{i}")
}

fn path_arg(prefix: &str, p: &Path, suffix: &str) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(p.as_os_str());
    s.push(suffix);
    s
}

/// qemu's arguments for `cfg`.
pub fn args(cfg: &QemuConfig) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let (accel, cpu, cmdline) = match cfg.accel {
        Accel::Kvm => ("kvm", "host", CMDLINE.to_string()),
        Accel::Tcg => ("tcg", "max", format!("{CMDLINE} {TCG_TSC}")),
    };
    push(&["-M", "microvm", "-accel", accel, "-cpu", cpu]);
    push(&["-m", &format!("{}M", cfg.memory >> 20)]);
    push(&["-smp", &cfg.vcpus.to_string()]);
    push(&["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
    // Threads named by role (`CPU 0/TCG`), for the kernel view's vCPU threads.
    push(&["-monitor", "none", "-name", "hull,debug-threads=on"]);
    a.push("-serial".into());
    a.push(path_arg("file:", &cfg.console_log, ""));
    a.push("-kernel".into());
    a.push(cfg.kernel.clone().into());
    a.push("-initrd".into());
    a.push(cfg.initrd.clone().into());
    a.push("-append".into());
    a.push(cmdline.into());
    for (i, disk) in cfg.disks.iter().enumerate() {
        // qemu parses commas in option values as separators: a path with one is refused by
        // the caller ([`spawn`]).
        a.push("-drive".into());
        a.push(path_arg(
            &format!("id=d{i},file="),
            disk,
            ",format=raw,if=none,readonly=on",
        ));
        a.push("-device".into());
        a.push(format!("virtio-blk-device,drive=d{i},serial={}", layer_serial(i)).into());
    }
    a.push("-device".into());
    a.push("virtio-serial-device".into());
    a.push("-chardev".into());
    a.push(path_arg("socket,id=agent,path=", &cfg.agent_socket, ""));
    a.push("-device".into());
    a.push(format!("virtserialport,chardev=agent,name={PORT_NAME}").into());
    a
}

/// The VM's NIC: a tap (`hull_net::tap`) that qemu inherits as a descriptor, in the network
/// namespace qemu runs in (the container's), and the MAC of the interface the tap mirrors.
#[derive(Debug, Clone, Copy)]
pub struct QemuNet<'a> {
    pub netns: BorrowedFd<'a>,
    /// None: no NIC (`--network none`: the namespace has lo only).
    pub tap: Option<BorrowedFd<'a>>,
    pub mac: &'a str,
}

/// qemu's arguments for a virtio-net device on the tap open as descriptor `fd` in qemu.
pub fn net_args(fd: RawFd, mac: &str) -> Vec<OsString> {
    [
        "-netdev".to_string(),
        format!("tap,id=net0,fd={fd}"),
        "-device".to_string(),
        format!("virtio-net-device,netdev=net0,mac={mac}"),
    ]
    .map(OsString::from)
    .to_vec()
}

/// Starts qemu for `cfg`, killed by the kernel when the thread that started it ends (so a
/// monitor's death, even by SIGKILL, takes its VM along). Call it from a thread that lives as
/// long as the VM should: the monitor's main thread. qemu joins the cgroups whose
/// `cgroup.procs` files `join` holds open before it runs (so before it touches guest memory).
pub fn spawn(cfg: &QemuConfig, join: &[std::fs::File]) -> Result<Child, EngineError> {
    spawn_with_net(cfg, join, None)
}

/// [`spawn`], with qemu in `net`'s namespace and its tap as the VM's NIC.
pub fn spawn_with_net(
    cfg: &QemuConfig,
    join: &[std::fs::File],
    net: Option<QemuNet<'_>>,
) -> Result<Child, EngineError> {
    let paths = [
        &cfg.kernel,
        &cfg.initrd,
        &cfg.agent_socket,
        &cfg.console_log,
    ];
    if let Some(p) = paths
        .iter()
        .copied()
        .chain(&cfg.disks)
        .find(|p| p.as_os_str().as_encoded_bytes().contains(&b','))
    {
        return Err(EngineError::Invalid(format!(
            "{}: qemu cannot take a path with a comma",
            p.display()
        )));
    }
    // qemu's own messages, read back when it fails to start; a file, so they never block it.
    let log = std::fs::File::create(cfg.dir.join(QEMU_LOG)).map_err(EngineError::io(format!(
        "creating {QEMU_LOG} in {}",
        cfg.dir.display()
    )))?;
    let mut cmd = Command::new(QEMU);
    let netns = net.map(|n| n.netns.as_raw_fd());
    let tap = net.and_then(|n| n.tap.map(|t| (t.as_raw_fd(), n.mac)));
    if let Some((fd, mac)) = tap {
        if mac.contains(',') {
            return Err(EngineError::Invalid(format!("MAC {mac:?} has a comma")));
        }
        cmd.args(net_args(fd, mac));
    }
    let tap_fd = tap.map(|(fd, _)| fd);
    cmd.args(args(cfg))
        .current_dir(&cfg.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    owned_by_this_thread(&mut cmd, join, netns, tap_fd);
    cmd.spawn().map_err(|e| {
        EngineError::Invalid(format!(
            "cannot start {QEMU} (Debian's qemu-system-x86): {e}"
        ))
    })
}

/// Makes the child of `cmd` join the cgroups whose `cgroup.procs` files `join` holds open, and
/// die when the thread that starts it ends (parent-death signal), before it execs: so a VMM
/// touches no guest memory outside its cgroup and never outlives its monitor, even one killed
/// with SIGKILL; in the network namespace `netns` when given, with `keep` (a tap) inherited
/// across exec. Shared by the qemu and hull-vmm backends.
pub(crate) fn owned_by_this_thread(
    cmd: &mut Command,
    join: &[std::fs::File],
    netns: Option<i32>,
    keep: Option<i32>,
) {
    let join: Vec<i32> = join.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    // SAFETY: between fork and exec the closure only makes async-signal-safe system calls
    // (write, setns, fcntl, prctl, getppid) on descriptors the parent keeps open, and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &join {
                // "0": the writing process itself, in cgroup v1 and v2 alike.
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // The container's network namespace; and its tap, kept across exec.
            if let Some(ns) = netns {
                if libc::setns(ns, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(fd) = keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The starter died before the death signal was armed: nobody owns this VM.
            if libc::getppid() == 1 {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(accel: Accel) -> QemuConfig {
        QemuConfig {
            kernel: "/k/vmlinuz".into(),
            initrd: "/k/initrd".into(),
            memory: 200 << 20,
            vcpus: 2,
            disks: vec!["/l/top.erofs".into(), "/l/base.erofs".into()],
            dir: "/c".into(),
            agent_socket: "/c/agent.sock".into(),
            console_log: "/c/console.log".into(),
            accel,
        }
    }

    fn joined(cfg: &QemuConfig) -> String {
        args(cfg)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn layers_are_read_only_disks_found_by_serial() {
        let line = joined(&cfg(Accel::Tcg));
        assert!(line.contains("-m 200M -smp 2"), "{line}");
        assert!(
            line.contains(
                "-drive id=d0,file=/l/top.erofs,format=raw,if=none,readonly=on \
                 -device virtio-blk-device,drive=d0,serial=hull-layer0"
            ),
            "{line}"
        );
        assert!(line.contains("serial=hull-layer1"), "{line}");
        assert!(
            line.contains("socket,id=agent,path=/c/agent.sock"),
            "{line}"
        );
        assert!(line.contains("name=org.hull.agent"), "{line}");
    }

    #[test]
    fn tcg_gets_the_tsc_frequency_and_kvm_the_host_cpu() {
        let tcg = joined(&cfg(Accel::Tcg));
        assert!(
            tcg.contains("-accel tcg -cpu max") && tcg.contains(TCG_TSC),
            "{tcg}"
        );
        let kvm = joined(&cfg(Accel::Kvm));
        assert!(
            kvm.contains("-accel kvm -cpu host") && !kvm.contains(TCG_TSC),
            "{kvm}"
        );
    }

    #[test]
    fn the_nic_is_virtio_net_on_the_inherited_tap_with_the_interfaces_mac() {
        let line = net_args(5, "02:42:0a:00:00:02")
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            line,
            "-netdev tap,id=net0,fd=5 \
             -device virtio-net-device,netdev=net0,mac=02:42:0a:00:00:02"
        );
    }

    #[test]
    fn a_comma_in_a_path_is_refused() {
        let mut c = cfg(Accel::Tcg);
        c.disks.push("/l/a,b.erofs".into());
        let err = spawn(&c, &[]).unwrap_err().to_string();
        assert!(err.contains("comma"), "{err}");
    }
}
