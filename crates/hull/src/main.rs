//! `hull`, the engine people type: images, containers, networks.

mod cli;

/// docker's exit status for an error of the engine itself (and for bad flags).
const EXIT_ENGINE: i32 = 125;

fn main() {
    quiet_on_closed_stdout();
    let args = match cli::parse() {
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
            let engine = err
                .chain()
                .find_map(|e| e.downcast_ref::<hull_engine::EngineError>());
            if engine.is_some_and(hull_engine::EngineError::is_broken_pipe) {
                exit(128 + nix::libc::SIGPIPE);
            }
            eprintln!("hull: {err:#}");
            exit(engine.map_or(1, hull_engine::EngineError::exit_code));
        }
    }
}

/// `hull ps | head -1`: once the reader is gone, println! panics with EPIPE (Rust ignores
/// SIGPIPE, which hull keeps: its own pipes, in cp or an image unpack, must fail with an error,
/// not kill it). Such a panic ends hull as a shell tool ends, quietly, with 128 + SIGPIPE.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            exit(128 + nix::libc::SIGPIPE);
        }
        default(info);
    }));
}

#[allow(clippy::exit)] // the status is the command's result; nothing is left to drop
fn exit(code: i32) -> ! {
    std::process::exit(code)
}
