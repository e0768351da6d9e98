//! `hull ps`: the containers, filtered (`--filter status=|name=|id=|label=|ancestor=|exited=`)
//! and printed as docker's table, json lines, or a `--format` template.

use clap::Args;
use hull_engine::filter::{self, Filters, Seen};
use hull_engine::{Engine, Record, State};
use serde_json::json;

use super::format::{self, Template};

/// The flags of `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show every container, also created and exited ones
    #[arg(short, long)]
    all: bool,
    /// Print ids only
    #[arg(short, long)]
    quiet: bool,
    /// Print whole ids and commands
    #[arg(long)]
    no_trunc: bool,
    /// Filter: status=, name=, id=, label=K[=V], ancestor=IMAGE, exited=CODE (repeatable)
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Output: table (default), json (one object a line), or a template such as
    /// 'table {{.ID}}\t{{.Names}}' with .ID .Names .Image .Status .Command .Ports .Labels
    /// .CreatedAt .RunningFor .State .Networks
    #[arg(long, default_value = "table")]
    format: String,
}

const FILTERS: [&str; 6] = ["status", "name", "id", "label", "ancestor", "exited"];

const FIELDS: [(&str, &str); 11] = [
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
    ("State", "STATE"),
    ("Networks", "NETWORKS"),
];

/// docker's default table.
const DEFAULT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

pub fn ps(engine: &Engine, args: &PsArgs) -> anyhow::Result<()> {
    let filters = Filters::parse(&args.filter, &FILTERS)?;
    let names: Vec<&str> = FIELDS.iter().map(|(f, _)| *f).collect();
    let template = match args.format.as_str() {
        "json" => None,
        "table" => Some(Template::parse(DEFAULT, &names)?),
        t => Some(Template::parse(t, &names)?),
    };
    let mut list: Vec<(Record, Seen)> = Vec::new();
    for r in engine.list()? {
        let seen = Seen {
            paused: engine.is_paused(&r),
        };
        // docker: a status filter shows what it names, also without -a.
        let wanted = args.all || r.state.is_live() || !filters.is_empty();
        if wanted && filters.matches(&r, seen) {
            list.push((r, seen));
        }
    }
    // Newest first, as docker lists them.
    list.reverse();
    if args.quiet {
        for (r, _) in &list {
            println!("{}", short_id(&r.id, args.no_trunc));
        }
        return Ok(());
    }
    let value = |r: &Record, seen: Seen, field: &str| field_value(r, seen, field, args.no_trunc);
    let Some(template) = template else {
        for (r, seen) in &list {
            let obj: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .map(|f| (f.to_string(), json!(value(r, *seen, f))))
                .collect();
            println!("{}", serde_json::Value::Object(obj));
        }
        return Ok(());
    };
    let rows: Vec<_> = list
        .iter()
        .map(|(r, seen)| move |f: &str| value(r, *seen, f))
        .collect();
    template.print(&rows, &|f: &str| {
        FIELDS
            .iter()
            .find(|(n, _)| *n == f)
            .map_or_else(|| f.to_uppercase(), |(_, t)| t.to_string())
    });
    Ok(())
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

/// One field of a container, as docker's ps formatter prints it.
fn field_value(r: &Record, seen: Seen, field: &str, no_trunc: bool) -> String {
    match field {
        "ID" => short_id(&r.id, no_trunc),
        "Image" => r.image.clone(),
        "Command" => {
            let mut command = format!("\"{}\"", r.command.join(" "));
            if !no_trunc && command.chars().count() > 22 {
                command = command.chars().take(19).collect::<String>() + "…\"";
            }
            command
        }
        "RunningFor" => format::age(Some(&r.created)),
        "CreatedAt" => r.created.clone(),
        "Status" => status(r, seen),
        "State" => filter::status_name(r, seen).to_string(),
        "Ports" => r
            .settings
            .ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        "Names" => r.name.clone(),
        "Labels" => r
            .settings
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        "Networks" => r.settings.network.name().to_string(),
        _ => String::new(),
    }
}

/// docker's STATUS column.
fn status(r: &Record, seen: Seen) -> String {
    match r.state {
        State::Created => "Created".into(),
        State::Starting => "Starting".into(),
        State::Running => {
            let up = format::age(r.started.as_deref());
            let up = up.strip_suffix(" ago").unwrap_or(&up);
            if seen.paused {
                format!("Up {up} (Paused)")
            } else {
                format!("Up {up}")
            }
        }
        State::Restarting => format!(
            "Restarting ({}) {}",
            r.exit_code.unwrap_or(0),
            format::age(r.finished.as_deref())
        ),
        State::Exited => format!(
            "Exited ({}) {}",
            r.exit_code.unwrap_or(0),
            format::age(r.finished.as_deref())
        ),
    }
}
