//! `hull`, the engine people type: images, containers, networks.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        eprintln!("hull: {err:#}");
        std::process::exit(1);
    }
}
