#!/usr/bin/python3
"""A real RTSP server (GStreamer gst-rtsp-server) for edgecam's ingest tests and benchmarks.

Serves `/cam0` .. `/cam{N-1}` on 127.0.0.1 with moving content plus noise, H.264 from x264enc
(zerolatency, ultrafast, fixed GOP), packetized by rtph264pay with SPS/PPS before every
keyframe. Each mount's media is shared, so N clients of one mount cost one encoder.
Live encoding of 1080p25 with noise needs more than two cores; `--clip-seconds` encodes a
clip once and then loops it at real-time pace for next to no CPU.

Prints `READY port=NNNN` on stdout once it is listening, then reads commands on stdin, one per
line:
  pause   stop producing frames on every mount, without closing any session
  resume  produce frames again
  quit    exit
EOF stdin also exits. `--drop-every S` closes every client connection each S seconds.
`--udp-only` refuses RTSP over TCP (461 to an interleaved SETUP), like VLC's server. Run it with Debian's /usr/bin/python3 (the gi bindings live there).
"""

import argparse
import os
import sys
import tempfile
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    p.add_argument("--mounts", type=int, default=1, help="number of mounts /cam0../camN-1")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate", type=int, default=4000, help="x264 bitrate in kbit/s")
    p.add_argument("--gop", type=int, default=0, help="keyframe interval in frames; 0 = 2 s")
    p.add_argument("--no-noise", action="store_true", help="moving content only (cheaper)")
    p.add_argument(
        "--profile",
        choices=["baseline", "main", "high", "high-4:4:4"],
        default="baseline",
        help="H.264 profile: baseline (ultrafast, cheapest to encode; the tests) or main/high "
        "(veryfast, like an IP camera's stream; for benchmarks, best with --clip-seconds); "
        "high-4:4:4 (4:4:4 chroma, which openh264 cannot decode: the undecodable-stream tests)",
    )
    p.add_argument(
        "--bframes",
        type=int,
        default=0,
        help="B-frames between references (x264 bframes=N, no zerolatency tune: frames are "
        "sent in decode order, as ffmpeg/VLC relays of libx264 files do); main/high only, "
        "live encoding only (the clip loop stamps pts = dts)",
    )
    p.add_argument("--user", default=None, help="require this user name on every mount")
    p.add_argument("--password", default=None, help="password for --user")
    p.add_argument("--auth", choices=["basic", "digest"], default="digest")
    p.add_argument(
        "--clip-seconds",
        type=int,
        default=0,
        help="encode this many seconds once (cached in --cache-dir), then serve the clip in a "
        "loop: costs almost no CPU while serving, for 1080p benchmarks on small machines",
    )
    p.add_argument(
        "--audio-mount",
        action="store_true",
        help="also serve /audio: G.711 A-law audio and no video (a camera without H.264)",
    )
    p.add_argument(
        "--jpeg-mounts",
        action="store_true",
        help="also serve /jpeg: RTP/JPEG (RFC 2435) video only, like an older MJPEG camera; "
        "and /both: RTP/JPEG first, then H.264, in one session description",
    )
    p.add_argument(
        "--h265-mount",
        action="store_true",
        help="also serve /h265: H.265 Main from x265enc (zerolatency, ultrafast, the same GOP), "
        "packetized by rtph265pay with VPS/SPS/PPS before every keyframe, like the default main "
        "stream of most current IP cameras",
    )
    p.add_argument(
        "--zoo-mounts",
        action="store_true",
        help="also serve the camera-zoo mounts: /av (G.711 audio listed first, then H.264), "
        "/va (H.264 first, audio last), /sdp-params (H.264 with SPS/PPS only in the SDP's "
        "sprop-parameter-sets, none in band) and /resize (H.264 whose picture size changes "
        "from --width x --height to half of it --resize-after seconds into each session)",
    )
    p.add_argument("--resize-after", type=int, default=3, help="seconds before /resize halves")
    p.add_argument(
        "--drop-every",
        type=int,
        default=0,
        help="close every client's session every this many seconds, like a camera that "
        "reboots (0 = never; the soak benchmark)",
    )
    p.add_argument(
        "--udp-only",
        action="store_true",
        help="refuse RTP over the RTSP TCP connection (461 to an interleaved SETUP), like VLC's "
        "server: a camera without TCP transport",
    )
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "edgecam-rtsp-clips"))
    return p.parse_args()


