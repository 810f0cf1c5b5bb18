//! The edge's kn-sock 0.3.0 compatible ports in the stack: kn-sock's own
//! client (`tests/knsock/interop.py`, PyPI kn-sock==0.3.0 in the venv made
//! by `scripts/deps.sh`) plays two videos with feedback and audio; bad
//! input and connections past the cap close only that connection, with a
//! reason, while a viewer keeps receiving frames.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use stream_testkit::{samples, workspace_root};
use stream_tests::{Stack, StackOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// The venv's Python (`KNSOCK_PYTHON` overrides).
fn knsock_python() -> PathBuf {
    if let Some(p) = std::env::var_os("KNSOCK_PYTHON") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join(".cache/knsock-venv/bin/python");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/deps.sh (kn-sock 0.3.0, opencv-python-headless, numpy)",
        p.display()
    );
    p
}

/// A raw client of the video port.
struct Viewer {
    reader: BufReader<TcpStream>,
    offered: Vec<String>,
}

impl Viewer {
    async fn connect(addr: SocketAddr) -> Viewer {
        let sock = TcpStream::connect(addr).await.unwrap();
        let mut reader = BufReader::new(sock);
        let hello = read_line(&mut reader).await;
        let hello: serde_json::Value = serde_json::from_str(&hello).unwrap();
        let offered = hello["videos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(hello["session"].is_string(), "no session id in {hello}");
        Viewer { reader, offered }
    }

    async fn select(&mut self, name: &str) {
        let i = self.offered.iter().position(|n| n == name).unwrap();
        let line = format!("{{\"index\": {i}}}\n");
        self.reader
            .get_mut()
            .write_all(line.as_bytes())
            .await
            .unwrap();
    }

    /// Read `n` frames: (timestamp s, JPEG length).
    async fn frames(&mut self, n: usize) -> Vec<(f64, usize)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut header = [0u8; 12];
            tokio::time::timeout(Duration::from_secs(5), self.reader.read_exact(&mut header))
                .await
                .expect("a frame within 5 s")
                .unwrap();
            let ts = f64::from_be_bytes(header[..8].try_into().unwrap());
            let len = u32::from_be_bytes(header[8..].try_into().unwrap()) as usize;
            assert!(len > 2 && len < 10 << 20, "JPEG length {len}");
            let mut jpeg = vec![0u8; len];
            self.reader.read_exact(&mut jpeg).await.unwrap();
            assert_eq!(&jpeg[..2], &[0xff, 0xd8], "not a JPEG");
            out.push((ts, len));
        }
        out
    }
}

async fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(15), reader.read_line(&mut line))
        .await
        .expect("a line within 15 s")
        .unwrap();
    line
}

