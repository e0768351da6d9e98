//! /proc/<pid>/mountinfo (proc_pid_mountinfo(5)), one line a mount:
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)       (7)   (8) (9)    (10)         (11)
//! ```
//!
//! mount id, parent id, major:minor, root, mount point, per-mount options, optional fields (zero
//! or more, ended by "-"), file system type, source, super options. The kernel escapes space, tab,
//! newline, backslash (and `#`) in the path-like fields as `\ooo`; [`unescape`] undoes that.
//!
//! Parsing borrows from the text and allocates nothing: the path accessors return borrowed
//! paths unless a field really holds an escape, so a caller on the container start path pays for
//! no more than the one read of the file it already did.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// A line that is not a mountinfo entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed mountinfo line {line:?}: {reason}")]
pub struct ParseError {
    pub line: String,
    pub reason: &'static str,
}

/// One mount, as it stands in the text: the path-like fields keep their escapes until read
/// through their accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountInfo<'a> {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// Escaped: the path inside the file system that is the root of this mount.
    pub raw_root: &'a str,
    /// Escaped: where the mount is, relative to the reading process's root.
    pub raw_mount_point: &'a str,
    /// Per-mount options, comma-separated (`rw,nosuid,relatime`).
    pub mount_options: &'a str,
    /// Optional fields, space-separated (`shared:1 master:2`); empty when there are none.
    pub optional_fields: &'a str,
    pub fs_type: &'a str,
    /// Escaped: the mount's source (device, `none`, `hull-<id>`, ...).
    pub raw_source: &'a str,
    /// Per-superblock options, comma-separated (cgroup v1 lists its controllers here).
    pub super_options: &'a str,
}

impl<'a> MountInfo<'a> {
    /// Parses one line (without its newline).
    pub fn parse(line: &'a str) -> Result<Self, ParseError> {
        Self::fields(line).map_err(|reason| ParseError {
            line: line.to_string(),
            reason,
        })
    }

    fn fields(line: &'a str) -> Result<Self, &'static str> {
        let (pre, post) = line.split_once(" - ").ok_or("no \" - \" separator")?;
        let mut f = pre.splitn(7, ' ');
        let mut next = |what| f.next().filter(|s| !s.is_empty()).ok_or(what);
        let mount_id = next("no mount id")?;
        let parent_id = next("no parent id")?;
        let dev = next("no major:minor")?;
        let raw_root = next("no root")?;
        let raw_mount_point = next("no mount point")?;
        let mount_options = next("no mount options")?;
        let optional_fields = f.next().unwrap_or("");
        let (major, minor) = dev.split_once(':').ok_or("bad major:minor")?;
        let mut g = post.splitn(3, ' ');
        let fs_type = g.next().filter(|s| !s.is_empty());
        // The source may be empty (`mount -t tmpfs "" /x`), leaving two spaces in a row.
        let (Some(fs_type), Some(raw_source), Some(super_options)) = (fs_type, g.next(), g.next())
        else {
            return Err("fewer than three fields after \" - \"");
        };
        Ok(Self {
            mount_id: number(mount_id).ok_or("bad mount id")?,
            parent_id: number(parent_id).ok_or("bad parent id")?,
            major: number(major).ok_or("bad major:minor")?,
            minor: number(minor).ok_or("bad major:minor")?,
            raw_root,
            raw_mount_point,
            mount_options,
            optional_fields,
            fs_type,
            raw_source,
            super_options,
        })
    }

    /// The root of the mount inside its file system (a cgroup path for cgroup mounts).
    pub fn root(&self) -> Cow<'a, Path> {
        unescape_path(self.raw_root)
    }

    /// The mount point.
    pub fn mount_point(&self) -> Cow<'a, Path> {
        unescape_path(self.raw_mount_point)
    }

    /// The source.
    pub fn source(&self) -> Cow<'a, OsStr> {
        match unescape(self.raw_source) {
            Cow::Borrowed(b) => Cow::Borrowed(OsStr::from_bytes(b)),
            Cow::Owned(v) => Cow::Owned(OsString::from_vec(v)),
        }
    }

    /// The per-mount options one by one.
    pub fn mount_opts(&self) -> impl Iterator<Item = &'a str> {
        self.mount_options.split(',')
    }

    /// The optional fields one by one (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`).
    pub fn optional(&self) -> impl Iterator<Item = &'a str> {
        self.optional_fields.split(' ').filter(|s| !s.is_empty())
    }

    /// The super options one by one.
    pub fn super_opts(&self) -> impl Iterator<Item = &'a str> {
        self.super_options.split(',')
    }
}

/// Every line of `text` (a whole mountinfo file), parsed in order.
pub fn parse(text: &str) -> impl Iterator<Item = Result<MountInfo<'_>, ParseError>> {
    text.lines().map(MountInfo::parse)
}

/// The mountinfo of the calling process, as text to [`parse`].
pub fn read_self() -> std::io::Result<String> {
    crate::procfs::read_pseudo("/proc/self/mountinfo")
}

