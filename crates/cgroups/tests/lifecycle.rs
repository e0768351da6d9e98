//! Create / persist / reload / update / list / remove, as the runtime uses them across commands.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{id, res, skip_unless_root, CgGuard, Sh};
use hull_cgroups::{Cgroup, Layout};
use serde_json::json;

#[test]
fn persisted_cgroup_is_usable_from_another_command() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let cg = CgGuard::create("persist", Some(&res(json!({"pids": {"limit": 50}}))));
    let saved = serde_json::to_string(&cg.0).unwrap();
    let again: Cgroup = serde_json::from_str(&saved).unwrap();
    let mut sh = Sh::spawn("sleep 100");
    again.add_process(sh.pid()).unwrap();
    assert_eq!(again.pids().unwrap(), vec![sh.pid()]);
    assert_eq!(cg.0.pids().unwrap(), vec![sh.pid()]);
    // Every hierarchy holds it.
    for h in again.hierarchies() {
        let procs = std::fs::read_to_string(h.path.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == sh.pid().to_string()),
            "{}",
            h.path.display()
        );
    }
    sh.go();
    drop(sh);
    common::kill_all(&again);
    again.remove().unwrap();
    common::assert_gone(&again);
    // Idempotent, from either copy.
    again.remove().unwrap();
    cg.finish();
}

#[test]
fn hierarchies_cover_every_mount_and_match_layout() {
    if skip_unless_root() {
        return;
    }
    let cg = CgGuard::create("hier", None);
    let hs = cg.0.hierarchies();
    let layout = hull_cgroups::detect_layout().unwrap();
    assert_eq!(cg.0.layout(), layout);
    let v2 = hs.iter().filter(|h| h.version == 2).count();
    let v1 = hs.iter().filter(|h| h.version == 1).count();
    match layout {
        Layout::Unified => assert_eq!((v1, v2), (0, 1)),
        Layout::Hybrid => assert!(v1 > 0 && v2 == 1),
        Layout::Legacy => assert!(v1 > 0 && v2 == 0),
    }
    for h in &hs {
        assert!(h.path.is_dir(), "{}", h.path.display());
        assert!(h.path.starts_with(&h.mount_point));
        assert!(h.path.ends_with(format!("hull-{}", id("hier"))));
        assert_eq!(h.version == 2, h.controllers.is_empty(), "{h:?}");
    }
    cg.finish();
}

#[test]
fn absolute_and_relative_paths_are_placed_as_runc_does() {
    if skip_unless_root() {
        return;
    }
    // Only computed here: creating under a hierarchy root would leave this process's own cgroup.
    let abs = Cgroup::new(Some(Path::new("/hull-cgtest-abs/inner")), "x").unwrap();
    for h in abs.hierarchies() {
        assert_eq!(h.path, h.mount_point.join("hull-cgtest-abs/inner"));
    }
    let rel = Cgroup::new(Some(Path::new("hull-cgtest-rel")), "x").unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for h in rel.hierarchies() {
        let line = own
            .lines()
            .find(|l| {
                let c = l.split(':').nth(1).unwrap();
                let mut cs: Vec<&str> = c.split(',').filter(|s| !s.is_empty()).collect();
                cs.sort_unstable();
                cs == h.controllers.iter().map(String::as_str).collect::<Vec<_>>()
            })
            .unwrap();
        let mut mine = Path::new(line.splitn(3, ':').nth(2).unwrap()).to_path_buf();
        if rel.layout() == Layout::Unified {
            // runc's rule on v2: under the parent of our own cgroup, which holds this process.
            mine = mine.parent().map_or(mine.clone(), Path::to_path_buf);
        }
        let mine = mine.strip_prefix("/").unwrap();
        assert_eq!(
            h.path,
            h.mount_point.join(mine).join("hull-cgtest-rel"),
            "{line}"
        );
    }
}

#[test]
fn update_changes_limits() {
    if skip_unless_root() {
        return;
    }
    let cg = CgGuard::create(
        "update",
        Some(&res(
            json!({"pids": {"limit": 10}, "memory": {"limit": 1 << 26}}),
        )),
    );
    assert_eq!(cg.0.stats().unwrap().pids.limit, 10);
    cg.0.update(&res(
        json!({"pids": {"limit": 20}, "memory": {"limit": 1 << 27, "swap": 1 << 28}}),
    ))
    .unwrap();
    let st = cg.0.stats().unwrap();
    assert_eq!(st.pids.limit, 20);
    assert_eq!(st.memory.usage.limit, 1 << 27);
    let e =
        cg.0.update(&res(json!({"pids": {"limit": -9}})))
            .unwrap_err();
    assert!(
        e.to_string().starts_with("linux.resources.pids.limit"),
        "{e}"
    );
    assert_eq!(
        cg.0.stats().unwrap().pids.limit,
        20,
        "a rejected update changed nothing"
    );
    cg.finish();
}

