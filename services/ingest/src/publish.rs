//! Publishing packager output to the media store while the transcode runs.
//!
//! The packager writes each track into `scratch/<track>/`; on every
//! "segment closed" note the publisher re-reads that track's playlist
//! (m3u8-rs), uploads the init segment and any new media segments, then the
//! playlist itself, in that order, so a served playlist never names a
//! segment that is not servable. The master playlist is published once every
//! track has a segment (playable early: EVENT playlists), and rewritten at
//! the end with measured BANDWIDTH/AVERAGE-BANDWIDTH.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use stream_bus::media;
use stream_hls::bandwidth::measure;
use stream_hls::path::MASTER_NAME;
use stream_hls::{write_master, AudioRendition, VideoVariant};
use stream_media::{Track, TrackKind, PLAYLIST_NAME};
use stream_store::{MediaStore, StoreError};

/// Publishing errors.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read packager output: {0}")]
    Io(#[from] std::io::Error),
    #[error("packager wrote an unparsable playlist for {0}")]
    Playlist(String),
}

struct TrackState {
    track: Track,
    init_uploaded: bool,
    uploaded: HashSet<String>,
    /// (EXTINF seconds, bytes) of each published segment.
    segments: Vec<(f64, u64)>,
    target_duration_s: f64,
    ended: bool,
}

/// Publishes one video's tracks.
pub struct Publisher {
    store: MediaStore,
    video_id: String,
    dir: PathBuf,
    tracks: Vec<TrackState>,
    master_published: bool,
}

impl Publisher {
    /// `dir` is the packager's output directory.
    pub fn new(store: MediaStore, video_id: &str, dir: &Path, tracks: &[Track]) -> Self {
        Publisher {
            store,
            video_id: video_id.to_string(),
            dir: dir.to_path_buf(),
            tracks: tracks
                .iter()
                .map(|t| TrackState {
                    track: t.clone(),
                    init_uploaded: false,
                    uploaded: HashSet::new(),
                    segments: Vec::new(),
                    target_duration_s: 2.0,
                    ended: false,
                })
                .collect(),
            master_published: false,
        }
    }