def gop_frames(a):
    return a.gop if a.gop > 0 else 2 * a.fps


def encoder(a):
    # zerolatency: no B-frames and no lookahead, like a camera's live stream. With --bframes
    # the tune is left out (it forces bframes=0) and x264 reorders frames.
    preset = "ultrafast" if a.profile == "baseline" else "veryfast"
    tune = f"bframes={a.bframes}" if a.bframes > 0 else "tune=zerolatency"
    # 4:4:4 needs 4:4:4 input; every other profile encodes the I420 content as it is.
    chroma = " videoconvert ! video/x-raw,format=Y444 !" if a.profile == "high-4:4:4" else ""
    return (
        f"{chroma} x264enc {tune} speed-preset={preset} bitrate={a.bitrate} "
        f"key-int-max={gop_frames(a)} ! video/x-h264,profile={a.profile},stream-format=byte-stream"
    )


def content(a, num_buffers):
    """Raw I420 video as a launch-line fragment to append ` ! next` to: a moving SMPTE chart
    with snow blended in (or a moving ball with --no-noise). `num_buffers` 0 = live, endless."""
    caps = f"video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1"
    n = f" num-buffers={num_buffers}" if num_buffers else ""
    live = "" if num_buffers else " is-live=true"
    if a.no_noise:
        return f"videotestsrc{live}{n} pattern=ball ! {caps} ! videoconvert ! video/x-raw,format=I420"
    # Motion keeps P-frames busy; the noise keeps the bitrate near the target like a real
    # sensor at night.
    return (
        f"videotestsrc{live}{n} pattern=smpte horizontal-speed=4 ! {caps} ! comp.sink_0 "
        f"videotestsrc{live}{n} pattern=snow ! {caps} ! comp.sink_1 "
        f"compositor name=comp background=black sink_1::alpha=0.12 ! videoconvert ! "
        f"video/x-raw,format=I420"
    )


