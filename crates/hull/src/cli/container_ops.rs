//! The container commands beyond the lifecycle: `pause`, `unpause`, `restart`, `rename`,
//! `top`, `stats`, `port` and `container prune`, docker's flags and output over hull-engine.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;
use hull_engine::filter::Filters;
use hull_engine::{cpu_percent, Engine, EngineError, StatsSample};
use serde_json::json;

use super::container::started;
use super::format::{self, Template};

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Freeze every process of containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers and start them again
    Restart {
        /// Seconds to wait for the stop before SIGKILL (default: the container's
        /// --stop-timeout, else 10; -1: wait until it exits)
        #[arg(short = 't', long = "time", allow_negative_numbers = true)]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container
    Rename {
        /// The container (name, id or id prefix)
        container: String,
        /// Its new name: [a-zA-Z0-9][a-zA-Z0-9_.-]*
        new_name: String,
    },
    /// Show a container's processes (ps options as the host's ps takes them; default -ef)
    Top {
        container: String,
        /// Options passed to ps (the rows are the container's processes)
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PS OPTIONS"
        )]
        ps_args: Vec<String>,
    },
    /// Show containers' resource use (all running ones when none is named)
    Stats {
        /// Print one sample and exit
        #[arg(long)]
        no_stream: bool,
        /// Show every container, not only running ones
        #[arg(short, long)]
        all: bool,
        /// Print whole ids
        #[arg(long)]
        no_trunc: bool,
        /// Output: table (default), json (one object a line), or a template with .ID .Name
        /// .Container .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO .PIDs
        #[arg(long, default_value = "table")]
        format: String,
        containers: Vec<String>,
    },
    /// List a container's published ports, or the host address of one private port
    Port {
        container: String,
        /// PRIVATE_PORT[/PROTO]
        private: Option<String>,
    },
}

/// `hull container ...` only: ls (docker's name for ps in the group) and prune.
#[derive(Debug, Subcommand)]
pub enum GroupOnly {
    /// List containers (as ps)
    #[command(alias = "list")]
    Ls(super::ps::PsArgs),
    /// Remove every stopped container
    Prune {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
        /// Filter: until=TIME, label=K[=V] (repeatable)
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
}

impl OpsCommand {
    /// Whether it only reads: then it creates no root that does not exist.
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            OpsCommand::Top { .. } | OpsCommand::Stats { .. } | OpsCommand::Port { .. }
        )
    }
}

pub fn run(engine: &mut Engine, cmd: OpsCommand) -> anyhow::Result<i32> {
    match cmd {
        OpsCommand::Pause { containers } => {
            for c in containers {
                engine.pause(&c)?;
                println!("{c}");
            }
        }
        OpsCommand::Unpause { containers } => {
            for c in containers {
                engine.unpause(&c)?;
                println!("{c}");
            }
        }
        OpsCommand::Restart { time, containers } => {
            for c in containers {
                let mut monitor = engine.restart(&c, time.map(hull_engine::stop_wait))?;
                started(monitor.next_report(), &c)?;
                println!("{c}");
            }
        }
        OpsCommand::Rename {
            container,
            new_name,
        } => {
            engine.rename(&container, &new_name)?;
        }
        OpsCommand::Top { container, ps_args } => {
            let top = engine.top(&container, &ps_args)?;
            let titles: Vec<&str> = top.titles.iter().map(String::as_str).collect();
            format::table(&titles, &top.processes);
        }
        OpsCommand::Stats {
            no_stream,
            all,
            no_trunc,
            format,
            containers,
        } => stats(engine, &containers, all, no_stream, no_trunc, &format)?,
        OpsCommand::Port { container, private } => port(engine, &container, private.as_deref())?,
    }
    Ok(0)
}

