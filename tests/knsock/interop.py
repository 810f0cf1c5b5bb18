#!/usr/bin/env python3
"""Drive the edge's kn-sock 0.3.0 compatible ports with kn-sock's own client.

kn-sock's `LiveStreamClient` (PyPI kn-sock==0.3.0, `kn_sock/live_stream.py`)
does the handshake, receives and decodes the JPEG frames (cv2.imdecode),
plays them through its `JitterBuffer`, and reads the audio port. This script
only replaces what needs a desktop: `pyaudio` (a fake module whose output
stream records what it is given), `cv2.imshow` (the played frames are
counted instead) and `input()` (the video is chosen by name). Its sockets
are wrapped in a tee that parses what arrives on the wire, so the checks see
exactly the bytes kn-sock's client read:

* every video frame is `struct.pack("!dI", timestamp_s, length)` + a JPEG
  that OpenCV decodes; timestamps strictly increase and advance at real
  time (media seconds per wall second within [0.8, 1.2]);
* buffer feedback changes the JPEG quality: a batch of five
  `{"buffer_level": 0.0}` lines in one write (kn-sock's step is 10 per line,
  80 → 40) gives frames with coarser quantisation (luma DQT sum up) and
  fewer bytes; a batch of five `{"buffer_level": 1.0}` (→ 90) finer and more;
* audio chunks are `b"AUD0"` + `"!dI"` + 1024 stereo s16le frames (4096
  bytes), media timestamps advancing by 1024/44100 s each, delivered at no
  more than 1.2 × real time (kn-sock's own server sends ~1000×);
* with `--other NAME`, a second client selecting another video gets that
  video's audio (`--expect-sound` / `--other-silent` check which one is
  silent): audio follows the selected video.

kn-sock's client sends its own feedback once a second from its jitter
buffer's fill level; that level depends on thread timing, so this script
replaces that loop with a scripted one sending the same JSON lines on the
same control connection.

Exit status 0 and one JSON line on stdout when every check holds; otherwise
exit 1 with the reason on stderr (and the JSON line of what was seen).
"""

import argparse
import builtins
import json
import math
import os
import struct
import sys
import threading
import time
import types

# --- pyaudio stub (kn_sock.live_stream imports it; no audio device here) ---


class _FakeStream:
    def __init__(self):
        self.written = 0  # bytes

    def write(self, chunk):
        self.written += len(chunk)

    def stop_stream(self):
        pass

    def close(self):
        pass


class _FakePyAudio:
    def open(self, **_kwargs):
        return _FakeStream()

    def terminate(self):
        pass


sys.modules["pyaudio"] = types.SimpleNamespace(paInt16=8, PyAudio=_FakePyAudio)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from kn_sock import live_stream  # noqa: E402

SAMPLE_RATE = 44100
CHUNK_FRAMES = 1024
CHUNK_BYTES = CHUNK_FRAMES * 2 * 2


def luma_dqt_sum(jpeg):
    """Sum of the 64 entries of quantisation table 0 (luma), or None."""
    i = 2
    while i + 4 <= len(jpeg):
        if jpeg[i] != 0xFF:
            return None
        marker = jpeg[i + 1]
        seg_len = struct.unpack(">H", jpeg[i + 2 : i + 4])[0]
        if marker == 0xDB:
            j, end = i + 4, i + 2 + seg_len
            while j < end:
                pq, tq = jpeg[j] >> 4, jpeg[j] & 15
                size = 128 if pq else 64
                table = jpeg[j + 1 : j + 1 + size]
                if tq == 0:
                    if pq:
                        return sum(struct.unpack(">64H", table))
                    return sum(table)
                j += 1 + size
        if marker == 0xDA:
            return None
        i += 2 + seg_len
    return None


class Tee:
    """A socket wrapper that parses everything kn-sock's client receives."""

    def __init__(self, sock, kind):
        self._sock = sock
        self.kind = kind
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.handshake = None
        self.frames = []  # (wall_s, media_ts_s, JPEG length, luma DQT sum, first JPEG)
        self.chunks = []  # (wall_s, media_ts_s, pcm bytes len, rms)
        self.errors = []

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def recv(self, n, *flags):
        data = self._sock.recv(n, *flags)
        if data:
            with self.lock:
                self.buf += data
                try:
                    self._parse()
                except Exception as e:  # parse errors are findings
                    self.errors.append(str(e))
                    self.buf.clear()
        return data

    def _parse(self):
        now = time.monotonic()
        if self.kind == "video" and self.handshake is None:
            nl = self.buf.find(b"\n")
            if nl < 0:
                return
            self.handshake = json.loads(bytes(self.buf[:nl]))
            del self.buf[: nl + 1]
        while True:
            if self.kind == "video":
                if len(self.buf) < 12:
                    return
                ts, length = struct.unpack("!dI", self.buf[:12])
                if len(self.buf) < 12 + length:
                    return
                jpeg = bytes(self.buf[12 : 12 + length])
                del self.buf[: 12 + length]
                # Only the first JPEG is kept whole (decoded by the checks).
                keep = jpeg if not self.frames else None
                self.frames.append((now, ts, length, luma_dqt_sum(jpeg), keep))
            else:
                if len(self.buf) < 16:
                    return
                if self.buf[:4] != live_stream.AUDIO_MAGIC:
                    raise ValueError(f"audio chunk without AUD0 magic: {bytes(self.buf[:4])!r}")
                ts, length = struct.unpack("!dI", self.buf[4:16])
                if len(self.buf) < 16 + length:
                    return
                pcm = np.frombuffer(bytes(self.buf[16 : 16 + length]), dtype="<i2")
                del self.buf[: 16 + length]
                rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0
                self.chunks.append((now, ts, length, rms))


