//! The commands about a container's files: `cp` (both ways, `-` for a tar stream), `diff`
//! (its changes to its image) and `commit` (those changes as a new image).

use std::io::Write;
use std::path::Path;

use clap::Subcommand;
use hull_engine::{CommitOptions, CopyOptions, Engine, HostEnd};

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Copy files between a container and the host: `cp SRC CTR:PATH` or `cp CTR:PATH DEST`
    /// (`-` for a tar stream on stdin or stdout)
    Cp {
        /// Archive mode: keep the source's uid/gid
        #[arg(short, long)]
        archive: bool,
        /// Follow a symlink the source path names
        #[arg(short = 'L', long)]
        follow_link: bool,
        /// A host path, `-`, or CONTAINER:PATH
        src: String,
        /// A host path, `-`, or CONTAINER:PATH
        dest: String,
    },
    /// List the files a container added (A), changed (C) or deleted (D)
    Diff { container: String },
    /// Create a new image from a container's changes
    Commit {
        /// Commit message
        #[arg(short, long)]
        message: Option<String>,
        /// Author (e.g. "Jane Doe <jane@example.com>")
        #[arg(short, long)]
        author: Option<String>,
        /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE,
        /// LABEL, STOPSIGNAL, USER, WORKDIR)
        #[arg(short, long = "change")]
        change: Vec<String>,
        /// Pause the container while committing
        #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
            require_equals = true, default_missing_value = "true")]
        pause: bool,
        container: String,
        /// REPOSITORY[:TAG] of the new image
        name: Option<String>,
    },
}

/// Runs a file command; its exit status.
pub fn run(root: &Path, cmd: FilesCommand) -> anyhow::Result<i32> {
    match cmd {
        FilesCommand::Cp {
            archive,
            follow_link,
            src,
            dest,
        } => {
            let opts = CopyOptions {
                archive,
                follow: follow_link,
            };
            // docker's cp fails with status 1, whatever went wrong.
            if let Err(e) = cp(root, &src, &dest, opts) {
                eprintln!("hull: {e:#}");
                return Ok(1);
            }
            Ok(0)
        }
        FilesCommand::Diff { container } => {
            let engine = super::engine(root, true)?;
            let mut out = std::io::stdout().lock();
            for change in engine.diff(&container)? {
                writeln!(out, "{change}")?;
            }
            Ok(0)
        }
        FilesCommand::Commit {
            message,
            author,
            change,
            pause,
            container,
            name,
        } => {
            let engine = Engine::open(root)?;
            let id = engine.commit(
                &container,
                &CommitOptions {
                    name,
                    message,
                    author,
                    changes: change,
                    pause,
                },
            )?;
            println!("{id}");
            Ok(0)
        }
    }
}

/// A `cp` argument: a host path (`-` included) or a container's path.
#[derive(Debug, PartialEq, Eq)]
enum End<'a> {
    Host(&'a str),
    Container(&'a str, &'a str),
}

/// As docker splits them: an absolute or `.`-relative path is the host's, else the part before
/// the first `:` names a container.
fn end(arg: &str) -> End<'_> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return End::Host(arg);
    }
    match arg.split_once(':') {
        Some((ctr, path)) if !ctr.is_empty() => End::Container(ctr, path),
        _ => End::Host(arg),
    }
}

fn host_end(path: &str) -> HostEnd<'_> {
    if path == "-" {
        HostEnd::Stream
    } else {
        HostEnd::Path(Path::new(path))
    }
}

fn cp(root: &Path, src: &str, dest: &str, opts: CopyOptions) -> anyhow::Result<()> {
    // Either way the container must exist: a root never used has none, and stays unmade.
    let engine = super::engine(root, true)?;
    match (end(src), end(dest)) {
        (End::Host(src), End::Container(ctr, path)) => {
            let mut stdin = std::io::stdin();
            let warning = engine.copy_into(ctr, path, &host_end(src), opts, &mut stdin)?;
            warn(warning);
            Ok(())
        }
        (End::Container(ctr, path), End::Host(dest)) => {
            let mut stdout = std::io::stdout().lock();
            let warning = engine.copy_out(ctr, path, &host_end(dest), opts, &mut stdout)?;
            stdout.flush()?;
            warn(warning);
            Ok(())
        }
        (End::Container(..), End::Container(..)) => {
            anyhow::bail!("copying between containers is not supported")
        }
        (End::Host(_), End::Host(_)) => {
            anyhow::bail!("must specify at least one container source")
        }
    }
}

fn warn(warning: Option<String>) {
    if let Some(w) = warning {
        eprintln!("hull: warning: {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_docker() {
        assert_eq!(end("c1:/etc"), End::Container("c1", "/etc"));
        assert_eq!(end("c1:etc/x:y"), End::Container("c1", "etc/x:y"));
        assert_eq!(end("/tmp/a:b"), End::Host("/tmp/a:b"));
        assert_eq!(end("./a:b"), End::Host("./a:b"));
        assert_eq!(end("-"), End::Host("-"));
        assert_eq!(end("file"), End::Host("file"));
    }
}
