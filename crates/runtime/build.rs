//! Links `hull-runtime` as a position-dependent executable: its relocations are then resolved at
//! link time instead of by the dynamic loader at every start, which otherwise writes (and so
//! privately copies) every page of relocated data. That is most of the runtime's resident memory
//! on the container start path, which is measured against crun.
fn main() {
    println!("cargo:rustc-link-arg-bin=hull-runtime=-no-pie");
}