#[test]
fn stats_serialize_in_runc_shape() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let cg = CgGuard::create("stats", Some(&res(json!({"pids": {"limit": 7}}))));
    let mut sh = Sh::spawn("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done; read x");
    cg.0.add_process(sh.pid()).unwrap();
    sh.go();
    assert_eq!(sh.line(), "done");
    let v = serde_json::to_value(cg.0.stats().unwrap()).unwrap();
    assert!(v["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{v}");
    assert!(v["cpu"]["usage"]["user"].is_u64(), "{v}");
    assert_eq!(v["pids"]["current"], 1, "{v}");
    assert_eq!(v["pids"]["limit"], 7, "{v}");
    assert!(v["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{v}");
    assert!(v["memory"]["raw"].is_object(), "{v}");
    assert!(v["hugetlb"].is_object(), "{v}");
    assert!(v["blkio"].is_object(), "{v}");
    if hull_cgroups::detect_layout().unwrap() != Layout::Unified {
        let percpu = v["cpu"]["usage"]["percpu"].as_array().unwrap();
        assert_eq!(
            percpu.len(),
            std::thread::available_parallelism().unwrap().get()
        );
    }
    drop(sh);
    cg.finish();
}

#[test]
fn remove_waits_bounded_while_busy_then_succeeds() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let cg = CgGuard::create("busy", None);
    let sh = Sh::spawn("sleep 100");
    cg.0.add_process(sh.pid()).unwrap();
    let t0 = Instant::now();
    let e =
        cg.0.remove()
            .expect_err("a cgroup with a live task cannot be removed");
    assert!(t0.elapsed() < Duration::from_secs(3), "retry is bounded");
    assert!(e.to_string().contains("cannot remove cgroup"), "{e}");
    drop(sh);
    cg.finish();
}

#[test]
fn parent_another_create_just_made_gets_cpus_and_mems() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let parent_name = format!("{}{}-parent", common::PREFIX, std::process::id());
    let rel = format!("{parent_name}/child");
    let mut cg = Cgroup::new(Some(Path::new(&rel)), &id("parent")).unwrap();
    // As a parallel create leaves it an instant after its mkdir: there, but on v1 with no cpus
    // or mems yet.
    let parents: Vec<_> = cg
        .hierarchies()
        .iter()
        .map(|h| h.path.parent().unwrap().to_path_buf())
        .collect();
    for p in &parents {
        std::fs::create_dir(p).unwrap();
    }
    let result = cg.create(None);
    let placed = result.as_ref().ok().map(|_| {
        let mut sh = Sh::spawn("exit 0");
        let placed = cg.add_process(sh.pid());
        sh.go();
        sh.wait();
        placed
    });
    common::kill_all(&cg);
    let _ = cg.remove();
    for p in &parents {
        let _ = std::fs::remove_dir(p);
    }
    result.unwrap();
    placed.unwrap().unwrap();
    for p in &parents {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    common::assert_gone(&cg);
}

#[test]
fn a_claim_saved_before_create_removes_what_create_made_and_no_more() {
    if skip_unless_root() {
        return;
    }
    let outer_path = format!("{}{}-claim", common::PREFIX, std::process::id());
    let mut outer = Cgroup::new(Some(Path::new(&outer_path)), &id("claim")).unwrap();
    outer.create(None).unwrap();
    let outer = CgGuard(outer);
    let inner_path = Path::new(&outer_path).join("a/b");
    let mut inner = Cgroup::new(Some(&inner_path), &id("claim")).unwrap();
    inner.claim();
    // What a runtime records before creating, and finds again after it was killed mid-create.
    let saved = serde_json::to_string(&inner).unwrap();
    inner.create(None).unwrap();
    let found: Cgroup = serde_json::from_str(&saved).unwrap();
    found.remove().unwrap();
    common::assert_gone(&inner);
    for h in outer.0.hierarchies() {
        assert!(
            h.path.join("a").symlink_metadata().is_err(),
            "{}",
            h.path.display()
        );
        assert!(h.path.is_dir(), "{} was not claimed", h.path.display());
    }
    outer.finish();
}
