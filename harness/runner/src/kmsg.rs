//! Kernel health: splats (WARN, BUG, Oops, KASAN, lockdep) in the kernel log during a case.
//!
//! (Stub: the integration work fills this in; the case lifecycle already calls it.)

/// Watches the kernel log from the moment it is started.
#[derive(Debug)]
pub struct Watch {}

impl Watch {
    /// Starts watching (`None` if /dev/kmsg cannot be read).
    pub fn start() -> Option<Watch> {
        None
    }

    /// Stops and returns the splats seen since the start, each with its lines.
    pub fn finish(self) -> Vec<String> {
        Vec::new()
    }
}
