//! `streamctl play --knsock HOST:PORT`: the kn-sock 0.3.0 live-stream
//! protocol (`docs/knsock.md`), against the edge's compatible ports or
//! kn-sock's own `LiveStreamServer`: the video port (`{"videos": […]}`
//! line, `{"index": n}` line, then `!dI` timestamp + length + JPEG), the
//! audio port (+1: `AUD0` + `!dI` + PCM s16le stereo 44.1 kHz) and the
//! control port (+10: `{"buffer_level": seconds}` lines, once a second, as
//! kn-sock's client sends them).
//!
//! Frames go through the same jitter buffer as the native stream and are
//! decoded with libav's MJPEG decoder (unless `--no-decode`).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use stream_media::elementary::{Elementary, StreamDecoder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::jitter::JitterBuffer;
use crate::play::{Args, Summary};

/// Longest JPEG or PCM chunk accepted, bytes.
const MAX_CHUNK: u32 = 16 << 20;
/// Longest handshake line, bytes.
const MAX_LINE: usize = 64 * 1024;
/// The audio magic of kn-sock's audio port.
const AUDIO_MAGIC: &[u8; 4] = b"AUD0";

fn port_offset(addr: &str, offset: u16) -> Result<String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("{addr:?}: expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("{addr:?}: bad port"))?;
    Ok(format!(
        "{host}:{}",
        port.checked_add(offset)
            .ok_or_else(|| anyhow!("port overflow"))?
    ))
}

/// One `!dI` header + body, if complete, from `buf`.
fn take_chunk(buf: &mut BytesMut) -> Result<Option<(f64, Bytes)>> {
    if buf.len() < 12 {
        return Ok(None);
    }
    let ts = f64::from_be_bytes(buf[..8].try_into().unwrap_or([0; 8]));
    let len = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if len > MAX_CHUNK || !ts.is_finite() {
        bail!("bad kn-sock frame header (timestamp {ts}, length {len})");
    }
    if buf.len() < 12 + len as usize {
        return Ok(None);
    }
    buf.advance(12);
    Ok(Some((ts, buf.split_to(len as usize).freeze())))
}

