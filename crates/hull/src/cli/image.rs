//! Image commands: pull, push, images, rmi, tag, import, load, save, and `hull image ...`
//! (inspect, prune, mount, unmount, ls, rm).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hull_image::registry::{self, RegistryOptions};
use hull_image::{reference, sources, ImageStore};

use super::format;
use super::progress::Bars;

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Use plain http (allowed for loopback registries only)
    #[arg(long)]
    insecure: bool,
    /// Docker-style config.json with credentials
    #[arg(long)]
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
    /// Push a local image to a registry
    Push {
        image: String,
        /// Destination reference (default: the image's name)
        destination: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List images
    Images(ListArgs),
    /// Remove images
    Rmi(RmArgs),
    /// Give an image another name
    Tag { source: String, target: String },
    /// Create an image from a root filesystem tarball (plain, gzip or zstd; "-" for stdin)
    Import {
        file: PathBuf,
        /// Name for the new image
        name: Option<String>,
    },
    /// Load images from an OCI layout (dir or tar) or a docker archive
    Load {
        /// Archive or layout dir ("-" or absent: stdin)
        #[arg(short, long, default_value = "-")]
        input: PathBuf,
        /// Name for the image when the source does not name it (single-image sources)
        #[arg(long)]
        name: Option<String>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save images to an OCI layout tar
    Save {
        #[arg(required = true)]
        images: Vec<String>,
        /// Output file ("-" or absent: stdout)
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        command: ImageSub,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: table or json
    #[arg(long, default_value = "table")]
    format: String,
    /// Only image ids
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove even if a container uses it or it has several names
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImageSub {
    /// Show an image's record, manifest and config as JSON
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove unnamed unused images (all unused with -a), then unreferenced layers and blobs
    Prune {
        #[arg(short, long)]
        all: bool,
    },
    /// Mount an image read-only and print the mount point
    Mount { image: String },
    /// Unmount an image mounted by `hull image mount`
    Unmount { image: String },
    /// List images
    Ls(ListArgs),
    /// Remove images
    Rm(RmArgs),
}

pub fn run(root: &Path, cmd: ImageCommand) -> anyhow::Result<()> {
    let mut store = ImageStore::open(root)?;
    match cmd {
        ImageCommand::Pull {
            image,
            jobs,
            registry,
        } => {
            let bars = Bars::new(registry.quiet);
            let r = registry::pull(&mut store, &image, &registry.options(Some(jobs)), &bars)
                .with_context(|| format!("pulling {image}"))?;
            println!("{}", r.manifest);
        }
        ImageCommand::Push {
            image,
            destination,
            registry,
        } => {
            let bars = Bars::new(registry.quiet);
            let d = registry::push(
                &store,
                &image,
                destination.as_deref(),
                &registry.options(None),
                &bars,
            )
            .with_context(|| format!("pushing {image}"))?;
            println!("{d}");
        }
        ImageCommand::Images(a)
        | ImageCommand::Image {
            command: ImageSub::Ls(a),
        } => list(&store, &a)?,
        ImageCommand::Rmi(a)
        | ImageCommand::Image {
            command: ImageSub::Rm(a),
        } => remove(&mut store, &a)?,
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
            println!("{d}");
        }
        ImageCommand::Load { input, name, quiet } => {
            load(&mut store, &input, name.as_deref(), quiet)?
        }
        ImageCommand::Save { images, output } => {
            if output == Path::new("-") && std::io::stdout().is_terminal() {
                bail!("refusing to write an archive to a terminal; use -o FILE or redirect stdout");
            }
            sources::save(&store, &images, &output)?;
        }
        ImageCommand::Image { command } => image_sub(&mut store, command)?,
    }
    Ok(())
}

fn image_sub(store: &mut ImageStore, cmd: ImageSub) -> anyhow::Result<()> {
    match cmd {
        ImageSub::Inspect { images } => {
            let docs = images
                .iter()
                .map(|i| store.inspect(i))
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&docs)?);
        }
        ImageSub::Prune { all } => {
            let r = store.prune(all)?;
            for i in &r.images {
                println!("Deleted: {i}");
            }
            println!(
                "Removed {} images, {} layers, {} blobs; reclaimed {}",
                r.images.len(),
                r.layers,
                r.blobs,
                format::size(r.bytes)
            );
        }
        ImageSub::Mount { image } => println!("{}", store.mount_image(&image)?.display()),
        ImageSub::Unmount { image } => {
            if !store.unmount_image(&image)? {
                bail!("image {image} is not mounted");
            }
        }
        ImageSub::Ls(a) => list(store, &a)?,
        ImageSub::Rm(a) => remove(store, &a)?,
    }
    Ok(())
}

fn list(store: &ImageStore, a: &ListArgs) -> anyhow::Result<()> {
    let images = store.list()?;
    if a.quiet {
        for i in &images {
            println!("{}", i.id.short());
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&images)?),
        "table" => {
            let mut rows = Vec::new();
            for i in &images {
                let names: Vec<(String, String)> = if i.names.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    i.names.iter().map(|n| reference::display(n)).collect()
                };
                for (repo, tag) in names {
                    rows.push(vec![
                        repo,
                        tag,
                        i.id.short().to_string(),
                        format::age(i.created.as_deref()),
                        format::size(i.size),
                    ]);
                }
            }
            format::table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
        }
        other => bail!("--format {other:?}: expected table or json"),
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
                println!("Loaded image: {d}");
            }
            for n in names {
                let (repo, tag) = reference::display(&n);
                println!("Loaded image: {repo}:{tag}");
            }
        }
    }
    Ok(())
}
