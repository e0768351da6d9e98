//! `events`: resource statistics and OOM notices as runc prints them, one JSON object per line.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hull_runtime::{Runtime, Status};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::json;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print the statistics once and exit.
    #[arg(long)]
    stats: bool,
    /// Time between statistics, as 5s, 500ms, 1m.
    #[arg(long, default_value = "5s")]
    interval: String,
    pub(super) id: String,
}

pub fn events(runtime: &Runtime, args: EventsArgs) -> anyhow::Result<()> {
    let interval = parse_duration(&args.interval)
        .with_context(|| format!("--interval: invalid duration {:?}", args.interval))?;
    let container = runtime.open(&args.id)?;
    if container.status() == Status::Stopped {
        anyhow::bail!("container with id {} is not running", args.id);
    }
    // Only the lock of this command is released: the container stays as it is.
    let watch = container.watch();
    let print_stats = || -> anyhow::Result<()> {
        let stats = watch.stats()?;
        super::print_line(json!({"type": "stats", "id": watch.id(), "data": stats}))?;
        Ok(())
    };
    if args.stats {
        return print_stats();
    }
    let mut oom = match watch.oom_events() {
        Ok(events) => Some(events),
        Err(err) => {
            eprintln!("hull-runtime: warning: no OOM events: {err}");
            None
        }
    };
    let mut next = Instant::now();
    while watch.is_alive() {
        if Instant::now() >= next {
            print_stats()?;
            next += interval;
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
        if let Some(events) = oom.as_mut() {
            let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, timeout);
            // The counter is the truth: the v1 eventfd is only a wake-up, and not every kernel
            // sends it for every kill.
            report_oom(events, watch.id())?;
        } else {
            std::thread::sleep(wait);
        }
    }
    if let Some(events) = oom.as_mut() {
        report_oom(events, watch.id())?;
    }
    Ok(())
}

fn report_oom(events: &mut hull_cgroups::OomEvents, id: &str) -> std::io::Result<()> {
    if events.read().unwrap_or(0) > 0 {
        super::print_line(json!({"type": "oom", "id": id}))?;
    }
    Ok(())
}

/// Go-style durations as runc takes them: a number and a unit (ns, us, ms, s, m, h).
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let secs = match unit {
        "ns" => value / 1e9,
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}
