//! Who a process runs as and what it may do, from its spec: the user (names resolved against the
//! root's /etc/passwd and /etc/group by hull-sys's rule), the OCI capability sets as bit masks,
//! and the seccomp program. Everything that can fail is worked out here, before fork; `apply`
//! runs between fork and execve, in runc's order, and makes only system calls.

use std::path::Path;

use anyhow::{bail, Context};
use hull_vmproto::{Capabilities, ProcessSpec};

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit halves.
const CAP_VERSION_3: u32 = 0x2008_0522;
/// seccomp(2) operation.
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;

/// The capability sets as masks (bit N: capability N), limited to what the guest kernel knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    /// The highest capability number of the guest kernel.
    pub last_cap: u32,
}

fn mask(set: &str, names: &[String], last_cap: u32) -> anyhow::Result<u64> {
    let mut m = 0u64;
    for n in names {
        let cap: caps::Capability = n
            .parse()
            .map_err(|_| anyhow::anyhow!("capabilities.{set}: unknown capability {n:?}"))?;
        // As runc: a capability newer than the running kernel is left out, not an error.
        if u32::from(cap.index()) <= last_cap {
            m |= 1 << cap.index();
        }
    }
    Ok(m)
}

impl CapMasks {
    pub fn new(c: &Capabilities, last_cap: u32) -> anyhow::Result<Self> {
        Ok(Self {
            bounding: mask("bounding", &c.bounding, last_cap)?,
            effective: mask("effective", &c.effective, last_cap)?,
            permitted: mask("permitted", &c.permitted, last_cap)?,
            inheritable: mask("inheritable", &c.inheritable, last_cap)?,
            ambient: mask("ambient", &c.ambient, last_cap)?,
            last_cap,
        })
    }
}

/// The guest kernel's highest capability number.
pub fn last_cap() -> anyhow::Result<u32> {
    let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .context("cannot read /proc/sys/kernel/cap_last_cap")?;
    text.trim()
        .parse()
        .with_context(|| format!("bad cap_last_cap {text:?}"))
}

/// The ids a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The home of a user found in /etc/passwd, for HOME when the spec sets none.
    pub home: Option<String>,
}

/// The spec's ids, or its `user` resolved against `passwd` and `group` (the root's files):
/// the groups that list the user, then the spec's additional ones (docker's --group-add).
pub fn ids(spec: &ProcessSpec, passwd: &str, group: &str) -> anyhow::Result<Ids> {
    let Some(user) = &spec.user else {
        return Ok(Ids {
            uid: spec.uid,
            gid: spec.gid,
            groups: spec.additional_gids.clone(),
            home: None,
        });
    };
    let r = hull_sys::users::resolve(user, passwd, group)?;
    let mut groups = r.additional_gids;
    for g in &spec.additional_gids {
        if !groups.contains(g) {
            groups.push(*g);
        }
    }
    Ok(Ids {
        uid: r.uid,
        gid: r.gid,
        groups,
        home: Some(r.home),
    })
}

/// [`ids`] with the files of the root the process runs in (absent files are empty, as docker
/// takes them: numbers still work).
pub fn ids_in(root: &Path, spec: &ProcessSpec) -> anyhow::Result<Ids> {
    let read = |f: &str| match &spec.user {
        Some(_) => std::fs::read_to_string(root.join(f)).unwrap_or_default(),
        None => String::new(),
    };
    ids(spec, &read("etc/passwd"), &read("etc/group"))
}

/// The program of `spec`'s filter, for seccomp(2); refused when the guest kernel has none.
pub fn seccomp_program(
    spec: &ProcessSpec,
) -> anyhow::Result<Option<(Vec<libc::sock_filter>, u32)>> {
    let Some(f) = &spec.seccomp else {
        return Ok(None);
    };
    let program: Vec<libc::sock_filter> = f
        .instructions()?
        .into_iter()
        .map(|(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
        .collect();
    if program.is_empty() {
        bail!("the seccomp filter has no instructions");
    }
    // SAFETY: PR_GET_SECCOMP takes no pointers; EINVAL means a kernel without CONFIG_SECCOMP.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } < 0 {
        bail!("the guest kernel has no seccomp support, and the process asks for a filter");
    }
    Ok(Some((program, f.flags)))
}

fn check(rc: libc::c_long) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Loads `program` on the calling thread.
///
/// # Safety
/// Runs between fork and execve: only system calls, on memory the caller owns.
pub unsafe fn load_seccomp(program: &[libc::sock_filter], flags: u32) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).unwrap_or(u16::MAX),
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: seccomp(2) reads the program through `prog` during the call only.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    })
}

