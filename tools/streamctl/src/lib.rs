//! `streamctl` — operator and developer command-line tool (the library
//! behind the binary; tests drive `play` through it).
//!
//! Subcommands:
//! - `abr-sim`: run ABR algorithms through the trace-driven simulator of
//!   `stream_abr::sim` and print a table plus one JSON summary line.
//! - `live start|stop|ls`: live channels through the control plane's gRPC
//!   API.
//! - `play tcp://HOST:9000/<id>`: the native stream's client (jitter
//!   buffer, decoding, feedback, stats, one JSON summary line).

pub mod abr_sim;
pub mod jitter;
pub mod knsock;
pub mod live;
pub mod play;
