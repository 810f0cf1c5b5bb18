//! Transcodes run in a child process of our own (the `transcoder` binary,
//! never the ffmpeg CLI), so untrusted input never runs libav inside the
//! service:
//!
//! * a crash in a demuxer or decoder (SIGSEGV, abort, OOM kill) ends the
//!   child, not ingest: the job fails or retries with a reason;
//! * the worker can stop a transcode at any instant (deadline, shutdown) by
//!   killing the child, even one stuck inside libav where no cancel flag is
//!   ever read;
//! * the child runs under resource limits ([`ChildLimits`]: address space,
//!   no core dumps, open files) and dies with its parent
//!   (`PR_SET_PDEATHSIG`), so a killed worker leaves no orphan encoding.
//!
//! Protocol (one type owns it: [`ChildMessage`]): the parent writes one JSON
//! [`ChildRequest`] line on the child's stdin; the child writes JSON lines
//! on stdout — [`ChildMessage::Event`] for each pipeline event, then exactly
//! one [`ChildMessage::Done`] or [`ChildMessage::Failed`] — and exits.
//! libav's log goes to stderr, which the child inherits. A child that exits
//! without a final message crashed.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use stream_media::{transcode, PipelineEvent, TranscodeOptions, TranscodeReport};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

/// Longest line the parent reads from the child, bytes (a plan with a
/// large ladder is a few KiB).
const MAX_LINE_BYTES: usize = 1 << 20;

/// What the child transcodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildRequest {
    /// Source file (scratch), read by the child.
    pub input: PathBuf,
    /// Output directory (scratch): one subdirectory per track.
    pub output_dir: PathBuf,
    pub options: TranscodeOptions,
}

/// One line of the child's stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ChildMessage {
    Event(PipelineEvent),
    Done(TranscodeReport),
    Failed {
        /// A sentence fit for the user ([`stream_media::MediaError`]'s text).
        reason: String,
        /// The input is at fault: a retry cannot succeed.
        input_error: bool,
    },
}

/// Resource limits applied to each child (`setrlimit(2)`).
#[derive(Debug, Clone, Copy)]
pub struct ChildLimits {
    /// `RLIMIT_AS`, bytes: a decoder that allocates without bound fails its
    /// allocation (an input error) instead of driving the node out of memory.
    pub max_memory_bytes: u64,
    /// `RLIMIT_NOFILE`.
    pub max_open_files: u64,
}

impl Default for ChildLimits {
    fn default() -> Self {
        ChildLimits {
            max_memory_bytes: 8 << 30,
            max_open_files: 1024,
        }
    }
}

/// Why a child transcode did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The pipeline reported a failure.
    #[error("{reason}")]
    Media { reason: String, input_error: bool },
    /// The child ended without a result: killed by a signal or crashed.
    #[error("transcoder crashed: {0}")]
    Crashed(String),
    /// The caller's `stop` token fired and the child was killed.
    #[error("transcoder stopped")]
    Stopped,
    /// The child could not be started or talked to.
    #[error("transcoder process: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs transcodes in child processes of `bin`.
#[derive(Debug, Clone)]
pub struct Transcoder {
    pub bin: PathBuf,
    pub limits: ChildLimits,
}

impl Transcoder {
    /// The `transcoder` binary beside the running executable.
    pub fn beside_current_exe() -> std::io::Result<PathBuf> {
        let exe = std::env::current_exe()?;
        Ok(exe.with_file_name("transcoder"))
    }

    /// Run `request` in a child; forward its events to `events` (progress
    /// is dropped when `events` is full, other events wait); kill the child
    /// as soon as `stop` fires.
    ///
    /// Errors: [`ChildError::Media`] for a failed transcode (with its
    /// input/environment classification), [`ChildError::Crashed`] when the
    /// child died without a result, [`ChildError::Stopped`] after `stop`.
    pub async fn run(
        &self,
        request: &ChildRequest,
        events: mpsc::Sender<PipelineEvent>,
        stop: CancellationToken,
    ) -> Result<TranscodeReport, ChildError> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let limits = self.limits;
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (setrlimit, prctl), allocating nothing.
        unsafe {
            cmd.pre_exec(move || apply_child_limits(&limits));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.bin.display())))?;
        let mut stdin = child.stdin.take().expect("stdin piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let talk = async {
            // A child that dies at once closes its stdin (EPIPE here): its
            // exit status says what happened, so the write error does not.
            let _ = stdin.write_all(&line).await;
            drop(stdin);
            let mut lines =
                FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
            let mut outcome = None;
            while let Some(line) = lines.next().await {
                let line = line.map_err(std::io::Error::other)?;
                match serde_json::from_str::<ChildMessage>(&line) {
                    Ok(ChildMessage::Event(ev @ PipelineEvent::Progress(_))) => {
                        let _ = events.try_send(ev);
                    }
                    Ok(ChildMessage::Event(ev)) => {
                        // The caller stopped listening: it is stopping us too.
                        let _ = events.send(ev).await;
                    }
                    Ok(end) => outcome = Some(end),
                    Err(e) => {
                        return Err(std::io::Error::other(format!("bad line from child: {e}")))
                    }
                }
            }
            Ok::<_, std::io::Error>(outcome)
        };
        let outcome = tokio::select! {
            o = talk => o,
            _ = stop.cancelled() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(ChildError::Stopped);
            }
        };
        let status = tokio::select! {
            s = child.wait() => s?,
            _ = stop.cancelled() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(ChildError::Stopped);
            }
        };
        match outcome? {
            Some(ChildMessage::Done(report)) if status.success() => Ok(report),
            Some(ChildMessage::Failed {
                reason,
                input_error,
            }) => Err(ChildError::Media {
                reason,
                input_error,
            }),
            _ => Err(ChildError::Crashed(describe_exit(status))),
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), _) => format!("exited with status {code} without a result"),
        _ => "ended without a result".into(),
    }
}

/// Between fork and exec: resource limits, no core dumps, die with the
/// parent.
fn apply_child_limits(limits: &ChildLimits) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let lim = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass; async-signal-safe.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, limits.max_memory_bytes)?;
    set(libc::RLIMIT_CORE, 0)?;
    set(libc::RLIMIT_NOFILE, limits.max_open_files)?;
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The child's `main`: read one [`ChildRequest`] from stdin, transcode,
/// report on stdout. Exit status 0 after `Done`, 1 after `Failed`, 2 for a
/// request it cannot read.
pub fn child_main() -> ExitCode {
    use std::io::{BufRead, Read, Write};
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_LINE_BYTES as u64)
        .read_line(&mut line);
    let request: ChildRequest = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str(&line).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("transcoder: bad request: {e}");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let emit = |msg: &ChildMessage| -> bool {
        let Ok(mut text) = serde_json::to_string(msg) else {
            return false;
        };
        text.push('\n');
        let mut out = stdout.lock();
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_ok()
    };
    // The parent gone (stdout closed) cancels the transcode.
    let cancel = AtomicBool::new(false);
    let result = transcode(
        &request.input,
        &request.output_dir,
        &request.options,
        &cancel,
        |ev| {
            if !emit(&ChildMessage::Event(ev)) {
                cancel.store(true, Ordering::Relaxed);
            }
        },
    );
    let (msg, code) = match result {
        Ok(report) => (ChildMessage::Done(report), 0),
        Err(e) => (
            ChildMessage::Failed {
                reason: e.to_string(),
                input_error: e.is_input_error(),
            },
            1,
        ),
    };
    emit(&msg);
    ExitCode::from(code)
}

/// `true` when `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
