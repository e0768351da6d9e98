//! Sets up N container root filesystems of one image (image lookup, upper + work + merged
//! dirs, overlay mount), times each setup and the mount alone, prints the medians, then
//! unmounts and removes them (after a line on stdin with `keep`) (benches/image-rootfs.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::time::Instant;

use hull_image::overlay::{self, MountApi, Overlay};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, image, n, dir, keep] = args.as_slice() else {
        eprintln!("usage: rootfs ROOT IMAGE COUNT CONTAINERS_DIR keep|remove");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("COUNT");
    let store = hull_image::ImageStore::open(&PathBuf::from(root)).expect("opening the store");
    let mut times = Vec::new();
    let mut mounts = Vec::new();
    let mut targets = Vec::new();
    for i in 0..n {
        let t0 = Instant::now();
        let rootfs = store.rootfs_for(image).expect("image");
        let base = PathBuf::from(dir).join(format!("hullbench{i}"));
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir_all(base.join(d)).expect("container dirs");
        }
        let ov = Overlay {
            lowers: rootfs.lowers,
            upper: Some((base.join("upper"), base.join("work"))),
            source: format!("hull-bench-{i}"),
            target: base.join("merged"),
            readonly: false,
            inert: false,
            volatile: false,
        };
        let t1 = Instant::now();
        overlay::mount(&ov, MountApi::Auto).expect("mount");
        mounts.push(t1.elapsed().as_secs_f64() * 1000.0);
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        targets.push(base);
    }
    times.sort_by(f64::total_cmp);
    mounts.sort_by(f64::total_cmp);
    println!("median_ms {:.3}", times[times.len() / 2]);
    println!("min_ms {:.3}", times[0]);
    // The overlay mount alone; the rest is the lookup and creating upper/work/merged dirs.
    println!("mount_median_ms {:.3}", mounts[mounts.len() / 2]);
    if keep == "keep" {
        // Let the caller measure disk use while mounted, then unmount on a line from stdin.
        println!("mounted");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    for t in targets {
        overlay::unmount(&t.join("merged")).expect("unmount");
        std::fs::remove_dir_all(&t).expect("cleanup");
    }
}