/// Drops every capability outside the bounding set and keeps the permitted ones across the
/// coming setuid (runc's first step, while still root).
///
/// # Safety
/// Runs between fork and execve: only system calls.
pub unsafe fn before_user(m: &CapMasks) -> std::io::Result<()> {
    for cap in 0..=m.last_cap {
        if m.bounding & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments.
            check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) }.into())?;
        }
    }
    // SAFETY: as above.
    check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }.into())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets the effective, permitted and inheritable sets, then the ambient one (runc's last
/// step, after the user changed).
///
/// # Safety
/// Runs between fork and execve: only system calls, on stack memory.
pub unsafe fn after_user(m: &CapMasks) -> std::io::Result<()> {
    let half = |v: u64, hi: bool| {
        let part = if hi { v >> 32 } else { v & 0xffff_ffff };
        u32::try_from(part).unwrap_or(0)
    };
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [false, true].map(|hi| CapData {
        effective: half(m.effective, hi),
        permitted: half(m.permitted, hi),
        inheritable: half(m.inheritable, hi),
    });
    // SAFETY: capset(2) reads the header and two data structs during the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })?;
    let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL;
    // SAFETY: prctl with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) };
    check(rc.into())?;
    for cap in 0..=m.last_cap {
        if m.ambient & (1 << cap) != 0 {
            // SAFETY: as above.
            let rc =
                unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0) };
            check(rc.into())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nweb:x:1000:1000::/home/web:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nnogroup:x:65534:\nweb:x:1000:\nwheel:x:10:web\naudio:x:29:web\n";

    fn spec() -> ProcessSpec {
        ProcessSpec {
            args: vec!["id".into()],
            uid: 7,
            gid: 8,
            additional_gids: vec![29, 99],
            ..ProcessSpec::default()
        }
    }

    #[test]
    fn names_resolve_in_the_roots_files_and_numbers_pass_through() {
        let plain = ids(&spec(), PASSWD, GROUP).unwrap();
        assert_eq!((plain.uid, plain.gid, plain.groups), (7, 8, vec![29, 99]));
        assert_eq!(plain.home, None);
        let mut s = spec();
        s.user = Some("web".into());
        let web = ids(&s, PASSWD, GROUP).unwrap();
        assert_eq!((web.uid, web.gid), (1000, 1000));
        assert_eq!(
            web.groups,
            vec![10, 29, 99],
            "listed groups, then the added ones"
        );
        assert_eq!(web.home.as_deref(), Some("/home/web"));
        s.user = Some("nobody:web".into());
        let n = ids(&s, PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid), (65534, 1000));
        s.user = Some("4242:4343".into());
        let x = ids(&s, "", "").unwrap();
        assert_eq!((x.uid, x.gid), (4242, 4343));
        s.user = Some("ghost".into());
        let e = ids(&s, PASSWD, GROUP).unwrap_err().to_string();
        assert!(e.contains("unable to find user ghost"), "{e}");
    }

    #[test]
    fn capability_names_become_masks_within_the_kernels_range() {
        let c = Capabilities {
            bounding: vec!["CAP_CHOWN".into(), "CAP_KILL".into(), "CAP_BPF".into()],
            effective: vec!["CAP_KILL".into()],
            permitted: vec!["CAP_KILL".into(), "CAP_NET_BIND_SERVICE".into()],
            inheritable: vec![],
            ambient: vec!["CAP_NET_BIND_SERVICE".into()],
        };
        let m = CapMasks::new(&c, 40).unwrap();
        assert_eq!(m.bounding, 1 | 1 << 5 | 1 << 39);
        assert_eq!(m.effective, 1 << 5);
        assert_eq!(m.permitted, 1 << 5 | 1 << 10);
        assert_eq!((m.inheritable, m.ambient), (0, 1 << 10));
        // An older kernel (no CAP_BPF, 39): left out, as runc does.
        assert_eq!(CapMasks::new(&c, 38).unwrap().bounding, 1 | 1 << 5);
        let bad = Capabilities {
            effective: vec!["CAP_FLY".into()],
            ..Capabilities::default()
        };
        let e = CapMasks::new(&bad, 40).unwrap_err().to_string();
        assert!(e.contains("effective") && e.contains("CAP_FLY"), "{e}");
    }

    #[test]
    fn a_bad_seccomp_program_is_refused_before_fork() {
        let mut s = spec();
        assert!(seccomp_program(&s).unwrap().is_none());
        s.seccomp = Some(hull_vmproto::SeccompFilter {
            flags: 0,
            program: "0".into(),
        });
        assert!(seccomp_program(&s).is_err());
        s.seccomp = Some(hull_vmproto::SeccompFilter::new(0, &[]));
        assert!(seccomp_program(&s).is_err());
        s.seccomp = Some(hull_vmproto::SeccompFilter::new(
            0,
            &[(6, 0, 0, 0x7fff_0000)],
        ));
        let (prog, _) = seccomp_program(&s).unwrap().unwrap();
        assert_eq!((prog[0].code, prog[0].k), (6, 0x7fff_0000));
    }
}
