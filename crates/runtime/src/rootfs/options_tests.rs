//! Mount option parsing without root: flags, propagation, recursive attributes and data.

use super::*;

fn opts(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn flags_propagation_and_data() {
    let p = parse(
        &opts(&[
            "nosuid",
            "noexec",
            "mode=755",
            "size=65536k",
            "rslave",
            "ro",
        ]),
        "tmpfs",
    )
    .unwrap();
    assert_eq!(
        p.flags,
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY
    );
    assert_eq!(p.data, vec!["mode=755", "size=65536k"]);
    assert_eq!(p.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
}

#[test]
fn later_option_wins() {
    let p = parse(&opts(&["ro", "rw"]), "bind").unwrap();
    assert!(!p.flags.contains(MsFlags::MS_RDONLY));
    assert!(p.cleared.contains(MsFlags::MS_RDONLY));
}

#[test]
fn unknown_option_named() {
    let e = parse(&opts(&["nosuid", "bogus"]), "tmpfs").unwrap_err();
    assert!(e.contains("\"bogus\""), "{e}");
    assert!(parse(&opts(&["size=1m"]), "sysfs").is_err());
    assert!(parse(&opts(&["lowerdir=/a"]), "overlay").is_ok());
}

#[test]
fn recursive_attrs() {
    let p = parse(&opts(&["rbind", "rro", "rnoatime", "rnosuid"]), "bind").unwrap();
    assert!(p.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC));
    assert_eq!(
        p.rec_set,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME | MOUNT_ATTR_NOSUID
    );
    assert_eq!(p.rec_clr, MOUNT_ATTR_ATIME_MASK);
    assert_eq!(parse(&opts(&["ridmap"]), "bind").unwrap().idmap, Some(true));
    let p = parse(&opts(&["rnoatime", "rstrictatime"]), "bind").unwrap();
    assert_eq!(p.rec_set, MOUNT_ATTR_STRICTATIME);
}

#[test]
fn bind_attr_keeps_unmentioned_flags() {
    let p = parse(&opts(&["rbind", "ro", "dev"]), "bind").unwrap();
    let a = bind_attr(p.flags, p.cleared);
    assert_eq!(a.attr_set, MOUNT_ATTR_RDONLY);
    assert_eq!(a.attr_clr, MOUNT_ATTR_NODEV);
    let a = bind_attr(MsFlags::MS_NOATIME, MsFlags::empty());
    assert_eq!(
        (a.attr_set, a.attr_clr),
        (MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME_MASK)
    );
}

#[test]
fn every_advertised_option_parses() {
    for name in supported_mount_options() {
        let fstype = if name == "tmpcopyup" { "tmpfs" } else { "bind" };
        assert!(parse(&opts(&[name]), fstype).is_ok(), "{name}");
    }
    // Data options and "remount" are not in the advertised list.
    assert!(!supported_mount_options().contains(&"remount"));
    assert!(!supported_mount_options().contains(&"size"));
}

#[test]
fn clearing_options_undo_setting_ones() {
    let p = parse(
        &opts(&[
            "nosuid", "nodev", "noexec", "noatime", "suid", "dev", "atime",
        ]),
        "tmpfs",
    )
    .unwrap();
    assert_eq!(p.flags, MsFlags::MS_NOEXEC);
    assert_eq!(
        p.cleared,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME
    );
    // And the other way round: the last word wins.
    let p = parse(&opts(&["rw", "ro"]), "bind").unwrap();
    assert!(p.flags.contains(MsFlags::MS_RDONLY));
    assert!(!p.cleared.contains(MsFlags::MS_RDONLY));
    let p = parse(&opts(&["defaults"]), "proc").unwrap();
    assert_eq!(p, ParsedOptions::default());
}

#[test]
fn propagation_changes_keep_their_order() {
    let p = parse(&opts(&["shared", "rprivate", "unbindable"]), "bind").unwrap();
    assert_eq!(
        p.propagation,
        [
            MsFlags::MS_SHARED,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            MsFlags::MS_UNBINDABLE
        ]
    );
    assert!(p.flags.is_empty());
    for (v, want) in [
        ("private", MsFlags::MS_PRIVATE),
        ("rslave", MsFlags::MS_SLAVE | MsFlags::MS_REC),
        ("runbindable", MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        ("rshared", MsFlags::MS_SHARED | MsFlags::MS_REC),
    ] {
        assert_eq!(root_propagation(v), Some(want), "{v}");
    }
    for v in ["", "rbind", "Private", "recursive"] {
        assert_eq!(root_propagation(v), None, "{v}");
    }
}

#[test]
fn recursive_clears() {
    let p = parse(&opts(&["rro", "rrw", "rnosuid"]), "bind").unwrap();
    assert_eq!(p.rec_set, MOUNT_ATTR_NOSUID);
    assert_eq!(p.rec_clr, MOUNT_ATTR_RDONLY);
    let p = parse(&opts(&["rnoexec", "rexec"]), "bind").unwrap();
    assert_eq!((p.rec_set, p.rec_clr), (0, MOUNT_ATTR_NOEXEC));
    // Clearing one atime mode clears the whole atime field.
    let p = parse(&opts(&["ratime"]), "bind").unwrap();
    assert_eq!((p.rec_set, p.rec_clr), (0, MOUNT_ATTR_ATIME_MASK));
    let p = parse(&opts(&["rnosymfollow", "rnodiratime"]), "bind").unwrap();
    assert_eq!(p.rec_set, MOUNT_ATTR_NOSYMFOLLOW | MOUNT_ATTR_NODIRATIME);
}

#[test]
fn data_options_per_file_system() {
    let ok = [
        (
            "devpts",
            &["newinstance", "ptmxmode=0666", "mode=620", "gid=5"][..],
        ),
        ("proc", &["hidepid=2", "subset=pid"]),
        ("cgroup2", &["nsdelegate", "memory_recursiveprot"]),
        (
            "tmpfs",
            &["size=64m", "nr_inodes=1k", "huge=never", "noswap"],
        ),
        ("overlay", &["lowerdir=/a:/b", "userxattr", "volatile"]),
        ("ext4", &["errors=remount-ro"]),
        ("bind", &["mode=755", "size=1m"]),
    ];
    for (fstype, words) in ok {
        let raw: Vec<String> = words.iter().map(|w| (*w).to_string()).collect();
        let p = parse(&raw, fstype).unwrap_or_else(|e| panic!("{fstype}: {e}"));
        assert_eq!(p.data, raw, "{fstype}");
        assert!(p.flags.is_empty());
    }
    let bad = [
        ("mqueue", "size=1"),
        ("proc", "size=1"),
        ("devpts", "hidepid=2"),
        ("bind", "bogus"),
        ("cgroup", "nsdelegate"),
        ("overlay", "bogus"),
    ];
    for (fstype, word) in bad {
        let e = parse(&opts(&[word]), fstype).unwrap_err();
        assert!(
            e.contains(&format!("{word:?}")) && e.contains(fstype),
            "{e}"
        );
    }
}

#[test]
fn remount_and_extensions() {
    let e = parse(&opts(&["remount"]), "tmpfs").unwrap_err();
    assert!(e.contains("not supported"), "{e}");
    let p = parse(&opts(&["tmpcopyup", "idmap"]), "tmpfs").unwrap();
    assert!(p.tmpcopyup);
    assert_eq!(p.idmap, Some(false));
    // The later of idmap/ridmap wins.
    assert_eq!(
        parse(&opts(&["ridmap", "idmap"]), "bind").unwrap().idmap,
        Some(false)
    );
}

#[test]
fn bind_attr_atime_modes_and_symlinks() {
    let a = bind_attr(MsFlags::MS_STRICTATIME, MsFlags::empty());
    assert_eq!(
        (a.attr_set, a.attr_clr),
        (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK)
    );
    // "norelatime" names the atime field without picking a mode: relatime, the default.
    let p = parse(&opts(&["bind", "norelatime"]), "bind").unwrap();
    let a = bind_attr(p.flags, p.cleared);
    assert_eq!(
        (a.attr_set, a.attr_clr),
        (MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME_MASK)
    );
    let p = parse(&opts(&["bind", "nosymfollow", "nosuid", "noexec"]), "bind").unwrap();
    let a = bind_attr(p.flags, p.cleared);
    assert_eq!(
        a.attr_set,
        MOUNT_ATTR_NOSYMFOLLOW | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC
    );
    assert_eq!(a.attr_clr, 0);
    // Nothing mentioned: nothing changed.
    let a = bind_attr(MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty());
    assert_eq!((a.attr_set, a.attr_clr), (0, 0));
}

#[test]
fn superblock_flags_are_the_file_system_ones() {
    let p = parse(
        &opts(&[
            "sync", "dirsync", "mand", "iversion", "lazytime", "acl", "silent",
        ]),
        "tmpfs",
    )
    .unwrap();
    assert_eq!(p.flags, SUPERBLOCK_FLAGS);
    let p = parse(
        &opts(&["ro", "nosuid", "nodev", "noexec", "noatime", "rbind"]),
        "bind",
    )
    .unwrap();
    assert!(!p.flags.intersects(SUPERBLOCK_FLAGS));
}
