//! A fact of the host read ahead of its use: by a process with time to spare before it knows
//! what it will do (the engine's monitor, waiting for its container), then taken by the one
//! call that would otherwise read it on a container's start path, as if read at that moment.
//! Taken once: a later call reads again, so a fact that may change (this process's bounding
//! set, its cgroups) is never served stale to a later start or to a child that changed it.

use std::sync::Mutex;

/// One read-ahead fact, in a `static`.
#[derive(Debug)]
pub struct ReadAhead<T> {
    value: Mutex<Option<T>>,
}

impl<T> ReadAhead<T> {
    pub const fn new() -> ReadAhead<T> {
        ReadAhead {
            value: Mutex::new(None),
        }
    }

    /// Reads now with `read`; a failure leaves the reading to the call that needs it.
    pub fn fill<E>(&self, read: impl FnOnce() -> Result<T, E>) {
        if let (Ok(value), Ok(mut slot)) = (read(), self.value.lock()) {
            *slot = Some(value);
        }
    }

    /// The value read ahead, or `read`'s.
    pub fn take_or<E>(&self, read: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        match self.value.lock().ok().and_then(|mut slot| slot.take()) {
            Some(value) => Ok(value),
            None => read(),
        }
    }
}

impl<T> Default for ReadAhead<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_once_then_read_again() {
        static FACT: ReadAhead<u32> = ReadAhead::new();
        FACT.fill(|| Ok::<_, ()>(1));
        assert_eq!(FACT.take_or(|| Ok::<_, ()>(2)), Ok(1));
        assert_eq!(FACT.take_or(|| Ok::<_, ()>(2)), Ok(2));
        FACT.fill(|| Err::<u32, _>("unreadable"));
        assert_eq!(FACT.take_or(|| Err::<u32, _>("still")), Err("still"));
    }
}
