//! Block I/O: v1 blkio.* (bfq weights, throttling) and v2 io.weight / io.max.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::error::CgroupError;
use crate::plan::{Ctx, Target};

const F: &str = "linux.resources.blockIO";

fn field(name: &str) -> String {
    format!("{F}.{name}")
}

fn sys_dev(major: i64, minor: i64) -> PathBuf {
    PathBuf::from(format!("/sys/dev/block/{major}:{minor}"))
}

/// The device must exist: the kernel answers ENODEV/EINVAL without saying which entry was wrong.
fn check_dev(field: &str, major: i64, minor: i64) -> Result<(), CgroupError> {
    if major < 0 || minor < 0 || !sys_dev(major, minor).exists() {
        return Err(CgroupError::invalid(
            field,
            format!("block device {major}:{minor} does not exist"),
        ));
    }
    Ok(())
}

/// The I/O scheduler in force for a block device (a partition uses its disk's queue).
fn scheduler(major: i64, minor: i64) -> Option<String> {
    let dev = sys_dev(major, minor);
    let text = std::fs::read_to_string(dev.join("queue/scheduler"))
        .or_else(|_| std::fs::read_to_string(dev.join("../queue/scheduler")))
        .ok()?;
    let start = text.find('[')?;
    let end = text[start..].find(']')?;
    Some(text[start + 1..start + end].to_string())
}

/// Whether blk-iocost is enabled for a device (or any device): then v2's io.weight is honoured.
fn iocost_enabled(cx: &Ctx, t: Target, dev: Option<(i64, i64)>) -> bool {
    let qos = cx.cg.dir(t.dir).mount_point.join("io.cost.qos");
    let Ok(text) = std::fs::read_to_string(qos) else {
        return false;
    };
    text.lines().any(|l| {
        l.contains("enable=1") && dev.is_none_or(|(ma, mi)| l.starts_with(&format!("{ma}:{mi} ")))
    })
}

/// runc's blkio weight [10, 1000] -> io.weight [1, 10000] conversion.
fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w) - 10) * 9999 / 990
}

/// Proportional weights act only under bfq (blkio.bfq.*, io.bfq.weight) or blk-iocost (io.weight);
/// say so instead of writing a no-op.
fn weight_file(
    cx: &Ctx,
    t: Target,
    field: &str,
    dev: Option<(i64, i64)>,
) -> Result<&'static str, CgroupError> {
    let base = &cx.cg.dir(t.dir).base;
    if !t.v2 && base.join("blkio.weight").exists() {
        return Ok("blkio.weight");
    }
    if t.v2 && iocost_enabled(cx, t, dev) {
        return Ok("io.weight");
    }
    let bfq_somewhere = match dev {
        Some((ma, mi)) => scheduler(ma, mi).as_deref() == Some("bfq"),
        None => any_bfq(),
    };
    if bfq_somewhere {
        return Ok(if t.v2 {
            "io.bfq.weight"
        } else {
            "blkio.bfq.weight"
        });
    }
    let what = match dev {
        Some((ma, mi)) => format!(
            "block device {ma}:{mi} uses the {} I/O scheduler",
            scheduler(ma, mi).unwrap_or_else(|| "none".into())
        ),
        None => "no block device uses the bfq I/O scheduler (nor blk-iocost)".to_string(),
    };
    Err(CgroupError::invalid(
        field,
        format!(
            "{what}, so I/O weights would have no effect (only bfq and blk-iocost honour them)"
        ),
    ))
}

fn any_bfq() -> bool {
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return false;
    };
    rd.filter_map(Result::ok).any(|e| {
        std::fs::read_to_string(e.path().join("queue/scheduler")).is_ok_and(|s| s.contains("[bfq]"))
    })
}

/// blkio weights are 10..=1000; bfq's v2 io.bfq.weight accepts the same values unchanged.
fn check_weight(field: &str, w: u16) -> Result<u16, CgroupError> {
    if !(10..=1000).contains(&w) {
        return Err(CgroupError::invalid(
            field,
            format!("{w} is outside 10..=1000"),
        ));
    }
    Ok(w)
}

type Throttles<'a> = [(
    &'static str,
    &'static str,
    &'a Option<Vec<LinuxThrottleDevice>>,
); 4];

