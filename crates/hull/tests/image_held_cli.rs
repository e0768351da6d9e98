//! `rmi` of an image a container uses, as docker's: refused without -f; with -f only its
//! names go, the image stays (unnamed) while the container lives, and its id removes it after.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

#[test]
fn rmi_of_an_image_a_container_uses() {
    let mut r = root!("rmiheld");
    let id = r
        .ok(&["create", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    r.ids.push(id.clone());
    let image = r.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    let o = r.hull(&["rmi", "busybox"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("must be forced") && err.contains(&id), "{err}");
    assert_eq!(
        r.ok(&["rmi", "-f", "busybox"]),
        "Untagged: busybox:latest\n"
    );
    let left = r.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}} {{.ID}}",
    ]);
    assert_eq!(
        left,
        format!("<none> {image}\n"),
        "the image stays for its container"
    );
    r.ok(&["rm", &id]);
    assert_eq!(r.ok(&["rmi", &image[7..19]]), format!("Deleted: {image}\n"));
    assert_eq!(r.ok(&["images", "-q"]), "");
    r.assert_clean();
}
