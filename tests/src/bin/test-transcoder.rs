//! The ingest transcoder child for in-process test stacks (cargo builds a
//! package's binaries before its integration tests; the stack finds this
//! one beside the test executable).

fn main() -> std::process::ExitCode {
    stream_ingest::transcoder::child_main()
}