/// Play kn-sock's protocol from `addr` (the video port).
pub async fn play(args: &Args, addr: &str) -> Result<Summary> {
    let video = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connect to {addr}: timed out"))??;
    let mut video = BufReader::new(video);
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        (&mut video).take(MAX_LINE as u64).read_line(&mut line),
    )
    .await
    .map_err(|_| anyhow!("no video list within 10 s"))??;
    let list: serde_json::Value =
        serde_json::from_str(line.trim()).with_context(|| format!("video list {line:?}"))?;
    let names: Vec<String> = list["videos"]
        .as_array()
        .ok_or_else(|| anyhow!("no \"videos\" in {line:?}"))?
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    let index = args.knsock_index;
    let name = names
        .get(index)
        .ok_or_else(|| anyhow!("index {index} is not in the offered list {names:?}"))?
        .clone();
    eprintln!("play: kn-sock offers {names:?}; playing {name:?}");
    video
        .get_mut()
        .write_all(format!("{{\"index\": {index}}}\n").as_bytes())
        .await?;
    // kn-sock's client connects audio, then control, after its selection.
    let audio_addr = match &args.knsock_audio {
        Some(a) => a.clone(),
        None => port_offset(addr, 1)?,
    };
    let control_addr = match &args.knsock_control {
        Some(a) => a.clone(),
        None => port_offset(addr, 10)?,
    };
    let audio = TcpStream::connect(&audio_addr).await.ok();
    let mut control = TcpStream::connect(&control_addr).await.ok();
    if audio.is_none() {
        eprintln!("play: no audio port; video only");
    }

    let mut decoder = if args.no_decode {
        None
    } else {
        Some(StreamDecoder::start(Elementary::Jpeg)?)
    };
    let started = Instant::now();
    let ms = |t: Instant| t.duration_since(started).as_secs_f64() * 1000.0;
    let deadline = args.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut jitter: JitterBuffer<Bytes> = JitterBuffer::new(args.jitter_ms);
    let mut s = Summary {
        renditions: vec![name],
        ..Default::default()
    };
    let mut vbuf = BytesMut::with_capacity(1 << 20);
    let mut abuf = BytesMut::with_capacity(1 << 16);
    let mut audio = audio;
    let mut last_ts: Option<f64> = None;
    let mut last_audio_ts: Option<f64> = None;
    let mut first_play: Option<Instant> = None;
    let mut feedback_at = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut chunk = vec![0u8; 256 * 1024];
    let mut achunk = vec![0u8; 64 * 1024];
    s.end = loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = video.read(&mut chunk) => match r {
                Ok(0) => break "the server closed the video connection".into(),
                Err(e) => break format!("video read: {e}"),
                Ok(n) => {
                    s.bytes += n as u64;
                    vbuf.extend_from_slice(&chunk[..n]);
                    while let Some((ts, jpeg)) = take_chunk(&mut vbuf)? {
                        let pts = (ts * 90_000.0).round() as i64;
                        let dur = last_ts.map_or(3600.0, |l| ((ts - l) * 90_000.0).clamp(0.0, 90_000.0));
                        last_ts = Some(ts);
                        if let Some(a) = last_audio_ts {
                            s.av_sync_ms_max = s.av_sync_ms_max.max((a - ts).abs() * 1000.0);
                        }
                        jitter.push(pts, dur as u32, jpeg, ms(Instant::now()));
                    }
                }
            },
            r = read_opt(&mut audio, &mut achunk) => match r {
                Ok(0) | Err(_) => audio = None,
                Ok(n) => {
                    s.bytes += n as u64;
                    abuf.extend_from_slice(&achunk[..n]);
                    // Bounded by the buffer: each turn consumes bytes or stops.
                    loop {
                        match abuf.windows(4).position(|w| w == AUDIO_MAGIC) {
                            Some(0) => {}
                            Some(i) => { abuf.advance(i); s.resyncs += 1; }
                            None => { let keep = abuf.len().min(3); abuf.advance(abuf.len() - keep); break; }
                        }
                        let mut rest = abuf.split_off(4);
                        match take_chunk(&mut rest)? {
                            Some((ts, _pcm)) => {
                                s.audio_frames += 1;
                                last_audio_ts = Some(ts);
                                abuf = rest;
                            }
                            None => { abuf.unsplit(rest); break; }
                        }
                    }
                }
            },
        }
        let now = Instant::now();
        for e in jitter.poll(ms(now)) {
            s.frames += 1;
            first_play.get_or_insert(now);
            if let Some(d) = decoder.as_mut() {
                d.submit(&e.item);
            }
        }
        if feedback_at.elapsed() >= Duration::from_secs(1) {
            feedback_at = now;
            if let Some(c) = control.as_mut() {
                let line = format!(
                    "{{\"buffer_level\": {:.3}}}\n",
                    jitter.level_ms(ms(now)) / 1000.0
                );
                if c.write_all(line.as_bytes()).await.is_err() {
                    control = None;
                }
            }
            if args.stats_ms > 0 {
                eprintln!(
                    "play: kn-sock {} frames, buffer {:.0} ms, stalls {}, audio chunks {}",
                    s.frames,
                    jitter.level_ms(ms(now)),
                    jitter.stalls,
                    s.audio_frames
                );
            }
        }
        if deadline.is_some_and(|d| now >= d) {
            break "the requested time is over".into();
        }
    };
    s.stalls = jitter.stalls;
    s.stall_ms = jitter.stall_ms;
    if let Some(t) = first_play {
        let secs = t.elapsed().as_secs_f64();
        if secs > 0.0 {
            s.fps = s.frames as f64 / secs;
        }
    }
    if let Some(d) = decoder.take() {
        let r = tokio::task::spawn_blocking(move || d.finish()).await?;
        s.decoded_frames = r.frames;
        s.decode_errors = r.errors;
        s.width = r.width;
        s.height = r.height;
    }
    Ok(s)
}

async fn read_opt(s: &mut Option<TcpStream>, buf: &mut [u8]) -> std::io::Result<usize> {
    match s {
        Some(s) => s.read(buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_and_ports() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&1.5f64.to_be_bytes());
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(b"ab");
        assert_eq!(take_chunk(&mut b).unwrap(), None);
        b.extend_from_slice(b"c");
        assert_eq!(
            take_chunk(&mut b).unwrap(),
            Some((1.5, Bytes::from_static(b"abc")))
        );
        let mut bad = BytesMut::new();
        bad.extend_from_slice(&1.0f64.to_be_bytes());
        bad.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(take_chunk(&mut bad).is_err());
        assert_eq!(port_offset("127.0.0.1:8000", 10).unwrap(), "127.0.0.1:8010");
        assert!(port_offset("nope", 1).is_err());
    }
}