/// The next line is `{"error": …}` containing `reason`, then EOF.
async fn expect_error(reader: &mut BufReader<TcpStream>, reason: &str) {
    let line = read_line(reader).await;
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not an error line: {line:?}"));
    let got = v["error"].as_str().unwrap_or_default();
    assert!(
        got.contains(reason),
        "error {got:?} does not mention {reason:?}"
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut rest))
        .await
        .expect("closed after the error")
        .unwrap_or(0);
    assert_eq!(n, 0, "bytes after the error line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knsock_client_plays_and_bad_input_closes_only_its_connection() {
    let stack = Stack::start(StackOptions {
        knsock: true,
        ladder: Some("720:3000k,240:400k".into()),
        // kn-sock's client uses 3 connections; two of them run at once.
        knsock_max_connections: Some(8),
        ..Default::default()
    })
    .await
    .unwrap();
    let ports = stack.knsock.unwrap();
    stack.ingest_ready(samples::BIG_BUCK_BUNNY).await.unwrap();
    stack.ingest_ready(samples::BIKES).await.unwrap();

    // kn-sock's own client: bigbuckbunny (sound) with feedback, then a
    // second client on bikes (no audio track: silence).
    let script = workspace_root().join("tests/knsock/interop.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(knsock_python())
            .arg(&script)
            .args(["--host", "127.0.0.1"])
            .args(["--video-port", &ports.video.port().to_string()])
            .args(["--audio-port", &ports.audio.port().to_string()])
            .args(["--control-port", &ports.control.port().to_string()])
            .args(["--video", "bigbuckbunny", "--other", "bikes"])
            .args(["--expect-sound", "--other-silent", "--seconds", "6"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("interop.py finished within 120 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "interop.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("interop: {seen}");
    assert_eq!(seen["ok"], true);
    assert_eq!(seen["frame_size"], serde_json::json!([1280, 720]));

    // A viewer that keeps playing through everything below.
    let mut good = Viewer::connect(ports.video).await;
    good.select("bikes").await;
    let first = good.frames(5).await;
    let first_read = Instant::now();

    // Garbage instead of a selection.
    let mut v = Viewer::connect(ports.video).await;
    v.reader
        .get_mut()
        .write_all(b"hello there\n")
        .await
        .unwrap();
    expect_error(&mut v.reader, "not a JSON object").await;

    // A line without end.
    let mut v = Viewer::connect(ports.video).await;
    v.reader.get_mut().write_all(&[b'x'; 5000]).await.unwrap();
    expect_error(&mut v.reader, "longer than 4096").await;

    // An index outside the list.
    let mut v = Viewer::connect(ports.video).await;
    v.reader
        .get_mut()
        .write_all(b"{\"index\": 99}\n")
        .await
        .unwrap();
    expect_error(&mut v.reader, "index 99").await;

    // No selection at all: closed after the handshake timeout.
    let started = Instant::now();
    let mut v = Viewer::connect(ports.video).await;
    expect_error(&mut v.reader, "no selection within").await;
    assert!(started.elapsed() >= Duration::from_secs(9));

    // A control line without end (pairs with `good`'s session).
    let mut c = BufReader::new(TcpStream::connect(ports.control).await.unwrap());
    c.get_mut()
        .write_all(b"{\"buffer_level\": 0.5}\nnot json\n")
        .await
        .unwrap();
    c.get_mut().write_all(&[b'{'; 5000]).await.unwrap();
    expect_error(&mut c, "longer than 4096").await;

    // A control connection naming an unknown session.
    let mut c = BufReader::new(TcpStream::connect(ports.control).await.unwrap());
    c.get_mut()
        .write_all(b"{\"session\": \"nope\"}\n")
        .await
        .unwrap();
    expect_error(&mut c, "unknown session").await;

    // Audio from an address without a video connection.
    let s = TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut a = BufReader::new(s.connect(ports.audio).await.unwrap());
    expect_error(&mut a, "no video connection from this address").await;

    // The connection cap: connections waiting for their selection hold
    // slots; past the cap a connection gets the reason and is closed.
    let mut held = Vec::new();
    let refused = loop {
        let sock = TcpStream::connect(ports.video).await.unwrap();
        let mut reader = BufReader::new(sock);
        let line = read_line(&mut reader).await;
        if line.contains("too many connections") {
            break true;
        }
        assert!(line.contains("\"videos\""), "unexpected {line:?}");
        held.push(reader);
        if held.len() > 8 {
            break false;
        }
    };
    assert!(
        refused,
        "{} connections accepted with a cap of 8",
        held.len() + 1
    );
    assert!(held.len() <= 7, "{} held besides the viewer", held.len());
    drop(held);
    // Their slots come back once the server sees them close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut v = BufReader::new(TcpStream::connect(ports.video).await.unwrap());
        if read_line(&mut v).await.contains("\"videos\"") {
            break;
        }
        assert!(Instant::now() < deadline, "slots never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The good viewer was never cut off, and its stream kept going at
    // real time while it did not read: once it drains what the kernel and
    // its queue held (the queue dropped the rest), it is back at the live
    // point.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = first[4].0;
    loop {
        let (ts, _) = good.frames(1).await[0];
        assert!(ts > last, "timestamps increase ({last} then {ts})");
        last = ts;
        let live_point = first[4].0 + first_read.elapsed().as_secs_f64();
        if ts > live_point - 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never caught up: {ts} s vs {live_point} s"
        );
    }
    assert!(
        last - first[0].0 > 9.0,
        "media time advanced {:.2} s",
        last - first[0].0
    );
    stack.stop().await;
}

fn knsock_play_args(
    video: String,
    audio: Option<String>,
    control: Option<String>,
) -> streamctl::play::Args {
    streamctl::play::Args {
        url: String::new(),
        knsock: Some(video),
        knsock_index: 0,
        knsock_audio: audio,
        knsock_control: control,
        control: String::new(),
        token: None,
        rendition: None,
        jitter_ms: 300,
        seconds: Some(6.0),
        no_decode: false,
        output: None,
        stats_ms: 0,
        report_ms: 1000,
    }
}

/// `streamctl play --knsock` both ways: from kn-sock 0.3.0's own
/// `LiveStreamServer` (its default port layout: audio +1, control +10) and
/// from the edge's compatible ports; the JPEGs decode with libav and audio
/// chunks arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamctl_plays_from_knsocks_own_server_and_from_the_compatible_ports() {
    // kn-sock's own server on the sample.
    assert!(knsock_python().is_file());
    let peer = stream_tests::KnSockServer::start(&samples::path("bigbuckbunny.mp4"))
        .await
        .unwrap();
    let port = peer.video.port();
    let s = streamctl::knsock::play(
        &knsock_play_args(format!("127.0.0.1:{port}"), None, None),
        &format!("127.0.0.1:{port}"),
    )
    .await
    .expect("play from kn-sock's server");
    println!(
        "from kn-sock's server: {}",
        serde_json::to_string(&s).unwrap()
    );
    assert!(s.frames >= 40, "frames {}", s.frames);
    assert_eq!(s.decode_errors, 0);
    assert!(s.decoded_frames + 5 >= s.frames);
    assert!(s.width > 0);
    assert!(s.audio_frames > 0, "audio chunks from kn-sock's audio port");
    drop(peer);

    // The edge's compatible ports.
    let stack = Stack::start(StackOptions {
        ladder: Some("480:1400k,240:400k".into()),
        knsock: true,
        ..Default::default()
    })
    .await
    .unwrap();
    stack.ingest_ready("bigbuckbunny.mp4").await.unwrap();
    let ports = stack.knsock.unwrap();
    let args = knsock_play_args(
        ports.video.to_string(),
        Some(ports.audio.to_string()),
        Some(ports.control.to_string()),
    );
    let s = streamctl::knsock::play(&args, &ports.video.to_string())
        .await
        .expect("play from the edge");
    println!("from the edge: {}", serde_json::to_string(&s).unwrap());
    assert!(s.frames >= 100, "frames {}", s.frames);
    assert!(s.fps > 22.0, "fps {}", s.fps);
    assert_eq!(s.decode_errors, 0);
    assert!(s.decoded_frames + 5 >= s.frames);
    assert!(s.audio_frames > 100, "audio chunks {}", s.audio_frames);
    // Paced at real time (kn-sock's own server sends its WAV as fast as
    // the socket takes it), 1024-frame chunks at 44.1 kHz.
    let per_s = s.audio_frames as f64 / 6.0;
    assert!(
        per_s <= 1.2 * 44_100.0 / 1024.0,
        "{per_s:.1} audio chunks/s"
    );
    stack.stop().await;
}
