//! The tokio runtime of the native client: created on first use, one per process.
//!
//! A runtime inherited through `fork()` has no threads in the child (only the forking
//! thread survives) and may hold locks that will never be released, so it can be neither
//! used nor dropped there. Each process therefore builds its own the first time it needs
//! one, and an inherited runtime is leaked, never touched.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use tokio::runtime::{Builder, Runtime};

struct ProcessRuntime {
    pid: u32,
    runtime: Runtime,
}

/// Points to a leaked `ProcessRuntime` (or is null): never freed, so always valid.
static CURRENT: AtomicPtr<ProcessRuntime> = AtomicPtr::new(ptr::null_mut());

/// This process's runtime, built on first use.
pub fn runtime() -> io::Result<&'static Runtime> {
    let pid = std::process::id();
    let current = CURRENT.load(Ordering::Acquire);
    if let Some(slot) = leaked(current)
        && slot.pid == pid
    {
        return Ok(&slot.runtime);
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    let runtime = Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("distilabel-rs-io")
        .enable_all()
        .build()?;
    let fresh: &'static mut ProcessRuntime = Box::leak(Box::new(ProcessRuntime { pid, runtime }));
    match CURRENT.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(&fresh.runtime),
        // Another thread of this process won the race: use its runtime (ours stays unused;
        // leaking it is simpler than shutting it down and costs two idle threads once).
        Err(winner) => leaked(winner).map_or(Ok(&fresh.runtime), |slot| Ok(&slot.runtime)),
    }
}

#[allow(unsafe_code)]
fn leaked(slot: *mut ProcessRuntime) -> Option<&'static ProcessRuntime> {
    // SAFETY: CURRENT only ever holds null or a pointer from `Box::leak`, which is never
    // freed, so a non-null pointer is valid for the rest of the process.
    unsafe { slot.as_ref() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runtime_per_process() {
        let first = runtime().expect("runtime") as *const Runtime;
        let second = runtime().expect("runtime") as *const Runtime;
        assert_eq!(first, second);
        assert_eq!(runtime().expect("runtime").block_on(async { 1 + 1 }), 2);
    }
}
