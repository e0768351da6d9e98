//! The jail of a microVM's VMM process, as Firecracker's jailer makes it, on hull-runtime's
//! facade: the VMM (the small `hull-vmm` binary) runs as the process of a container with its
//! own mount, pid, network, ipc, uts and cgroup namespaces; a read-only root holding only the
//! binary, the shared libraries the caller loaded, the files the VM reads (read-only unless
//! asked) and /dev/kvm, the one device node; a cgroup under the caller's sized to guest memory
//! plus overhead, with a pids limit; no capabilities and no_new_privs. The VMM installs its own
//! seccomp filter once its VM is built (hull_vmm::seccomp). A guest escaping into the VMM lands
//! in that box.
//!
//! Ownership: each jail's bundle directory (`<root>/vm/bundles/<id>`) holds `owner.lock`,
//! flocked by the `hull vm run` that made it for as long as it lives. The VMM dies with that
//! process (parent-death signal, set by the VMM). A bundle whose lock can be taken is a dead
//! run's: the next `hull vm run` deletes its container (cgroup, state) and the directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hull_runtime::{CreateOptions, Runtime};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::paths;

/// Where the VMM binary is inside the jail.
pub const JAILED_EXE: &str = "/hull";
/// The cgroup's memory beyond guest RAM: the VMM's own pages (binary, libraries, heap, thread
/// stacks, KVM's per-vCPU run areas) and the page cache of the kernel and initrd it reads.
pub const MEMORY_OVERHEAD: u64 = 64 << 20;
/// Tasks beyond one per vCPU: the main thread, stdin, device threads.
pub const PIDS_OVERHEAD: u64 = 16;
const LOCK_FILE: &str = "owner.lock";
const KVM: &str = "/dev/kvm";

/// A file of the host the VMM gets at `inside`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailFile {
    pub host: PathBuf,
    pub inside: PathBuf,
    pub writable: bool,
}

/// What runs in the jail.
#[derive(Debug, Clone)]
pub struct Jail {
    /// The VMM binary on the host; it runs as [`JAILED_EXE`] with `args`.
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub files: Vec<JailFile>,
    pub mem_size: u64,
    pub vcpus: usize,
}

pub fn memory_limit(mem_size: u64) -> u64 {
    mem_size.saturating_add(MEMORY_OVERHEAD)
}

/// The shared objects loaded in this process under the names the dynamic loader opened them by
/// (`/lib/x86_64-linux-gnu/libc.so.6`, `/lib64/ld-linux-x86-64.so.2`): what the same binary
/// needs, at the same paths, in the jail. (/proc/self/maps shows the files' real names instead,
/// by which the loader does not look.)
pub fn loaded_objects() -> Vec<PathBuf> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr hands a valid info for the call, and `data` is the Vec passed
        // below, borrowed only for the iteration.
        let (info, names) = unsafe { (&*info, &mut *data.cast::<Vec<Vec<u8>>>()) };
        if !info.dlpi_name.is_null() {
            // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
            names.push(
                unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
                    .to_bytes()
                    .to_vec(),
            );
        }
        0
    }
    let mut names: Vec<Vec<u8>> = Vec::new();
    // SAFETY: the callback only reads the info and appends to `names`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::addr_of_mut!(names).cast()) };
    absolute_objects(
        names
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned()),
    )
}