    /// Upload what is new in `track`'s directory. Unknown names are ignored.
    pub async fn sync_track(&mut self, name: &str) -> Result<(), PublishError> {
        let Some(idx) = self.tracks.iter().position(|t| t.track.name == name) else {
            return Ok(());
        };
        let track_dir = self.dir.join(name);
        let text = match tokio::fs::read(track_dir.join(PLAYLIST_NAME)).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let playlist = match m3u8_rs::parse_playlist_res(&text) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
            _ => return Err(PublishError::Playlist(name.to_string())),
        };
        let video_id = self.video_id.clone();
        let state = &mut self.tracks[idx];
        state.target_duration_s = playlist.target_duration as f64;
        if !state.init_uploaded {
            if let Some(map) = playlist.segments.iter().find_map(|s| s.map.as_ref()) {
                let file = track_dir.join(&map.uri);
                let key = MediaStore::video_object(&video_id, &format!("{name}/{}", map.uri));
                self.store.put_file(&key, &file).await?;
                state.init_uploaded = true;
            }
        }
        for seg in &playlist.segments {
            if state.uploaded.contains(&seg.uri) {
                continue;
            }
            let file = track_dir.join(&seg.uri);
            let key = MediaStore::video_object(&video_id, &format!("{name}/{}", seg.uri));
            let size = self.store.put_file(&key, &file).await?;
            state.uploaded.insert(seg.uri.clone());
            state.segments.push((f64::from(seg.duration), size));
        }
        let key = MediaStore::video_object(&video_id, &format!("{name}/{PLAYLIST_NAME}"));
        self.store.put_bytes(&key, Bytes::from(text)).await?;
        state.ended = playlist.end_list;
        Ok(())
    }

    /// Whether every track has at least one published segment.
    pub fn all_tracks_started(&self) -> bool {
        self.tracks.iter().all(|t| !t.segments.is_empty())
    }

    /// Whether every track's playlist is final (EXT-X-ENDLIST).
    pub fn all_tracks_ended(&self) -> bool {
        self.tracks.iter().all(|t| t.ended)
    }

    /// Publish the master playlist once every track has started; returns
    /// `true` the first time it is published. Before the end, bandwidths are
    /// the encoder targets (VBV max rate as peak).
    pub async fn publish_master_if_playable(&mut self) -> Result<bool, PublishError> {
        if self.master_published || !self.all_tracks_started() {
            return Ok(false);
        }
        self.write_master(false).await?;
        self.master_published = true;
        Ok(true)
    }

    /// Rewrite the master with measured bitrates (call once every track ended).
    pub async fn publish_final_master(&mut self) -> Result<(), PublishError> {
        self.write_master(true).await?;
        self.master_published = true;
        Ok(())
    }

    async fn write_master(&self, measured: bool) -> Result<(), PublishError> {
        let tracks: Vec<(&Track, (u64, u64))> = self
            .tracks
            .iter()
            .enumerate()
            .map(|(i, t)| (&t.track, self.bitrates(i, measured)))
            .collect();
        let key = MediaStore::video_object(&self.video_id, MASTER_NAME);
        self.store
            .put_bytes(&key, Bytes::from(master_text(&tracks)))
            .await?;
        Ok(())
    }

    /// (peak, average) bit/s of track `i`: measured from published segments,
    /// or the encoder targets.
    fn bitrates(&self, i: usize, measured: bool) -> (u64, u64) {
        let t = &self.tracks[i];
        if measured && !t.segments.is_empty() {
            return measure(&t.segments, t.target_duration_s);
        }
        target_bitrates(&t.track)
    }

    /// The renditions as event payloads (measured bitrates when `measured`).
    pub fn renditions(&self, measured: bool) -> Vec<media::Rendition> {
        (0..self.tracks.len())
            .map(|i| self.rendition(i, measured))
            .collect()
    }

    fn rendition(&self, i: usize, measured: bool) -> media::Rendition {
        let t = &self.tracks[i];
        rendition_of(&t.track, self.bitrates(i, measured), t.ended)
    }

    /// Names of tracks that ended, in order.
    pub fn ended_tracks(&self) -> Vec<String> {
        self.tracks
            .iter()
            .filter(|t| t.ended)
            .map(|t| t.track.name.clone())
            .collect()
    }

    /// Rendition payload by name (measured).
    pub fn rendition_by_name(&self, name: &str) -> Option<media::Rendition> {
        let i = self.tracks.iter().position(|t| t.track.name == name)?;
        Some(self.rendition(i, true))
    }

    /// Duration of the published video: the longest track's EXTINF sum, s.
    pub fn duration_s(&self) -> f64 {
        self.tracks
            .iter()
            .filter(|t| matches!(t.track.kind, TrackKind::Video { .. }))
            .map(|t| t.segments.iter().map(|(d, _)| d).sum::<f64>())
            .fold(0.0, f64::max)
    }
}

/// The master playlist of `tracks`, each with its (peak, average) bit/s.
pub fn master_text(tracks: &[(&Track, (u64, u64))]) -> String {
    let mut videos = Vec::new();
    let mut audio = None;
    for (track, (peak, avg)) in tracks {
        let uri = format!("{}/{PLAYLIST_NAME}", track.name);
        match &track.kind {
            TrackKind::Video { plan, frame_rate } => videos.push(VideoVariant {
                uri,
                width: plan.width,
                height: plan.height,
                frame_rate: *frame_rate,
                codecs: track.codecs.clone(),
                peak_bps: *peak,
                average_bps: *avg,
            }),
            TrackKind::Audio { channels, .. } => {
                audio = Some(AudioRendition {
                    uri,
                    codecs: track.codecs.clone(),
                    channels: *channels,
                    peak_bps: *peak,
                    average_bps: *avg,
                })
            }
        }
    }
    write_master(&videos, audio.as_ref())
}

/// Encoder targets of a track as (peak, average) bit/s.
pub fn target_bitrates(track: &Track) -> (u64, u64) {
    match &track.kind {
        TrackKind::Video { plan, .. } => (plan.max_bitrate, plan.video_bitrate),
        TrackKind::Audio { bitrate, .. } => (*bitrate * 11 / 10, *bitrate),
    }
}

/// A track as an event payload.
pub fn rendition_of(track: &Track, (peak, avg): (u64, u64), ready: bool) -> media::Rendition {
    let (width, height, frame_rate, audio) = match &track.kind {
        TrackKind::Video { plan, frame_rate } => (plan.width, plan.height, *frame_rate, false),
        TrackKind::Audio { .. } => (0, 0, 0.0, true),
    };
    media::Rendition {
        name: track.name.clone(),
        width,
        height,
        bandwidth_bps: peak,
        average_bandwidth_bps: avg,
        codecs: track.codecs.clone(),
        frame_rate,
        playlist: format!("{}/{PLAYLIST_NAME}", track.name),
        audio,
        ready,
    }
}