pub(crate) fn plan(cx: &mut Ctx, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let throttles: Throttles = [
        (
            "throttleReadBpsDevice",
            "read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "throttleWriteBpsDevice",
            "write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "throttleReadIOPSDevice",
            "read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "throttleWriteIOPSDevice",
            "write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    // 0 is "not set" (runc reads it so, and docker 20.10 writes `"weight": 0` into every config).
    let weight = b.weight().filter(|w| *w != 0);
    let device_weights = || {
        b.weight_device()
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, d)| d.weight().filter(|w| *w != 0).map(|w| (i, d, w)))
    };
    if let Some(f) = leaf_weight_field(b) {
        cx.ignore(
            &f,
            "leaf weights were removed from the kernel with the cfq scheduler",
        );
    }
    let any = weight.is_some()
        || device_weights().next().is_some()
        || throttles
            .iter()
            .any(|(_, _, v)| v.as_ref().is_some_and(|v| !v.is_empty()));
    if !any {
        return Ok(());
    }
    let controller = if cx.cg.v1("blkio").is_some() {
        "blkio"
    } else {
        "io"
    };
    let t = cx.target(controller, F)?;
    if let Some(w) = weight {
        let f = field("weight");
        let v = check_weight(&f, w)?;
        let file = weight_file(cx, t, &f, None)?;
        let value = match file {
            "io.weight" => format!("default {}", blkio_to_io_weight(v)),
            "io.bfq.weight" => format!("default {v}"),
            _ => v.to_string(),
        };
        cx.write(t, file, value, &f);
    }
    for (i, d, w) in device_weights() {
        let f = format!("{F}.weightDevice[{i}]");
        check_dev(&f, d.major(), d.minor())?;
        let v = check_weight(&f, w)?;
        let file = weight_file(cx, t, &f, Some((d.major(), d.minor())))?;
        // v1 has a separate per-device file; v2's io.bfq.weight takes "MAJ:MIN W" lines too.
        let file = match file {
            "blkio.weight" => "blkio.weight_device",
            "blkio.bfq.weight" => "blkio.bfq.weight_device",
            other => other,
        };
        let v = if file == "io.weight" {
            blkio_to_io_weight(v)
        } else {
            u64::from(v)
        };
        cx.write(t, file, format!("{}:{} {v}", d.major(), d.minor()), &f);
    }
    if t.v2 {
        io_max(cx, t, &throttles)
    } else {
        for (name, suffix, list) in throttles {
            for (i, d) in list.iter().flatten().enumerate() {
                let f = format!("{F}.{name}[{i}]");
                check_dev(&f, d.major(), d.minor())?;
                let file = format!("blkio.throttle.{suffix}");
                cx.write(
                    t,
                    &file,
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                    &f,
                );
            }
        }
        Ok(())
    }
}

/// The first leaf weight set (0 is "not set"), as a config path: the kernel has none to write.
fn leaf_weight_field(b: &LinuxBlockIo) -> Option<String> {
    if b.leaf_weight().is_some_and(|w| w != 0) {
        return Some(field("leafWeight"));
    }
    b.weight_device()
        .iter()
        .flatten()
        .position(|d| d.leaf_weight().is_some_and(|w| w != 0))
        .map(|i| format!("{F}.weightDevice[{i}].leafWeight"))
}

/// v2 puts every throttle of a device on one io.max line: "8:0 rbps=N wbps=N riops=N wiops=N".
fn io_max(cx: &mut Ctx, t: Target, throttles: &Throttles) -> Result<(), CgroupError> {
    let keys = ["rbps", "wbps", "riops", "wiops"];
    for ((name, _, list), key) in throttles.iter().zip(keys) {
        for (i, d) in list.iter().flatten().enumerate() {
            let f = format!("{F}.{name}[{i}]");
            check_dev(&f, d.major(), d.minor())?;
            // A rate of 0 lifts the limit, as writing 0 to blkio.throttle.* does on v1.
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            cx.write(
                t,
                "io.max",
                format!("{}:{} {key}={rate}", d.major(), d.minor()),
                &f,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn runc_weight_conversion() {
        assert_eq!(super::blkio_to_io_weight(10), 1);
        assert_eq!(super::blkio_to_io_weight(500), 4950);
        assert_eq!(super::blkio_to_io_weight(1000), 10000);
    }
}