def make_clip(a):
    """Encodes the clip once, in whole GOPs so the loop restarts on a keyframe, and returns
    its access units. Cached on disk as (4-byte big-endian length, access unit) records."""
    gop = gop_frames(a)
    frames = max(1, (a.clip_seconds * a.fps + gop - 1) // gop) * gop
    noise = "ball" if a.no_noise else "noise"
    name = f"{a.width}x{a.height}-{a.fps}fps-{a.bitrate}k-gop{gop}-{frames}f-{noise}-{a.profile}.aus"
    os.makedirs(a.cache_dir, exist_ok=True)
    path = os.path.join(a.cache_dir, name)
    if not os.path.exists(path):
        pipe = Gst.parse_launch(
            f"{content(a, frames)} ! {encoder(a)} ! h264parse ! video/x-h264,alignment=au ! "
            f"appsink name=out sync=false emit-signals=false max-buffers=0"
        )
        out = pipe.get_by_name("out")
        pipe.set_state(Gst.State.PLAYING)
        aus = []
        while True:
            sample = out.emit("pull-sample")
            if sample is None:
                break
            buf = sample.get_buffer()
            aus.append(buf.extract_dup(0, buf.get_size()))
        pipe.set_state(Gst.State.NULL)
        if len(aus) != frames:
            print(f"ERROR encoding clip: got {len(aus)} of {frames} frames", flush=True)
            sys.exit(2)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            for au in aus:
                f.write(len(au).to_bytes(4, "big"))
                f.write(au)
        os.replace(tmp, path)
    aus = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        aus.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return aus


def launch_line(a, clip):
    pay = "valve name=valve drop=false ! rtph264pay name=pay0 pt=96 config-interval=-1"
    if clip:
        # The clip's access units are pushed with running timestamps by `feed_clip`;
        # identity sync=true paces them to real time.
        return (
            f"( appsrc name=clip is-live=true format=time "
            f'caps="video/x-h264,stream-format=byte-stream,alignment=au,framerate={a.fps}/1" ! '
            f"h264parse ! identity sync=true ! {pay} )"
        )
    return f"( {content(a, 0)} ! {encoder(a)} ! {pay} )"


def feed_clip(appsrc, aus, fps):
    """Loops the clip into `appsrc`, one access unit per need-data, timestamps continuing."""
    state = {"n": 0}
    dur = Gst.SECOND // fps

    def need_data(src, _length):
        n = state["n"]
        state["n"] = n + 1
        buf = Gst.Buffer.new_wrapped(aus[n % len(aus)])
        buf.pts = n * dur
        buf.dts = n * dur
        buf.duration = dur
        src.emit("push-buffer", buf)

    appsrc.connect("need-data", need_data)


class Server:
    """The RTSP server plus the valves of every running media, for pause/resume."""

    def __init__(self, a, clip):
        self.clip = clip
        self.fps = a.fps
        self.paused = False
        self.valves = []
        self.lock = threading.Lock()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(str(a.port))
        mounts = self.server.get_mount_points()
        line = launch_line(a, clip)
        for i in range(a.mounts):
            f = GstRtspServer.RTSPMediaFactory()
            f.set_launch(line)
            f.set_shared(True)
            f.connect("media-configure", self.on_media_configure)
            if a.udp_only:
                f.set_protocols(GstRtsp.RTSPLowerTrans.UDP | GstRtsp.RTSPLowerTrans.UDP_MCAST)
            if a.user is not None:
                f.add_role_from_structure(
                    Gst.Structure.new_from_string(
                        "user, media.factory.access=(boolean)true, "
                        "media.factory.construct=(boolean)true"
                    )
                )
            mounts.add_factory(f"/cam{i}", f)
        if a.audio_mount:
            f = GstRtspServer.RTSPMediaFactory()
            f.set_launch(
                "( audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! alawenc ! "
                "rtppcmapay name=pay0 pt=8 )"
            )
            f.set_shared(True)
            mounts.add_factory("/audio", f)
        if a.jpeg_mounts:
            jpeg = (
                f"videotestsrc is-live=true pattern=ball ! "
                f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1 ! "
                # I420: RTP/JPEG carries 4:2:0 (and 4:2:2) only.
                f"jpegenc quality=50 ! rtpjpegpay name=pay0 pt=26"
            )
            h264 = f"{content(a, 0)} ! {encoder(a)} ! rtph264pay name=pay1 pt=96 config-interval=-1"
            for path, line in (("/jpeg", f"( {jpeg} )"), ("/both", f"( {jpeg} {h264} )")):
                f = GstRtspServer.RTSPMediaFactory()
                f.set_launch(line)
                f.set_shared(True)
                mounts.add_factory(path, f)
        if a.h265_mount:
            # I420 in: x265enc picks a 4:4:4 (Rext) profile from unconstrained caps.
            h265 = (
                f"videotestsrc is-live=true pattern=ball ! "
                f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1 ! "
                f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} "
                f"key-int-max={gop_frames(a)} ! video/x-h265,profile=main ! "
                f"rtph265pay name=pay0 pt=96 config-interval=-1"
            )
            f = GstRtspServer.RTSPMediaFactory()
            f.set_launch(f"( {h265} )")
            f.set_shared(True)
            mounts.add_factory("/h265", f)
        if a.zoo_mounts:
            self.add_zoo(a, mounts)
        if a.user is not None:
            auth = GstRtspServer.RTSPAuth()
            token = GstRtspServer.RTSPToken()
            token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            if a.auth == "digest":
                auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
                auth.add_digest(a.user, a.password or "", token)
            else:
                auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
                auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password or ""), token)
            self.server.set_auth(auth)

    def add_zoo(self, a, mounts):
        """The camera-zoo mounts (see --zoo-mounts): what real cameras send beside plain H.264."""
        raw = (
            f"videotestsrc is-live=true pattern=ball ! "
            f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1"
        )
        x264 = (
            f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} "
            f"key-int-max={gop_frames(a)}"
        )
        h264 = f"{raw} ! {x264} ! video/x-h264,profile=baseline,stream-format=byte-stream"
        audio = "audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! alawenc"
        lines = {
            "/av": f"( {audio} ! rtppcmapay name=pay0 pt=8 "
            f"{h264} ! rtph264pay name=pay1 pt=96 config-interval=-1 )",
            "/va": f"( {h264} ! rtph264pay name=pay0 pt=96 config-interval=-1 "
            f"{audio} ! rtppcmapay name=pay1 pt=8 )",
            # avc stream format: x264 puts SPS/PPS in the caps (codec_data), the payloader
            # into the SDP only (config-interval=0: never in band).
            "/sdp-params": f"( {raw} ! {x264} ! "
            f"video/x-h264,profile=baseline,stream-format=avc,alignment=au ! "
            f"rtph264pay name=pay0 pt=96 config-interval=0 )",
            # The size is a capsfilter after a scaler: `resize_later` halves it mid-session,
            # x264 starts over with a new SPS and an IDR, as a camera does when its
            # resolution is changed on its web page.
            "/resize": f"( videotestsrc is-live=true pattern=ball ! "
            f"video/x-raw,format=I420,framerate={a.fps}/1 ! videoscale ! "
            f"capsfilter name=size caps=video/x-raw,width={a.width},height={a.height} ! "
            f"{x264} ! video/x-h264,profile=baseline,stream-format=byte-stream ! "
            f"rtph264pay name=pay0 pt=96 config-interval=-1 )",
        }
        for path, line in lines.items():
            f = GstRtspServer.RTSPMediaFactory()
            f.set_launch(line)
            # Not shared: each session of /resize starts at the full size.
            f.set_shared(path != "/resize")
            if path == "/resize":
                f.connect("media-configure", lambda _f, m: self.resize_later(a, m))
            mounts.add_factory(path, f)

    def resize_later(self, a, media):
        size = media.get_element().get_by_name("size")
        caps = f"video/x-raw,width={a.width // 2},height={a.height // 2}"

        def halve():
            size.set_property("caps", Gst.Caps.from_string(caps))
            print(f"resized to {caps}", file=sys.stderr, flush=True)
            return False

        GLib.timeout_add_seconds(a.resize_after, halve)

    def on_media_configure(self, _factory, media):
        if self.clip:
            feed_clip(media.get_element().get_by_name("clip"), self.clip, self.fps)
        valve = media.get_element().get_by_name("valve")
        with self.lock:
            self.valves.append(valve)
            valve.set_property("drop", self.paused)

    def drop_all(self):
        """Closes every client connection; clients see their session end and reconnect."""
        n = [0]

        def remove(_server, _client):
            n[0] += 1
            return GstRtspServer.RTSPFilterResult.REMOVE

        self.server.client_filter(remove)
        print(f"dropped {n[0]} clients", file=sys.stderr, flush=True)
        return True

    def set_paused(self, paused):
        with self.lock:
            self.paused = paused
            for v in self.valves:
                v.set_property("drop", paused)
        return False