class Client(live_stream.LiveStreamClient):
    """kn-sock's client with the desktop parts replaced (see module doc)."""

    def __init__(self, args, want):
        super().__init__(
            host=args.host,
            video_port=args.video_port,
            audio_port=args.audio_port,
            control_port=args.control_port,
            video_fps=25,
        )
        self.want = want
        self.video_socket = Tee(self.video_socket, "video")
        self.audio_socket = Tee(self.audio_socket, "audio")
        self.played = 0
        self.played_shapes = set()

    def _play_video_frame(self, frame):
        if frame is not None:
            self.played += 1
            self.played_shapes.add(tuple(frame.shape))

    def _send_feedback_loop(self):
        # Replaced by `send_feedback` (scripted); see the module doc.
        pass

    def send_feedback(self, levels):
        """All `levels` as JSON lines in one write (kn-sock's format)."""
        msg = "".join(json.dumps({"buffer_level": b}) + "\n" for b in levels)
        self.control_socket.sendall(msg.encode())

    def select(self):
        names = (self.video_socket.handshake or {}).get("videos", [])
        if self.want not in names:
            fail(f"video {self.want!r} not offered; the server offers {names}")
        return str(names.index(self.want))


RESULT = {}


def fail(reason):
    RESULT["ok"] = False
    RESULT["reason"] = reason
    print(json.dumps(RESULT), flush=True)
    print(f"interop: FAIL: {reason}", file=sys.stderr, flush=True)
    # kn-sock's receive threads are not daemons and spin on a closed socket
    # (`while len(data) < msg_size: data += recv(...)`): leave at once.
    os._exit(1)


