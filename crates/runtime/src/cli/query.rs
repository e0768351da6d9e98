//! `state`, `list`, `ps`: reading what the runtime knows, in runc's output formats.

use std::io::Write;
use std::process::Command;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hull_runtime::Runtime;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: Format,
    /// Print only the ids.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: Format,
    pub(super) id: String,
    /// Options for ps(1), as in `ps -ef` (the default).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn state(runtime: &Runtime, id: &str) -> anyhow::Result<()> {
    let container = runtime.open(id)?;
    super::print_line(serde_json::to_string_pretty(&container.state())?)?;
    Ok(())
}

/// The runtime's containers and, when there are any, the VM containers' (from their keeper),
/// by id.
pub fn list(runtime: &Runtime, root: &std::path::Path, args: ListArgs) -> anyhow::Result<()> {
    let mut states: Vec<serde_json::Value> = runtime
        .list()?
        .iter()
        .map(|c| serde_json::to_value(c.state()))
        .collect::<Result<_, _>>()?;
    if super::vm::any(root) {
        states.extend(super::vm::states(root)?);
        states.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for s in &states {
            writeln!(out, "{}", s["id"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    match args.format {
        Format::Json => {
            writeln!(out, "{}", serde_json::to_string(&states)?)?;
        }
        Format::Table => {
            let text = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let rows: Vec<[String; 6]> = states
                .iter()
                .map(|s| {
                    [
                        text(&s["id"]),
                        text(&s["pid"]),
                        text(&s["status"]),
                        text(&s["bundle"]),
                        text(&s["created"]),
                        String::new(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let all: Vec<&[String; 6]> = std::iter::once(&header).chain(rows.iter()).collect();
            let widths: Vec<usize> = (0..6)
                .map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for row in all {
                let line: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(cell, w)| format!("{cell:<w$}"))
                    .collect();
                writeln!(out, "{}", line.join("   ").trim_end())?;
            }
        }
    }
    Ok(())
}

pub fn ps(runtime: &Runtime, args: PsArgs) -> anyhow::Result<()> {
    let pids = runtime.open(&args.id)?.pids()?;
    if let Format::Json = args.format {
        super::print_line(serde_json::to_string(&pids)?)?;
        return Ok(());
    }
    let ps_args = if args.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_args
    };
    let output = Command::new("ps")
        .args(&ps_args)
        .output()
        .context("running ps")?;
    anyhow::ensure!(
        output.status.success(),
        "ps {}: {}",
        ps_args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_column = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    super::print_line(header)?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            super::print_line(line)?;
        }
    }
    Ok(())
}