/// Undoes the kernel's `\ooo` escapes (three octal digits, at most `\377`); anything else,
/// including a lone or short backslash sequence, stays as it is. Borrows when there is none.
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'\\') {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(v) = octal_escape(&b[i..]) {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

fn number(s: &str) -> Option<u32> {
    s.parse().ok()
}

/// The byte `\ooo` at the start of `b` stands for.
fn octal_escape(b: &[u8]) -> Option<u8> {
    let [b'\\', d @ ..] = b.get(..4)? else {
        return None;
    };
    let mut v: u16 = 0;
    for c in d {
        if !(b'0'..=b'7').contains(c) {
            return None;
        }
        v = v * 8 + u16::from(c - b'0');
    }
    u8::try_from(v).ok()
}

fn unescape_path(s: &str) -> Cow<'_, Path> {
    match unescape(s) {
        Cow::Borrowed(b) => Cow::Borrowed(Path::new(OsStr::from_bytes(b))),
        Cow::Owned(v) => Cow::Owned(OsString::from_vec(v).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 propagate_from:2 - ext3 /dev/root rw,errors=continue
90 80 0:32 /x /mnt/memory\\040copy rw,relatime - cgroup cgroup rw,memory
91 22 0:50 / /tmp/a\\011b\\012c\\134d\\043 rw - tmpfs  rw,size=0k
";

    #[test]
    fn every_field_is_typed() {
        let e = parse(TEXT).nth(1).unwrap().unwrap();
        assert_eq!((e.mount_id, e.parent_id, e.major, e.minor), (36, 35, 98, 0));
        assert_eq!(e.root(), Path::new("/mnt1"));
        assert_eq!(e.mount_point(), Path::new("/mnt2"));
        assert_eq!(e.mount_opts().collect::<Vec<_>>(), ["rw", "noatime"]);
        assert_eq!(
            e.optional().collect::<Vec<_>>(),
            ["master:1", "propagate_from:2"]
        );
        assert_eq!(e.fs_type, "ext3");
        assert_eq!(e.source(), OsStr::new("/dev/root"));
        assert_eq!(
            e.super_opts().collect::<Vec<_>>(),
            ["rw", "errors=continue"]
        );
    }

    #[test]
    fn optional_fields_may_be_absent_or_single() {
        let all: Vec<_> = parse(TEXT).map(Result::unwrap).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].optional().collect::<Vec<_>>(), ["shared:1"]);
        assert_eq!(all[2].optional().count(), 0);
        assert_eq!(all[2].optional_fields, "");
        assert_eq!(all[2].fs_type, "cgroup");
    }

    #[test]
    fn escapes_are_decoded_and_plain_fields_borrowed() {
        let all: Vec<_> = parse(TEXT).map(Result::unwrap).collect();
        assert!(matches!(all[0].mount_point(), Cow::Borrowed(_)));
        assert_eq!(all[2].mount_point(), Path::new("/mnt/memory copy"));
        assert_eq!(all[2].root(), Path::new("/x"));
        assert_eq!(all[3].mount_point(), Path::new("/tmp/a\tb\nc\\d#"));
        // An empty source leaves two spaces in a row.
        assert_eq!(all[3].source(), OsStr::new(""));
        assert_eq!(all[3].super_options, "rw,size=0k");
    }

    #[test]
    fn non_utf8_bytes_survive() {
        let e = MountInfo::parse("1 0 0:1 / /a\\377 rw - tmpfs x rw").unwrap();
        assert_eq!(e.mount_point().as_os_str().as_bytes(), b"/a\xff");
    }

    #[test]
    fn what_is_not_an_escape_stays() {
        assert_eq!(&*unescape("a\\04"), b"a\\04");
        assert_eq!(&*unescape("a\\0x9b"), b"a\\0x9b");
        assert_eq!(&*unescape("a\\400"), b"a\\400");
        assert_eq!(&*unescape("\\"), b"\\");
        assert_eq!(&*unescape("\\+12"), b"\\+12");
        assert_eq!(&*unescape("\\134040"), b"\\040");
    }

    #[test]
    fn malformed_lines_are_errors() {
        for (line, reason) in [
            ("", "no \" - \" separator"),
            (
                "22 1 8:1 / / rw shared:1 ext4 /dev/sda1 rw",
                "no \" - \" separator",
            ),
            ("22 1 8:1 / / - ext4 /dev/sda1 rw", "no mount options"),
            ("22 1 8:1 / - ext4 /dev/sda1 rw", "no mount point"),
            ("x 1 8:1 / / rw - ext4 /dev/sda1 rw", "bad mount id"),
            ("22 -1 8:1 / / rw - ext4 /dev/sda1 rw", "bad parent id"),
            ("22 1 8-1 / / rw - ext4 /dev/sda1 rw", "bad major:minor"),
            ("22 1 8:x / / rw - ext4 /dev/sda1 rw", "bad major:minor"),
            (
                "22 1 8:1 / / rw - ext4 /dev/sda1",
                "fewer than three fields after \" - \"",
            ),
            (
                "22 1 8:1 / / rw -  /dev/sda1 rw",
                "fewer than three fields after \" - \"",
            ),
        ] {
            let e = MountInfo::parse(line).unwrap_err();
            assert_eq!(e.reason, reason, "{line:?}");
            assert_eq!(e.line, line);
        }
        let e = MountInfo::parse("bad").unwrap_err().to_string();
        assert_eq!(e, "malformed mountinfo line \"bad\": no \" - \" separator");
        let mixed = format!("{TEXT}garbage\n");
        let results: Vec<_> = parse(&mixed).collect();
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
        assert!(results[4].is_err());
    }

    #[test]
    fn the_kernels_own_text_parses() {
        let text = read_self().unwrap();
        let all: Vec<_> = parse(&text).map(Result::unwrap).collect();
        assert!(!all.is_empty());
    }
}
