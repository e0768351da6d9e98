//! What PID 1 sets up before any process runs: the kernel file systems, the modules the guest
//! kernel lacks built in (listed in load order in /lib/modules/hull.order by the initramfs
//! builder), and the root: the disk whose serial the host named, ext4 or erofs, under an
//! overlay with a tmpfs upper layer when the host asked for one.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hull_vmproto::{FileSpec, RootSpec, RunSpec};
use nix::mount::{mount, MsFlags};

const MODULE_ORDER: &str = "/lib/modules/hull.order";
const DISK_WAIT: Duration = Duration::from_secs(10);

fn mount_fs(
    src: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> anyhow::Result<()> {
    let _ = std::fs::create_dir_all(target);
    mount(Some(src), target, Some(fstype), flags, data)
        .with_context(|| format!("cannot mount {fstype} {src} on {target}"))
}

pub fn early_mounts() -> anyhow::Result<()> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", nosuid, None)?;
    mount_fs("sysfs", "/sys", "sysfs", nosuid, None)?;
    mount_fs("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID, None)?;
    // Where openpty finds the terminals it makes for processes that want one.
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("ptmxmode=0666,mode=0620"),
    )
}

fn load_module(path: &Path) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let params = c"";
    // SAFETY: finit_module(2) with an open module file, a NUL-terminated empty parameter string
    // and no flags; it reads them only during the call.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    let err = std::io::Error::last_os_error();
    if rc != 0 && err.raw_os_error() != Some(libc::EEXIST) {
        bail!("cannot load {}: {err}", path.display());
    }
    Ok(())
}

/// Loads every module of the initramfs in its listed order (dependencies first).
pub fn load_modules() -> anyhow::Result<()> {
    let order = std::fs::read_to_string(MODULE_ORDER).unwrap_or_default();
    for name in order.lines().filter(|l| !l.is_empty()) {
        load_module(&Path::new("/lib/modules").join(name))?;
    }
    Ok(())
}

