//! Pure codecs for the kernel interfaces the harness observes (placeholder index; see modules).
pub mod mib;