pub fn run_group(engine: &mut Engine, cmd: GroupOnly) -> anyhow::Result<i32> {
    match cmd {
        GroupOnly::Ls(args) => super::ps::ps(engine, &args)?,
        GroupOnly::Prune { force, filter } => {
            let filters = Filters::parse(&filter, &["until", "label"])?;
            if !force && !format::confirm("all stopped containers")? {
                return Ok(0);
            }
            let pruned = engine.prune_containers(&filters)?;
            if !pruned.removed.is_empty() {
                println!("Deleted Containers:");
                for id in &pruned.removed {
                    println!("{id}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", format::size(pruned.bytes));
        }
    }
    Ok(0)
}

/// `port CTR [PRIVATE[/PROTO]]`.
fn port(engine: &Engine, container: &str, private: Option<&str>) -> anyhow::Result<()> {
    let record = engine.find(container)?;
    let ports = &record.settings.ports;
    let Some(private) = private else {
        for m in ports {
            println!(
                "{}/{} -> {}:{}",
                m.container_port,
                m.proto.as_str(),
                m.host_ip,
                m.host_port
            );
        }
        return Ok(());
    };
    let (num, proto) = private.split_once('/').unwrap_or((private, "tcp"));
    let num: u16 = num.parse().map_err(|_| {
        EngineError::Invalid(format!(
            "invalid port {private:?}: use PRIVATE_PORT[/tcp|udp]"
        ))
    })?;
    let found: Vec<_> = ports
        .iter()
        .filter(|m| m.container_port == num && m.proto.as_str() == proto)
        .collect();
    if found.is_empty() {
        return Err(EngineError::Invalid(format!(
            "no public port '{num}/{proto}' published for {container}"
        ))
        .into());
    }
    for m in found {
        println!("{}:{}", m.host_ip, m.host_port);
    }
    Ok(())
}

/// The time between the two samples of one `stats` line.
const STATS_INTERVAL: Duration = Duration::from_millis(1000);

const STATS_FIELDS: [(&str, &str); 9] = [
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
    ("Container", "CONTAINER"),
];

const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// `stats`: a line per container from two samples (the CPU % is their difference); once with
/// `--no-stream`, else again every interval until interrupted.
fn stats(
    engine: &Engine,
    containers: &[String],
    all: bool,
    no_stream: bool,
    no_trunc: bool,
    format: &str,
) -> anyhow::Result<()> {
    let names: Vec<&str> = STATS_FIELDS.iter().map(|(f, _)| *f).collect();
    let template = match format {
        "json" => None,
        "table" => Some(Template::parse(STATS_TABLE, &names)?),
        t => Some(Template::parse(t, &names)?),
    };
    let refs: Vec<String> = if containers.is_empty() {
        engine
            .list()?
            .into_iter()
            .filter(|r| all || r.state.is_live())
            .map(|r| r.id)
            .collect()
    } else {
        containers.to_vec()
    };
    let mut before: Vec<StatsSample> = refs
        .iter()
        .map(|c| engine.stats(c))
        .collect::<Result<_, _>>()?;
    let redraw = !no_stream && std::io::stdout().is_terminal();
    loop {
        std::thread::sleep(STATS_INTERVAL);
        // One removed meanwhile shows zeros, as docker's stream goes on with the others.
        let after: Vec<StatsSample> = refs
            .iter()
            .zip(&before)
            .map(|(c, prev)| {
                engine.stats(c).unwrap_or_else(|_| StatsSample {
                    id: prev.id.clone(),
                    name: prev.name.clone(),
                    at: prev.at,
                    ..Default::default()
                })
            })
            .collect();
        if redraw {
            print!("\x1b[2J\x1b[H");
        }
        print_stats(template.as_ref(), &names, &before, &after, &refs, no_trunc);
        if no_stream {
            return Ok(());
        }
        before = after;
    }
}

/// One round of `stats` lines.
fn print_stats(
    template: Option<&Template>,
    names: &[&str],
    before: &[StatsSample],
    after: &[StatsSample],
    refs: &[String],
    no_trunc: bool,
) {
    let rows: Vec<_> = before
        .iter()
        .zip(after)
        .zip(refs)
        .map(|((b, a), given)| move |f: &str| stats_field(b, a, given, f, no_trunc))
        .collect();
    match template {
        None => {
            for row in &rows {
                let obj: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .map(|f| (f.to_string(), json!(row(f))))
                    .collect();
                println!("{}", serde_json::Value::Object(obj));
            }
        }
        Some(t) => {
            t.print(&rows, &|f: &str| {
                STATS_FIELDS
                    .iter()
                    .find(|(n, _)| *n == f)
                    .map_or_else(|| f.to_uppercase(), |(_, t)| t.to_string())
            });
        }
    }
}

/// One field of a stats line, as docker prints it.
fn stats_field(
    before: &StatsSample,
    after: &StatsSample,
    given: &str,
    field: &str,
    no_trunc: bool,
) -> String {
    let pct = |v: f64| format!("{v:.2}%");
    match field {
        "ID" if no_trunc => after.id.clone(),
        "ID" => after.id.chars().take(12).collect(),
        "Name" => after.name.clone(),
        "Container" => given.to_string(),
        "CPUPerc" => pct(cpu_percent(before, after)),
        "MemUsage" => format!(
            "{} / {}",
            format::binary_size(after.mem_usage),
            format::binary_size(after.mem_limit)
        ),
        "MemPerc" => pct(if after.mem_limit == 0 {
            0.0
        } else {
            after.mem_usage as f64 * 100.0 / after.mem_limit as f64
        }),
        "NetIO" => format!(
            "{} / {}",
            format::si_size3(after.net_rx),
            format::si_size3(after.net_tx)
        ),
        "BlockIO" => format!(
            "{} / {}",
            format::si_size3(after.blk_read),
            format::si_size3(after.blk_write)
        ),
        "PIDs" => after.pids.to_string(),
        _ => String::new(),
    }
}