def wait_for(pred, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    fail(f"timed out after {timeout_s} s waiting for {what}")


def frames_after(tee, t):
    with tee.lock:
        return [f for f in tee.frames if f[0] >= t]


def quality_phase(client, levels, label):
    """Send `levels`, wait for frames whose DQT differs from before, measure."""
    tee = client.video_socket
    with tee.lock:
        before = tee.frames[-1][3]
    client.send_feedback(levels)
    t0 = time.monotonic()
    wait_for(lambda: any(f[3] != before for f in frames_after(tee, t0)), 5, f"{label}: a frame with a new JPEG quality")
    # Frames already queued or encoded before the change may come at an
    # intermediate tier: measure from half a second later.
    settled = next(f[0] for f in frames_after(tee, t0) if f[3] != before) + 0.5
    wait_for(lambda: len(frames_after(tee, settled)) >= 12, 5, f"{label}: 12 frames")
    sample = frames_after(tee, settled)[:12]
    dqts = {f[3] for f in sample}
    if len(dqts) != 1:
        fail(f"{label}: JPEG quality not steady after feedback (luma DQT sums {sorted(dqts)})")
    return {"dqt_sum": sample[0][3], "mean_bytes": sum(f[2] for f in sample) / len(sample)}


def check_audio(tee, label, min_wall_s):
    chunks = list(tee.chunks)
    if len(chunks) < 20:
        fail(f"{label}: only {len(chunks)} audio chunks")
    for c in chunks:
        if c[2] != CHUNK_BYTES:
            fail(f"{label}: audio chunk of {c[2]} bytes, expected {CHUNK_BYTES}")
    ts = [c[1] for c in chunks]
    step = CHUNK_FRAMES / SAMPLE_RATE
    for a, b in zip(ts, ts[1:]):
        if not b > a:
            fail(f"{label}: audio timestamps not increasing ({a} then {b})")
        k = (b - a) / step
        if abs(k - round(k)) > 1e-3:
            fail(f"{label}: audio timestamp step {b - a} s is not a whole number of 1024-frame chunks")
    wall = chunks[-1][0] - chunks[0][0]
    if wall < min_wall_s:
        fail(f"{label}: audio arrived over {wall:.2f} s only")
    # Chunks after the first: frames delivered per wall second.
    rate = (len(chunks) - 1) * CHUNK_FRAMES / SAMPLE_RATE / wall
    media_rate = (ts[-1] - ts[0]) / wall
    if rate > 1.2:
        fail(f"{label}: audio arrives at {rate:.2f}× real time (> 1.2×)")
    if rate < 0.8:
        fail(f"{label}: audio arrives at {rate:.2f}× real time (< 0.8×)")
    return {
        "chunks": len(chunks),
        "wall_s": round(wall, 3),
        "realtime_ratio": round(rate, 3),
        "media_per_wall": round(media_rate, 3),
        "rms": round(float(np.mean([c[3] for c in chunks])), 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--video-port", type=int, default=8000)
    ap.add_argument("--audio-port", type=int, default=8001)
    ap.add_argument("--control-port", type=int, default=8010)
    ap.add_argument("--video", required=True, help="name offered in the handshake")
    ap.add_argument("--other", help="a second client selects this video")
    ap.add_argument("--expect-sound", action="store_true", help="--video has audible audio")
    ap.add_argument("--other-silent", action="store_true", help="--other's audio is silence")
    ap.add_argument("--seconds", type=float, default=6.0, help="audio measurement span")
    args = ap.parse_args()

    clients = []
    wanted = [args.video] + ([args.other] if args.other else [])
    for want in wanted:
        c = Client(args, want)
        # kn-sock asks on stdin when several videos are offered.
        builtins.input = lambda _prompt="", c=c: c.select()
        c.start()
        if not c._running.is_set() or c.video_socket.handshake is None:
            fail(f"client for {want!r}: connection failed")
        clients.append(c)
    main_client = clients[0]
    tee = main_client.video_socket
    RESULT["videos"] = tee.handshake.get("videos")

    wait_for(lambda: len(tee.frames) >= 25, 10, "25 video frames")
    first = tee.frames[0][4]
    img = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        fail("the first JPEG does not decode with OpenCV")
    RESULT["frame_size"] = [int(img.shape[1]), int(img.shape[0])]
    start_dqt = tee.frames[-1][3]
    if start_dqt is None:
        fail("JPEG without a luma quantisation table")

    low = quality_phase(main_client, [0.0] * 5, "low buffer")
    high = quality_phase(main_client, [1.0] * 5, "high buffer")
    RESULT["quality"] = {"start_dqt_sum": start_dqt, "low": low, "high": high}
    if not low["dqt_sum"] > start_dqt > high["dqt_sum"]:
        fail(f"feedback did not move the quality as kn-sock's rule says: {RESULT['quality']}")
    if not low["mean_bytes"] * 1.3 < high["mean_bytes"]:
        fail(f"JPEG size barely follows quality: {RESULT['quality']}")

    # Audio: measure at least `seconds` of it.
    atee = main_client.audio_socket
    wait_for(lambda: len(atee.chunks) >= 2 and atee.chunks[-1][0] - atee.chunks[0][0] >= args.seconds,
             args.seconds + 10, f"{args.seconds} s of audio")
    RESULT["audio"] = check_audio(atee, args.video, args.seconds)
    if args.expect_sound and RESULT["audio"]["rms"] < 10:
        fail(f"{args.video}: audio is silent (RMS {RESULT['audio']['rms']}) but the video has sound")
    if args.other:
        other = clients[1]
        RESULT["other_audio"] = check_audio(other.audio_socket, args.other, 1.0)
        if args.other_silent and RESULT["other_audio"]["rms"] != 0.0:
            fail(f"{args.other}: audio not silent: the audio port did not follow the selected video")
        if len(other.video_socket.frames) < 10:
            fail(f"{args.other}: only {len(other.video_socket.frames)} video frames")

    # Video: timestamps and pacing over everything received.
    frames = list(tee.frames)
    ts = [f[1] for f in frames]
    for a, b in zip(ts, ts[1:]):
        if not b > a:
            fail(f"video timestamps not increasing ({a} then {b})")
    wall = frames[-1][0] - frames[0][0]
    RESULT["video"] = {
        "frames": len(frames),
        "fps": round((len(frames) - 1) / wall, 2),
        "media_per_wall": round((ts[-1] - ts[0]) / wall, 3),
        "played_by_knsock": main_client.played,
    }
    if not 0.8 <= RESULT["video"]["media_per_wall"] <= 1.2:
        fail(f"video not paced at real time: {RESULT['video']}")
    if main_client.played < 10:
        fail(f"kn-sock's jitter buffer played only {main_client.played} decoded frames")
    for c in clients:
        if c.video_socket.errors or c.audio_socket.errors:
            fail(f"wire format errors: {c.video_socket.errors + c.audio_socket.errors}")
    RESULT["ok"] = True
    print(json.dumps(RESULT), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
