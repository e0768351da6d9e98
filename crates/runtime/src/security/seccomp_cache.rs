//! The cache of compiled seccomp filters, under the runtime's state root.
//!
//! libseccomp takes most of a container's start when a profile as large as docker's or podman's
//! default is compiled (hundreds of rules over three architectures: ~60% of `run` here), and
//! an engine sends the same profile for every container. A filter compiled once is kept in a
//! file named by a hash of everything the compile reads: the profile, this executable, the
//! libseccomp version and the kernel; the file also holds all of that key, compared byte for
//! byte on a hit, so a hash collision is a miss, never a wrong filter. Only filters that
//! compiled without error are stored, so a hit skips nothing that could have failed.
//!
//! Files are written by rename (a reader sees a whole entry or none), the directory is kept to
//! [`MAX_ENTRIES`] files (oldest removed first), and it lives under the state root, which is
//! root's (0700) and on tmpfs in the default /run, so it goes with a reboot. Any problem
//! reading or writing the cache makes it a miss: the filter is then compiled as without one.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hull_sys::ahead::ReadAhead;
use oci_spec::runtime::LinuxSeccomp;

const MAGIC: &[u8; 8] = b"hullbpf1";
const MAX_ENTRIES: usize = 64;

/// What a compile produced and a hit gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Compiled {
    pub filter: Vec<libc::sock_filter>,
    /// A rule notifies (SCMP_ACT_NOTIFY): the filter needs a listener.
    pub notify: bool,
    /// Syscall names libseccomp did not know, skipped (as runc does).
    pub ignored: Vec<String>,
}

/// One profile's place in the cache.
#[derive(Debug)]
pub(super) struct Entry {
    path: PathBuf,
    key: Vec<u8>,
}

impl Entry {
    /// The entry for `profile` in `dir` (compiled with x32 left out or not), or None when the
    /// key cannot be made (then no cache).
    pub(super) fn new(dir: &Path, profile: &LinuxSeccomp, x32_left_out: bool) -> Option<Entry> {
        let mut key = environment()?.into_bytes();
        writeln!(key, "x32 left out {x32_left_out}").ok()?;
        // The derived Debug text names every field of the profile, as its JSON would, for less
        // than half the cost of serializing it through a Value: the key is made at every create.
        write!(key, "{profile:?}").ok()?;
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        let path = dir.join(format!("{:016x}.bpf", hasher.finish()));
        Some(Entry { path, key })
    }

    pub(super) fn load(&self) -> Option<Compiled> {
        decode(&std::fs::read(&self.path).ok()?, &self.key)
    }

    /// Stores `compiled`; failures are ignored (the next run compiles again).
    pub(super) fn store(&self, compiled: &Compiled) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        hull_sys::cache_dir::make_room(dir, MAX_ENTRIES);
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&encode(compiled, &self.key)))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// What a create's cache lookup reads of the host, read ahead by [`read_ahead`].
static ENVIRONMENT: ReadAhead<String> = ReadAhead::new();

/// Reads now what the next lookup keys on besides the profile (`hull_sys::ahead`).
pub(super) fn read_ahead() {
    ENVIRONMENT.fill(|| read_environment().ok_or(()));
}

/// Everything besides the profile that the compiled filter depends on.
fn environment() -> Option<String> {
    ENVIRONMENT.take_or(|| read_environment().ok_or(())).ok()
}

fn read_environment() -> Option<String> {
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let seccomp = libseccomp::ScmpVersion::current().ok()?;
    let uname = nix::sys::utsname::uname().ok()?;
    Some(format!(
        "exe {} {} {} {}.{}\nlibseccomp {}.{}.{}\nkernel {} {} {}\n",
        exe.dev(),
        exe.ino(),
        exe.size(),
        exe.mtime(),
        exe.mtime_nsec(),
        seccomp.major,
        seccomp.minor,
        seccomp.micro,
        uname.release().to_string_lossy(),
        uname.version().to_string_lossy(),
        uname.machine().to_string_lossy(),
    ))
}

fn encode(c: &Compiled, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + key.len() + c.filter.len() * 8);
    out.extend(MAGIC);
    out.extend(u64::try_from(key.len()).unwrap_or(u64::MAX).to_le_bytes());
    out.extend(key);
    out.extend(
        u64::try_from(c.filter.len())
            .unwrap_or(u64::MAX)
            .to_le_bytes(),
    );
    for i in &c.filter {
        out.extend(i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend(i.k.to_le_bytes());
    }
    out.push(u8::from(c.notify));
    out.extend(c.ignored.join("\n").as_bytes());
    out
}

fn decode(bytes: &[u8], key: &[u8]) -> Option<Compiled> {
    let mut r = Reader(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let key_len = r.len()?;
    if r.take(key_len)? != key {
        return None;
    }
    let count = r.len()?;
    let mut filter = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let b = r.take(8)?;
        filter.push(libc::sock_filter {
            code: u16::from_le_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        });
    }
    let notify = match r.take(1)? {
        [0] => false,
        [1] => true,
        _ => return None,
    };
    let rest = std::str::from_utf8(r.0).ok()?;
    let ignored = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('\n').map(str::to_string).collect()
    };
    Some(Compiled {
        filter,
        notify,
        ignored,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn len(&mut self) -> Option<usize> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        usize::try_from(u64::from_le_bytes(b)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Compiled {
        Compiled {
            filter: vec![
                libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 4,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 1,
                    jf: 2,
                    k: 0x7fff_0000,
                },
            ],
            notify: true,
            ignored: vec!["futuresyscall".into(), "other".into()],
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(decode(&encode(&c, b"key"), b"key"), Some(c));
        let none = Compiled {
            ignored: Vec::new(),
            notify: false,
            ..sample()
        };
        assert_eq!(decode(&encode(&none, b"k"), b"k"), Some(none));
    }

    #[test]
    fn another_key_or_damage_is_a_miss() {
        let bytes = encode(&sample(), b"key");
        assert_eq!(decode(&bytes, b"kez"), None);
        for cut in [0, 7, 8, 20, bytes.len() - 20] {
            assert_eq!(decode(&bytes[..cut], b"key"), None, "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert_eq!(decode(&bad, b"key"), None);
    }

    #[test]
    fn store_then_load_and_eviction() {
        let dir = std::env::temp_dir().join(format!("hull-seccomp-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let profile: LinuxSeccomp =
            serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap();
        let entry = Entry::new(&dir, &profile, false).unwrap();
        assert_eq!(entry.load(), None);
        entry.store(&sample());
        assert_eq!(entry.load(), Some(sample()));
        let other: LinuxSeccomp =
            serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_LOG"})).unwrap();
        assert_eq!(Entry::new(&dir, &other, false).unwrap().load(), None);
        // A filter without its x32 section is another entry.
        assert_eq!(Entry::new(&dir, &profile, true).unwrap().load(), None);
        for i in 0..MAX_ENTRIES + 5 {
            std::fs::write(dir.join(format!("{i:016x}.bpf")), b"x").unwrap();
        }
        entry.store(&sample());
        let count = std::fs::read_dir(&dir).unwrap().count();
        assert!(count <= MAX_ENTRIES, "{count} entries kept");
        assert_eq!(entry.load(), Some(sample()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