def main():
    a = parse_args()
    if a.bframes > 0 and (a.clip_seconds > 0 or a.profile == "baseline"):
        print("ERROR --bframes needs --profile main or high and live encoding", flush=True)
        sys.exit(2)
    Gst.init(None)
    clip = make_clip(a) if a.clip_seconds > 0 else None
    srv = Server(a, clip)
    loop = GLib.MainLoop()
    if srv.server.attach(None) == 0:
        print("ERROR could not bind", flush=True)
        sys.exit(2)
    print(f"READY port={srv.server.get_bound_port()}", flush=True)
    if a.drop_every > 0:
        GLib.timeout_add_seconds(a.drop_every, srv.drop_all)

    def read_commands():
        for raw in sys.stdin:
            cmd = raw.strip()
            if not cmd:
                continue
            if cmd == "pause":
                GLib.idle_add(srv.set_paused, True)
            elif cmd == "resume":
                GLib.idle_add(srv.set_paused, False)
            elif cmd == "quit":
                break
            else:
                print(f"unknown command {cmd!r}", file=sys.stderr, flush=True)
                continue
            print(f"OK {cmd}", flush=True)
        GLib.idle_add(loop.quit)

    threading.Thread(target=read_commands, daemon=True).start()
    loop.run()


if __name__ == "__main__":
    main()
