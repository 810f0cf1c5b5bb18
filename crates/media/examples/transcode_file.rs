//! Transcode one file with the default ladder and print wall and CPU
//! seconds: `cargo run --release -p stream-media --example transcode_file -- IN OUT_DIR [X264_THREADS]`.
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opts = stream_media::TranscodeOptions {
        x264_threads: args.get(3).map_or(0, |t| t.parse().unwrap()),
        ..Default::default()
    };
    let _ = std::fs::remove_dir_all(&args[2]);
    let (t0, c0) = (Instant::now(), cpu());
    let r = stream_media::transcode(
        args[1].as_ref(),
        args[2].as_ref(),
        &opts,
        &AtomicBool::new(false),
        |_| {},
    )
    .expect("transcode");
    println!(
        "threads={} wall {:.2} s, cpu {:.2} s, frames {}",
        opts.x264_threads,
        t0.elapsed().as_secs_f64(),
        cpu() - c0,
        r.frames_decoded
    );
}
