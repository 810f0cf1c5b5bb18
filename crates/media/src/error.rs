//! Errors of the media pipeline.
//!
//! Every variant's `Display` is a sentence fit to show a user as the reason a
//! job failed ("the file is not a video: ..."); internal libav errors are
//! wrapped with the stage that hit them.

use thiserror::Error;

/// Why probing or transcoding a source failed.
#[derive(Debug, Error)]
pub enum MediaError {
    /// The bytes are not a container/codec we accept (PDF, random bytes, an
    /// HLS playlist or concat script disguised as video, ...).
    #[error("unsupported or unrecognised input: {0}")]
    Unsupported(String),
    /// The container parsed but its contents are unusable (no video stream,
    /// zero dimensions, no decodable frames, ...).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The header declares something beyond the configured [`crate::Limits`].
    #[error("input exceeds limits: {0}")]
    LimitExceeded(String),
    /// Fewer media were decoded than the header declares.
    #[error("input is truncated: {0}")]
    Truncated(String),
    /// The job was cancelled (shutdown or deletion).
    #[error("transcode cancelled")]
    Cancelled,
    /// A libav call failed in a named stage.
    #[error("{stage}: {source}")]
    Libav {
        stage: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// Writing outputs failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// A pipeline thread died or a stage disconnected unexpectedly.
    #[error("pipeline: {0}")]
    Pipeline(String),
}

impl MediaError {
    /// `true` when the failure is caused by the input (retrying the same
    /// input cannot succeed), `false` for environment failures worth a retry.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            MediaError::Unsupported(_)
                | MediaError::Invalid(_)
                | MediaError::LimitExceeded(_)
                | MediaError::Truncated(_)
        )
    }
}

/// Attach a stage name to a libav error.
pub(crate) trait Stage<T> {
    fn stage(self, stage: &'static str) -> Result<T, MediaError>;
}

impl<T> Stage<T> for Result<T, ffmpeg_next::Error> {
    fn stage(self, stage: &'static str) -> Result<T, MediaError> {
        self.map_err(|source| MediaError::Libav { stage, source })
    }
}
