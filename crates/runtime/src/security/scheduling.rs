//! CPU and I/O scheduling of the container process: `process.scheduler` through
//! sched_setattr(2) and `process.ioPriority` through ioprio_set(2).

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler,
};

use super::error::{spec_name, SecurityError};
use crate::sys::{ioprio, sched};

/// An I/O class and level, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IoPriorityPlan {
    class_name: String,
    class: u32,
    priority: i64,
    value: u32,
}

impl IoPriorityPlan {
    pub(super) fn new(p: &LinuxIOPriority) -> Result<Self, SecurityError> {
        let priority = p.priority();
        let level = u32::try_from(priority)
            .ok()
            .filter(|l| *l <= 7)
            .ok_or(SecurityError::IoPriorityRange(priority))?;
        let class = match p.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        Ok(Self {
            class_name: spec_name(&p.class()),
            class,
            priority,
            value: ioprio::ioprio_value(class, level),
        })
    }

    pub(super) fn apply(&self) -> Result<(), SecurityError> {
        ioprio::ioprio_set(0, self.value).map_err(|source| SecurityError::IoPriority {
            class: self.class_name.clone(),
            priority: self.priority,
            source,
        })
    }
}

/// A complete sched_attr, validated as runc validates `process.scheduler`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SchedulerPlan {
    policy_name: String,
    attr: sched::SchedAttr,
}

fn policy_number(policy: LinuxSchedulerPolicy) -> Result<u32, SecurityError> {
    Ok(match policy {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(SecurityError::SchedulerInvalid(
                "policy SCHED_ISO is not implemented by the Linux kernel".into(),
            ))
        }
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    })
}

fn flag_bits(flags: &[LinuxSchedulerFlag]) -> Result<u64, SecurityError> {
    flags.iter().try_fold(0u64, |bits, f| {
        let bit = match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            // The clamps need sched_util_min/max values, which the OCI object does not carry.
            LinuxSchedulerFlag::SchedFlagUtilClampMin | LinuxSchedulerFlag::SchedFlagUtilClampMax => {
                return Err(SecurityError::SchedulerInvalid(format!(
                    "flag {} needs a utilization clamp value, which the OCI scheduler object has no field for",
                    spec_name(f)
                )))
            }
        };
        Ok(bits | bit)
    })
}

impl SchedulerPlan {
    pub(super) fn new(s: &Scheduler) -> Result<Self, SecurityError> {
        let policy = *s.policy();
        let policy_name = spec_name(&policy);
        let invalid = |m: String| Err(SecurityError::SchedulerInvalid(m));
        let nice = s.nice().unwrap_or(0);
        if !(-20..=19).contains(&nice) {
            return invalid(format!("nice {nice} is outside -20..=19"));
        }
        let realtime = matches!(
            policy,
            LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
        );
        let priority = s.priority().unwrap_or(0);
        if priority != 0 && !realtime {
            return invalid(format!(
                "priority {priority} needs policy SCHED_FIFO or SCHED_RR, not {policy_name}"
            ));
        }
        if realtime && !(1..=99).contains(&priority) {
            return invalid(format!(
                "priority {priority} is outside 1..=99 for {policy_name}"
            ));
        }
        let deadline = policy == LinuxSchedulerPolicy::SchedDeadline;
        let (rt, dl, pd) = (
            s.runtime().unwrap_or(0),
            s.deadline().unwrap_or(0),
            s.period().unwrap_or(0),
        );
        if !deadline && (rt != 0 || dl != 0 || pd != 0) {
            return invalid(format!(
                "runtime/deadline/period need policy SCHED_DEADLINE, not {policy_name}"
            ));
        }
        let attr = sched::SchedAttr {
            sched_policy: policy_number(policy)?,
            sched_flags: flag_bits(s.flags().as_deref().unwrap_or_default())?,
            sched_nice: nice,
            sched_priority: u32::try_from(priority).unwrap_or(0),
            sched_runtime: rt,
            sched_deadline: dl,
            sched_period: pd,
            ..Default::default()
        };
        Ok(Self { policy_name, attr })
    }

    pub(super) fn apply(&self) -> Result<(), SecurityError> {
        sched::sched_setattr(0, &self.attr).map_err(|source| SecurityError::Scheduler {
            policy: self.policy_name.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(json: &str) -> Scheduler {
        serde_json::from_str(json).expect("scheduler json")
    }

    #[test]
    fn priority_needs_a_realtime_policy() {
        let err =
            SchedulerPlan::new(&scheduler(r#"{"policy":"SCHED_OTHER","priority":5}"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.scheduler: priority 5 needs policy SCHED_FIFO or SCHED_RR, not SCHED_OTHER"
        );
    }

    #[test]
    fn deadline_fields_need_deadline_policy() {
        let err = SchedulerPlan::new(&scheduler(r#"{"policy":"SCHED_BATCH","runtime":1000}"#))
            .unwrap_err();
        assert!(err.to_string().contains("SCHED_DEADLINE"), "{err}");
    }

    #[test]
    fn iso_and_bad_nice_are_errors() {
        assert!(SchedulerPlan::new(&scheduler(r#"{"policy":"SCHED_ISO"}"#)).is_err());
        let err =
            SchedulerPlan::new(&scheduler(r#"{"policy":"SCHED_OTHER","nice":40}"#)).unwrap_err();
        assert!(err.to_string().contains("nice 40"), "{err}");
    }

    #[test]
    fn io_priority_range() {
        let p: LinuxIOPriority =
            serde_json::from_str(r#"{"class":"IOPRIO_CLASS_BE","priority":8}"#).expect("json");
        let err = IoPriorityPlan::new(&p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.ioPriority.priority: 8 is outside 0..=7"
        );
    }
}
