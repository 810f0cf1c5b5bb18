//! The transcode child process: one job from stdin, events on stdout (see
//! `stream_ingest::transcoder`). Started by ingest workers, not by people.

fn main() -> std::process::ExitCode {
    stream_ingest::transcoder::child_main()
}
