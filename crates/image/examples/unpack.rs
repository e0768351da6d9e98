//! Unpacks one layer tar into a dir with hull's safe unpacker (for benches/image-unpack.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, tar, dest] = args.as_slice() else {
        eprintln!("usage: unpack LAYER.tar DEST_DIR");
        std::process::exit(2);
    };
    let f = std::fs::File::open(tar).expect("opening the layer");
    std::fs::create_dir_all(dest).expect("creating the destination");
    let opts = hull_image::unpack::UnpackOptions::default();
    match hull_image::unpack::unpack_file(&f, std::path::Path::new(dest), &opts) {
        Ok(s) => eprintln!("{} entries, diff id {}", s.entries, s.diff_id),
        Err(e) => {
            eprintln!("unpack: {e}");
            std::process::exit(1);
        }
    }
}
