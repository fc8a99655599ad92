#!/usr/bin/python3
"""A real RTSP server (GStreamer gst-rtsp-server) for edgecam's ingest tests and benchmarks.

Serves `/cam0` .. `/cam{N-1}` on 127.0.0.1 with moving content plus noise, H.264 from x264enc
(zerolatency, ultrafast, fixed GOP), packetized by rtph264pay with SPS/PPS before every
keyframe. Each mount's media is shared, so N clients of one mount cost one encoder.

Prints `READY port=NNNN` on stdout once it is listening, then reads commands on stdin, one per
line:
  pause   stop producing frames on every mount, without closing any session
  resume  produce frames again
  quit    exit
EOF stdin also exits. Run it with Debian's /usr/bin/python3 (the gi bindings live there).
"""

import argparse
import sys
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
    p.add_argument("--user", default=None, help="require this user name on every mount")
    p.add_argument("--password", default=None, help="password for --user")
    p.add_argument("--auth", choices=["basic", "digest"], default="digest")
    return p.parse_args()


def launch_line(a):
    gop = a.gop if a.gop > 0 else 2 * a.fps
    caps = f"video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1"
    enc = (
        f"valve name=valve drop=false ! "
        f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} "
        f"key-int-max={gop} ! video/x-h264,profile=baseline ! "
        f"rtph264pay name=pay0 pt=96 config-interval=-1"
    )
    if a.no_noise:
        return (
            f"( videotestsrc is-live=true pattern=ball ! {caps} ! videoconvert ! "
            f"video/x-raw,format=I420 ! {enc} )"
        )
    # A moving ball over a moving SMPTE chart, with snow blended in: motion keeps P-frames busy
    # and the noise keeps the bitrate near the target like a real sensor at night.
    return (
        f"( compositor name=comp background=black sink_1::alpha=0.12 ! videoconvert ! "
        f"video/x-raw,format=I420 ! {enc} "
        f"videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! {caps} ! comp.sink_0 "
        f"videotestsrc is-live=true pattern=snow ! {caps} ! comp.sink_1 )"
    )


class Server:
    """The RTSP server plus the valves of every running media, for pause/resume."""

    def __init__(self, a):
        self.paused = False
        self.valves = []
        self.lock = threading.Lock()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(str(a.port))
        mounts = self.server.get_mount_points()
        line = launch_line(a)
        for i in range(a.mounts):
            f = GstRtspServer.RTSPMediaFactory()
            f.set_launch(line)
            f.set_shared(True)
            f.connect("media-configure", self.on_media_configure)
            if a.user is not None:
                f.add_role_from_structure(
                    Gst.Structure.new_from_string(
                        "user, media.factory.access=(boolean)true, "
                        "media.factory.construct=(boolean)true"
                    )
                )
            mounts.add_factory(f"/cam{i}", f)
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

    def on_media_configure(self, _factory, media):
        valve = media.get_element().get_by_name("valve")
        with self.lock:
            self.valves.append(valve)
            valve.set_property("drop", self.paused)

    def set_paused(self, paused):
        with self.lock:
            self.paused = paused
            for v in self.valves:
                v.set_property("drop", paused)
        return False


def main():
    a = parse_args()
    Gst.init(None)
    srv = Server(a)
    loop = GLib.MainLoop()
    if srv.server.attach(None) == 0:
        print("ERROR could not bind", flush=True)
        sys.exit(2)
    print(f"READY port={srv.server.get_bound_port()}", flush=True)

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
