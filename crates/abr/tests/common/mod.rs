//! Test support: locate and load the shared ABR data (Norway traces, chunk sizes).

#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;

use stream_abr::sim::Trace;
use stream_abr::Ladder;

/// `$ABR_DATA_DIR`, else `<workspace>/../shared/abr` (CI clones the repo with
/// `shared/` beside it).
pub fn data_dir() -> PathBuf {
    match std::env::var_os("ABR_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/abr"),
    }
}

/// Pensieve ladder with the shared chunk sizes. Panics with a clear message
/// if the data is missing (the golden tests must not pass vacuously).
pub fn ladder() -> Ladder {
    let dir = data_dir();
    let sizes = (0..6)
        .map(|r| {
            let p = dir.join(format!("video_size_{r}"));
            let text = fs::read_to_string(&p).unwrap_or_else(|e| {
                panic!("ABR data missing: {} ({e}); set ABR_DATA_DIR", p.display())
            });
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.trim().parse::<u64>().expect("chunk size"))
                .collect()
        })
        .collect();
    Ladder::pensieve()
        .with_chunk_sizes(sizes)
        .expect("valid sizes")
}

/// The Norway traces in file-name order.
pub fn norway() -> Vec<Trace> {
    let dir = data_dir().join("norway");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "ABR data missing: {} ({e}); set ABR_DATA_DIR",
                dir.display()
            )
        })
        .map(|e| e.expect("dir entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            Trace::parse(name, &fs::read_to_string(p).expect("trace readable"))
                .expect("trace valid")
        })
        .collect()
}
