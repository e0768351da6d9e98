//! `hull`, the engine people type: images, containers, networks.

mod cli;

use clap::Parser;

/// docker's exit status for an error of the engine itself (and for bad flags).
const EXIT_ENGINE: i32 = 125;

fn main() {
    // As other command-line tools: `hull ps | head -1` ends hull by SIGPIPE rather than a panic
    // in println! (Rust's start-up code ignores SIGPIPE). Monitors ignore it again.
    // SAFETY: sets a signal disposition to SIG_DFL before any thread or handler exists.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            // One line, as docker's "unknown flag": clap's usage block follows its first line.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!("hull: {}", first.trim_start_matches("error: "));
            exit(EXIT_ENGINE);
        }
    };
    match cli::run(args) {
        Ok(code) => exit(code),
        Err(err) => {
            eprintln!("hull: {err:#}");
            let engine = err
                .chain()
                .find_map(|e| e.downcast_ref::<hull_engine::EngineError>());
            exit(engine.map_or(1, hull_engine::EngineError::exit_code));
        }
    }
}

#[allow(clippy::exit)] // the status is the command's result; nothing is left to drop
fn exit(code: i32) -> ! {
    std::process::exit(code)
}
