//! Image commands: pull, push, images, rmi, tag, import, load, save, and `hull image ...`
//! (inspect, prune, mount, unmount, ls, rm).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hull_image::registry::{self, PushCompression, RegistryOptions};
use hull_image::{reference, sources, ImageStore, StoreError};

use super::format;
use super::images::{self, ListArgs};
use super::progress::Bars;

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Use plain http instead of https (allowed for loopback registries only)
    #[arg(long)]
    insecure: bool,
    /// Docker-style config.json with credentials (default: the usual places)
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Suppress progress output
    #[arg(short, long)]
    quiet: bool,
}

impl RegistryArgs {
    fn options(&self, jobs: Option<usize>) -> RegistryOptions {
        RegistryOptions {
            insecure: self.insecure,
            auth_file: self.auth_file.clone(),
            jobs,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry
    Pull {
        /// Image reference: [registry/]repository[:tag|@digest]
        image: String,
        /// Layers downloaded at once
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Push a local image to a registry (layers compressed: gzip, or zstd when asked)
    Push {
        /// Local image: name, id or id prefix
        image: String,
        /// Destination reference (default: the image's name)
        destination: Option<String>,
        /// Compress every layer with gzip or zstd (default: gzip the uncompressed layers,
        /// keep compressed ones as they are)
        #[arg(long, value_name = "gzip|zstd")]
        compression_format: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List images
    Images(ListArgs),
    /// Remove images
    Rmi(RmArgs),
    /// Give an image another name
    Tag {
        /// Image: name, id or id prefix
        source: String,
        /// New name: [registry/]repository[:tag]
        target: String,
    },
    /// Create an image from a root filesystem tarball (plain, gzip or zstd; "-" for stdin)
    Import {
        /// Tarball of the root filesystem ("-": stdin)
        file: PathBuf,
        /// Name for the new image: [registry/]repository[:tag]
        name: Option<String>,
    },
    /// Load images from a docker archive or an OCI layout (dir or tar)
    Load {
        /// Archive or layout dir ("-" or absent: stdin)
        #[arg(short, long, default_value = "-")]
        input: PathBuf,
        /// Name for the image when the source does not name it (single-image sources)
        #[arg(long)]
        name: Option<String>,
        /// Print nothing
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save images to a docker archive (default, read by `docker load`) or an OCI layout
    Save {
        /// Images: names, ids or id prefixes
        #[arg(required = true)]
        images: Vec<String>,
        /// Output file ("-" or absent: stdout)
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
        /// docker-archive, oci-archive (an OCI layout in a tar) or oci-dir (an OCI layout
        /// directory, with -o DIR)
        #[arg(long, default_value = "docker-archive")]
        format: sources::SaveFormat,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        command: ImageSub,
    },
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Images: names, ids or id prefixes
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an id with several names; for an image a container uses, remove its names
    /// (the image stays until the container is removed)
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImageSub {
    /// Show images' records, manifests and configs as JSON
    Inspect {
        /// Images: names, ids or id prefixes
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove unnamed unused images (all unused with -a), then unreferenced layers and blobs
    Prune {
        /// Also images with names, when no container uses them
        #[arg(short, long)]
        all: bool,
    },
    /// Mount an image read-only and print the mount point (counted: see unmount)
    Mount {
        /// Image: name, id or id prefix
        image: String,
    },
    /// Drop one `hull image mount` of an image; the last one unmounts it
    Unmount {
        /// Image name, id or id prefix
        image: String,
        /// Unmount whatever the number of mounts
        #[arg(short, long)]
        force: bool,
    },
    /// List images
    Ls(ListArgs),
    /// Remove images
    Rm(RmArgs),
}

/// The store of an existing root; `None` when the root has none yet, so that read-only
/// commands create nothing.
fn existing(root: &Path) -> anyhow::Result<Option<ImageStore>> {
    if hull_db::path(root).exists() {
        Ok(Some(ImageStore::open(root)?))
    } else {
        Ok(None)
    }
}

/// `images` and `image inspect`, which must not create a root that does not exist; `None`
/// for the other commands.
fn read_only(root: &Path, cmd: &ImageCommand) -> Option<anyhow::Result<()>> {
    let run = |f: &dyn Fn(Option<&ImageStore>) -> anyhow::Result<()>| {
        existing(root).and_then(|store| f(store.as_ref()))
    };
    match cmd {
        ImageCommand::Images(a)
        | ImageCommand::Image {
            command: ImageSub::Ls(a),
        } => Some(run(&|s| images::list(s, a))),
        ImageCommand::Image {
            command: ImageSub::Inspect { images },
        } => Some(run(&|s| inspect(s, images))),
        _ => None,
    }
}

fn inspect(store: Option<&ImageStore>, images: &[String]) -> anyhow::Result<()> {
    let docs = images
        .iter()
        .map(|i| match store {
            Some(s) => Ok(s.inspect(i)?),
            None => Err(StoreError::NotFound(i.clone()).into()),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!("{}", serde_json::to_string_pretty(&docs)?);
    Ok(())
}

pub fn run(root: &Path, cmd: ImageCommand) -> anyhow::Result<()> {
    if let Some(res) = read_only(root, &cmd) {
        return res;
    }
    let mut store = ImageStore::open(root)?;
    match cmd {
        ImageCommand::Pull {
            image,
            jobs,
            registry,
        } => pull(&mut store, &image, jobs, &registry)?,
        ImageCommand::Push {
            image,
            destination,
            compression_format,
            registry,
        } => {
            let how = match compression_format.as_deref() {
                None => PushCompression::Gzip,
                Some("gzip") => PushCompression::ForceGzip,
                Some("zstd") => PushCompression::ForceZstd,
                Some(other) => {
                    bail!("--compression-format {other:?}: expected gzip or zstd")
                }
            };
            let bars = Bars::new(registry.quiet);
            let dest = destination.as_deref().unwrap_or(&image);
            let r = registry::push(
                &store,
                &image,
                Some(dest),
                &registry.options(None),
                how,
                &bars,
            )
            .with_context(|| format!("pushing {image}"))?;
            drop(bars);
            let tag = reference::parts(dest).ok().and_then(|p| p.tag);
            let tag = tag.as_deref().unwrap_or("latest");
            println!("{tag}: digest: {} size: {}", r.digest, r.size);
        }
        ImageCommand::Rmi(a)
        | ImageCommand::Image {
            command: ImageSub::Rm(a),
        } => {
            // A just-exited `--rm` container holds its image until its monitor removes it:
            // the engine's list waits for those teardowns.
            hull_engine::Engine::open_existing(root)?.settle()?;
            remove(&mut store, &a)?
        }
        ImageCommand::Tag { source, target } => store.tag(&source, &target)?,
        ImageCommand::Import { file, name } => {
            let d = if file == Path::new("-") {
                sources::import_tar(&mut store, &mut std::io::stdin().lock(), name.as_deref())
                    .context("importing from stdin")?
            } else {
                let mut f = std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?;
                sources::import_tar(&mut store, &mut f, name.as_deref())
                    .with_context(|| format!("importing {}", file.display()))?
            };
            println!("{}", store.image_id(&d)?);
        }
        ImageCommand::Load { input, name, quiet } => {
            load(&mut store, &input, name.as_deref(), quiet)?
        }
        ImageCommand::Save {
            images,
            output,
            format,
        } => {
            if output == Path::new("-") && std::io::stdout().is_terminal() {
                bail!("refusing to write an archive to a terminal; use -o FILE or redirect stdout");
            }
            sources::save(&store, &images, &output, format)?;
        }
        ImageCommand::Image { command } => image_sub(&mut store, command)?,
        // Answered by `read_only`.
        ImageCommand::Images(_) => {}
    }
    Ok(())
}

/// `pull`, ending as docker's: `Digest:` and `Status:` lines, then the image id.
fn pull(
    store: &mut ImageStore,
    image: &str,
    jobs: usize,
    reg: &RegistryArgs,
) -> anyhow::Result<()> {
    let bars = Bars::new(reg.quiet);
    let r = registry::pull(store, image, &reg.options(Some(jobs)), &bars)
        .with_context(|| format!("pulling {image}"))?;
    drop(bars);
    if !reg.quiet {
        let shown = r
            .name
            .as_deref()
            .map(|n| {
                let (repo, tag) = reference::display(n);
                format!("{repo}:{tag}")
            })
            .unwrap_or_else(|| image.to_string());
        println!("Digest: {}", r.manifest);
        if r.up_to_date {
            println!("Status: Image is up to date for {shown}");
        } else {
            println!("Status: Downloaded newer image for {shown}");
        }
    }
    println!("{}", r.id);
    Ok(())
}

fn image_sub(store: &mut ImageStore, cmd: ImageSub) -> anyhow::Result<()> {
    match cmd {
        ImageSub::Prune { all } => {
            let r = store.prune(all)?;
            for i in &r.images {
                println!("Deleted: {i}");
            }
            println!("Total reclaimed space: {}", format::size(r.bytes));
        }
        ImageSub::Mount { image } => println!("{}", store.mount_image(&image)?.display()),
        ImageSub::Unmount { image, force } => {
            if store.unmount_image(&image, force)?.is_none() {
                bail!("image {image} is not mounted");
            }
        }
        ImageSub::Rm(a) => remove(store, &a)?,
        // Answered by `read_only`.
        ImageSub::Ls(_) | ImageSub::Inspect { .. } => {}
    }
    Ok(())
}

fn remove(store: &mut ImageStore, a: &RmArgs) -> anyhow::Result<()> {
    let mut failed = None;
    let single = a.images.len() == 1;
    for i in &a.images {
        match store.remove(i, a.force) {
            Ok(r) => {
                for n in r.untagged {
                    let (repo, tag) = reference::display(&n);
                    println!("Untagged: {repo}:{tag}");
                }
                for d in r.deleted {
                    println!("Deleted: {d}");
                }
            }
            Err(e) => {
                if !single {
                    eprintln!("hull: {e}");
                }
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) if single => Err(e.into()),
        Some(_) => bail!("some images could not be removed"),
        None => Ok(()),
    }
}

fn load(
    store: &mut ImageStore,
    input: &Path,
    name: Option<&str>,
    quiet: bool,
) -> anyhow::Result<()> {
    let loaded = if input == Path::new("-") {
        if std::io::stdin().is_terminal() {
            bail!("no input: use -i FILE or pipe an archive to stdin");
        }
        // The archive is read at random, so stdin is spooled to a temp file in the store.
        let tmp = store
            .root()
            .join("tmp")
            .join(format!("{}-stdin-load.tar", std::process::id()));
        let res = (|| {
            let mut f = std::fs::File::create_new(&tmp)?;
            std::io::copy(&mut std::io::stdin().lock(), &mut f)?;
            Ok::<_, std::io::Error>(())
        })();
        let out = res
            .context("reading the archive from stdin")
            .and_then(|()| Ok(sources::load(store, &tmp, name)?));
        let _ = std::fs::remove_file(&tmp);
        out?
    } else {
        sources::load(store, input, name).with_context(|| format!("loading {}", input.display()))?
    };
    if !quiet {
        for (d, names) in loaded {
            if names.is_empty() {
                println!("Loaded image ID: {}", store.image_id(&d)?);
            }
            for n in names {
                let (repo, tag) = reference::display(&n);
                println!("Loaded image: {repo}:{tag}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Arguments and flags without help text, under `cmd`, as "cmd sub: arg".
    fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path}: {}", a.get_id()));
            }
        }
        for s in cmd.get_subcommands() {
            if s.get_about().is_none() {
                out.push(format!("{path} {}: no about", s.get_name()));
            }
            missing_help(s, &format!("{path} {}", s.get_name()), out);
        }
    }

    #[test]
    fn every_image_and_network_argument_has_help() {
        let cli = crate::cli::Cli::command();
        let mut missing = Vec::new();
        for name in [
            "pull", "push", "images", "rmi", "tag", "import", "load", "save", "image", "network",
        ] {
            let sub = cli.find_subcommand(name).expect(name);
            missing_help(sub, name, &mut missing);
        }
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }
}
