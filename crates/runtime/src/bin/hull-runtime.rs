//! `hull-runtime`: the OCI runtime's command line, runc's commands and flags.

#[path = "../cli/mod.rs"]
mod cli;

fn main() {
    std::process::exit(cli::main());
}