/// The /dev path of the virtio disk whose serial is `serial`, waiting for it to appear.
fn disk_by_serial(serial: &str) -> anyhow::Result<PathBuf> {
    let start = Instant::now();
    loop {
        for e in std::fs::read_dir("/sys/block")
            .into_iter()
            .flatten()
            .flatten()
        {
            let s = std::fs::read_to_string(e.path().join("serial")).unwrap_or_default();
            let dev = PathBuf::from("/dev").join(e.file_name());
            if s.trim_end_matches(['\0', '\n']) == serial && dev.exists() {
                return Ok(dev);
            }
        }
        if start.elapsed() > DISK_WAIT {
            bail!("no disk with serial {serial:?} after {DISK_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// ext4 or erofs, from the superblock's magic.
fn fstype(dev: &Path) -> anyhow::Result<&'static str> {
    let f = File::open(dev).with_context(|| format!("cannot open {}", dev.display()))?;
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, 1024)
        .with_context(|| format!("cannot read the superblock of {}", dev.display()))?;
    if sb[..4] == 0xe0f5_e1e2u32.to_le_bytes() {
        Ok("erofs")
    } else if sb[56..58] == 0xef53u16.to_le_bytes() {
        Ok("ext4")
    } else {
        bail!("{} holds neither ext4 nor erofs", dev.display())
    }
}

fn mount_root(root: &RootSpec) -> anyhow::Result<PathBuf> {
    let dev = disk_by_serial(&root.serial)?;
    let fs = fstype(&dev)?;
    let dev = dev.to_string_lossy().into_owned();
    let ro = if root.read_only || root.overlay {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    if !root.overlay {
        if !root.lower_serials.is_empty() {
            bail!("more than one root disk needs an overlay to stack them");
        }
        mount_fs(&dev, "/mnt/root", fs, ro, None)?;
        return Ok("/mnt/root".into());
    }
    // The disk, then the layers below it: lowerdir lists them top first.
    let mut lowers = vec!["/mnt/lower".to_string()];
    mount_fs(&dev, "/mnt/lower", fs, ro, None)?;
    for (i, serial) in root.lower_serials.iter().enumerate() {
        let dev = disk_by_serial(serial)?;
        let fs = fstype(&dev)?;
        let dir = format!("/mnt/lower{}", i + 1);
        mount_fs(&dev.to_string_lossy(), &dir, fs, MsFlags::MS_RDONLY, None)?;
        lowers.push(dir);
    }
    mount_fs(
        "tmpfs",
        "/mnt/rw",
        "tmpfs",
        MsFlags::empty(),
        Some("mode=0755"),
    )?;
    for d in ["/mnt/rw/upper", "/mnt/rw/work"] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot make {d}"))?;
    }
    mount_fs(
        "overlay",
        "/mnt/root",
        "overlay",
        MsFlags::empty(),
        Some(&format!(
            "lowerdir={},upperdir=/mnt/rw/upper,workdir=/mnt/rw/work",
            lowers.join(":")
        )),
    )?;
    Ok("/mnt/root".into())
}

/// Mounts the kernel file systems inside the process root, making their directories where the
/// root can be written.
fn root_mounts(root: &Path) -> anyhow::Result<()> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for (fs, dir, flags) in [
        ("proc", "proc", nosuid),
        ("sysfs", "sys", nosuid),
        ("devtmpfs", "dev", MsFlags::MS_NOSUID),
    ] {
        let target = root.join(dir);
        // An image need not have them (docker's runtimes make them too); on an overlay
        // root they go in the tmpfs upper layer.
        let _ = std::fs::create_dir(&target);
        if target.is_dir() {
            mount_fs(fs, &target.to_string_lossy(), fs, flags, None)?;
        }
    }
    // What a container's /dev has beyond the device nodes (OCI runtimes mount both): ptys
    // for the processes' own use and POSIX shared memory.
    for (fs, dir, data) in [
        ("devpts", "dev/pts", "newinstance,ptmxmode=0666,mode=0620"),
        ("tmpfs", "dev/shm", "mode=1777"),
    ] {
        let target = root.join(dir);
        let _ = std::fs::create_dir(&target);
        if target.is_dir() {
            mount_fs(fs, &target.to_string_lossy(), fs, nosuid, Some(data))?;
        }
    }
    Ok(())
}

/// Sets the hostname and the network, mounts the root and puts the host's files in it; returns the directory the processes run in.
pub fn root(spec: &RunSpec) -> anyhow::Result<PathBuf> {
    nix::unistd::sethostname(&spec.hostname)
        .with_context(|| format!("cannot set the hostname {:?}", spec.hostname))?;
    crate::net::configure(&spec.interfaces)?;
    let dir = match &spec.root {
        None => "/".into(),
        Some(root) => {
            let dir = mount_root(root)?;
            root_mounts(&dir)?;
            dir
        }
    };
    place_files(&dir, &spec.files)?;
    Ok(dir)
}

/// Where the host's files are kept, outside the process's root, before they are bound in.
const FILES_DIR: &str = "/run/hull-files";

/// The host's files (a container's /etc/hosts, hostname, resolv.conf), each written to the
/// initramfs and bound over its path in `root` as a container runtime binds them: the image's
/// own file stays below, and a symlink there is not followed out of the root (it is replaced).
fn place_files(root: &Path, files: &[FileSpec]) -> anyhow::Result<()> {
    for (i, f) in files.iter().enumerate() {
        let rel = Path::new(&f.path)
            .strip_prefix("/")
            .with_context(|| format!("file path {:?} is not absolute", f.path))?;
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!("file path {:?} is not a plain path", f.path);
        }
        let source = Path::new(FILES_DIR).join(i.to_string());
        std::fs::create_dir_all(FILES_DIR).with_context(|| format!("cannot make {FILES_DIR}"))?;
        std::fs::write(&source, &f.contents)
            .with_context(|| format!("cannot write {}", source.display()))?;
        let target = root.join(rel);
        if let Some(parent) = target.parent().filter(|p| !p.exists()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot make {}", parent.display()))?;
        }
        if target.is_symlink() {
            std::fs::remove_file(&target)
                .with_context(|| format!("cannot replace the symlink {}", target.display()))?;
        }
        if !target.exists() {
            File::create(&target).with_context(|| format!("cannot make {}", target.display()))?;
        }
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("cannot bind {} over {}", source.display(), target.display()))?;
    }
    Ok(())
}

/// `s` as a C string, refusing interior NULs.
pub fn cstring(s: &str) -> anyhow::Result<CString> {
    CString::new(s).with_context(|| format!("{s:?} contains a NUL byte"))
}
