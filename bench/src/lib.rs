//! Shared bench helpers: CPU time from `getrusage`.

/// CPU seconds (user + system) used so far by this process (`RUSAGE_SELF`)
/// or by its waited-for children (`RUSAGE_CHILDREN`).
pub fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

pub use libc::{RUSAGE_CHILDREN, RUSAGE_SELF};