/// The absolute names of `names`, once each (the executable's is empty, the vDSO's bare).
pub fn absolute_objects(names: impl Iterator<Item = String>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for name in names.filter(|n| n.starts_with('/')) {
        let path = PathBuf::from(name);
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

/// The directories of `libs`, for the jailed loader's LD_LIBRARY_PATH: the host's
/// /etc/ld.so.cache, which names them otherwise, stays outside.
fn library_path(libs: &[PathBuf]) -> String {
    let mut dirs: Vec<String> = Vec::new();
    for dir in libs.iter().filter_map(|l| l.parent()) {
        let dir = dir.display().to_string();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.join(":")
}

fn bind(source: &Path, destination: &Path, writable: bool, exec: bool) -> Value {
    let mut options = vec![
        "bind",
        if writable { "rw" } else { "ro" },
        "nosuid",
        "nodev",
    ];
    if !exec {
        options.push("noexec");
    }
    json!({
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": options,
    })
}

/// config.json of the jail; `kvm` is /dev/kvm's (major, minor).
pub fn config(jail: &Jail, libs: &[PathBuf], kvm: (u64, u64)) -> Value {
    let mut mounts = vec![bind(&jail.exe, Path::new(JAILED_EXE), false, true)];
    mounts.extend(libs.iter().map(|l| bind(l, l, false, true)));
    mounts.extend(
        jail.files
            .iter()
            .map(|f| bind(&f.host, &f.inside, f.writable, false)),
    );
    let mut args = vec![JAILED_EXE.to_string()];
    args.extend(jail.args.iter().cloned());
    let memory = memory_limit(jail.mem_size);
    let vcpus = u64::try_from(jail.vcpus).unwrap_or(u64::MAX);
    let no_caps: [&str; 0] = [];
    let namespaces =
        ["pid", "mount", "network", "ipc", "uts", "cgroup"].map(|t| json!({"type": t}));
    json!({
        "ociVersion": hull_runtime::OCI_VERSION,
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "hull-vm",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/", format!("LD_LIBRARY_PATH={}", library_path(libs))],
            "cwd": "/",
            "noNewPrivileges": true,
            "capabilities": {
                "bounding": no_caps, "effective": no_caps, "permitted": no_caps,
                "inheritable": no_caps, "ambient": no_caps,
            },
        },
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "devices": [{
                "path": KVM, "type": "c", "major": kvm.0, "minor": kvm.1,
                "fileMode": 0o600, "uid": 0, "gid": 0,
            }],
            "resources": {
                // swap equal to the limit: none beyond it.
                "memory": {"limit": memory, "swap": memory},
                "pids": {"limit": vcpus.saturating_add(PIDS_OVERHEAD)},
                "devices": [{"allow": false, "access": "rwm"}],
            },
        },
    })
}

/// True when `/` is the initramfs (rootfs), where pivot_root cannot work (containers then
/// move their root and chroot, as docker does with DOCKER_RAMDISK).
pub(crate) fn root_is_ramdisk() -> bool {
    // The initramfs is a ramfs or a tmpfs: any other `/` is not it, known from one statfs
    // without reading the mount table (every container's start asks).
    if let Ok(fs) = nix::sys::statfs::statfs("/") {
        let magic = fs.filesystem_type().0;
        if magic != RAMFS_MAGIC && magic != libc::TMPFS_MAGIC {
            return false;
        }
    }
    let Ok(text) = hull_sys::mountinfo::read_self() else {
        return false;
    };
    hull_sys::mountinfo::parse(&text)
        .filter_map(Result::ok)
        .filter(|m| m.raw_mount_point == "/")
        .last()
        .is_some_and(|m| m.fs_type == "rootfs")
}

/// ramfs's statfs magic (linux/magic.h; the libc crate lacks it).
const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;

fn kvm_device() -> Result<(u64, u64), EngineError> {
    let st = nix::sys::stat::stat(KVM).map_err(EngineError::sys(KVM))?;
    Ok((
        nix::sys::stat::major(st.st_rdev),
        nix::sys::stat::minor(st.st_rdev),
    ))
}

/// Removes what runs that died left: containers and bundles whose owner lock is free.
pub fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(paths::vm_bundles_dir(root)) else {
        return;
    };
    let runtime = Runtime::new(paths::vm_runtime_root(root));
    for entry in entries.filter_map(Result::ok) {
        let dir = entry.path();
        let Ok(file) = File::open(dir.join(LOCK_FILE)) else {
            continue;
        };
        let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let id = entry.file_name().to_string_lossy().into_owned();
        if runtime.delete(&id, true).is_ok() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Runs `jail` in the foreground (hull-runtime's `run`: signals forwarded, waited for, deleted
/// after); the VMM's exit status. Must be called before the process starts any thread.
pub fn run(root: &Path, jail: &Jail, on_warning: &mut dyn FnMut(&str)) -> Result<i32, EngineError> {
    sweep(root);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let id = format!("vm-{}-{nanos:08x}", std::process::id());
    let bundle = paths::vm_bundles_dir(root).join(&id);
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(EngineError::io(rootfs.display().to_string()))?;
    let result = run_in(root, jail, &id, &bundle, on_warning);
    let _ = std::fs::remove_dir_all(&bundle);
    result
}

fn run_in(
    root: &Path,
    jail: &Jail,
    id: &str,
    bundle: &Path,
    on_warning: &mut dyn FnMut(&str),
) -> Result<i32, EngineError> {
    let lock_path = bundle.join(LOCK_FILE);
    let lock =
        File::create(&lock_path).map_err(EngineError::io(lock_path.display().to_string()))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| EngineError::sys(lock_path.display().to_string())(e))?;
    let spec = config(jail, &loaded_objects(), kvm_device()?);
    let path = bundle.join("config.json");
    std::fs::write(&path, spec.to_string()).map_err(EngineError::io(path.display().to_string()))?;

    let mut opts = CreateOptions::new(id, bundle);
    opts.no_default_devices = true;
    opts.no_pivot = root_is_ramdisk();
    let runtime = Runtime::new(paths::vm_runtime_root(root));
    runtime
        .run(opts, false, on_warning)
        .map_err(EngineError::from_runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail() -> Jail {
        Jail {
            exe: "/usr/bin/hull".into(),
            args: vec!["vm".into(), "run".into()],
            files: vec![
                JailFile {
                    host: "/boot/vmlinux".into(),
                    inside: "/vm/kernel".into(),
                    writable: false,
                },
                JailFile {
                    host: "/img/disk".into(),
                    inside: "/vm/disk0".into(),
                    writable: true,
                },
            ],
            mem_size: 256 << 20,
            vcpus: 2,
        }
    }

    #[test]
    fn objects_of_this_test_binary() {
        let objs = loaded_objects();
        let names: Vec<_> = objs
            .iter()
            .map(|o| o.to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.ends_with("/libc.so.6")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("ld-linux")), "{names:?}");
        let given = [
            "",
            "linux-vdso.so.1",
            "/lib/libc.so.6",
            "/lib/libc.so.6",
            "/lib64/ld.so",
        ];
        assert_eq!(
            absolute_objects(given.iter().map(|s| s.to_string())),
            ["/lib/libc.so.6", "/lib64/ld.so"].map(PathBuf::from)
        );
    }

    #[test]
    fn config_confines() {
        let libs = [PathBuf::from("/lib/libc.so.6")];
        let c = config(&jail(), &libs, (10, 232));
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["process"]["args"], json!(["/hull", "vm", "run"]));
        assert_eq!(c["process"]["noNewPrivileges"], true);
        assert_eq!(c["process"]["capabilities"]["bounding"], json!([]));
        assert_eq!(c["process"]["user"]["uid"], 0);
        assert_eq!(c["process"]["env"][1], "LD_LIBRARY_PATH=/lib");
        let ns: Vec<_> = c["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|n| n["type"].as_str().expect("type"))
            .collect();
        assert_eq!(ns, ["pid", "mount", "network", "ipc", "uts", "cgroup"]);
        let devs = c["linux"]["devices"].as_array().expect("devices");
        assert_eq!(devs.len(), 1);
        assert_eq!(
            (&devs[0]["path"], &devs[0]["major"]),
            (&json!(KVM), &json!(10))
        );
        let res = &c["linux"]["resources"];
        assert_eq!(res["memory"]["limit"], (256u64 << 20) + MEMORY_OVERHEAD);
        assert_eq!(res["pids"]["limit"], 2 + PIDS_OVERHEAD);
        assert_eq!(res["devices"], json!([{"allow": false, "access": "rwm"}]));
    }

    #[test]
    fn mounts_are_read_only_unless_asked() {
        let c = config(&jail(), &[PathBuf::from("/lib/libc.so.6")], (10, 232));
        let m = c["mounts"].as_array().expect("mounts");
        let opts = |i: usize| m[i]["options"].as_array().expect("options").clone();
        assert_eq!(
            (&m[0]["source"], &m[0]["destination"]),
            (&json!("/usr/bin/hull"), &json!("/hull"))
        );
        assert_eq!(
            opts(0),
            json!(["bind", "ro", "nosuid", "nodev"])
                .as_array()
                .cloned()
                .expect("a")
        );
        assert_eq!(m[1]["destination"], "/lib/libc.so.6");
        assert_eq!(m[2]["destination"], "/vm/kernel");
        assert_eq!(
            opts(2),
            json!(["bind", "ro", "nosuid", "nodev", "noexec"])
                .as_array()
                .cloned()
                .expect("a")
        );
        assert_eq!(opts(3)[1], "rw");
    }
}
