#!/usr/bin/python3
"""The classic browser-MJPEG camera switcher, built with GStreamer: the peer design that
`edgecam-bench e2e` measures edgecam against.

Every stream is received and decoded all the time (`rtspsrc ! rtph264depay ! avdec_h264`),
one is picked with `input-selector`, encoded with `jpegenc` and served as
`multipart/x-mixed-replace` over HTTP:

  GET  /stream          the MJPEG stream; each part has `X-Stream: <index>` and `X-Seq: <n>`
  POST /active?pad=K    select stream K (sets input-selector's `active-pad`)

Which stream a JPEG came from: the selector's src pad probe runs in the streaming thread that
pushes the buffer on through jpegenc to the appsink, so it notes the active pad just before
that thread encodes and hands over the picture (at most one picture at the switch instant can
carry the old index: the one already past the selector when the pad changed).

Prints `READY port=NNNN` once it serves. Exits when stdin closes. Run with /usr/bin/python3.
"""

import argparse
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


class Switcher:
    def __init__(self, urls, quality):
        branches = []
        for i, url in enumerate(urls):
            branches.append(
                f'rtspsrc location="{url}" protocols=tcp latency=0 ! rtph264depay ! '
                f"h264parse ! avdec_h264 ! videoconvert ! sel.sink_{i}"
            )
        line = (
            f"input-selector name=sel sync-streams=false ! jpegenc quality={quality} ! "
            f"appsink name=out emit-signals=true sync=false max-buffers=1 drop=true "
            + " ".join(branches)
        )
        self.pipeline = Gst.parse_launch(line)
        self.sel = self.pipeline.get_by_name("sel")
        self.cond = threading.Condition()
        self.latest = None  # (seq, stream index, jpeg bytes)
        self.seq = 0
        self.tag = 0
        self.sel.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.on_selected)
        self.pipeline.get_by_name("out").connect("new-sample", self.on_sample)
        self.set_active(0)

    def pad_index(self, pad):
        return int(pad.get_name().rsplit("_", 1)[1])

    def on_selected(self, _pad, _info):
        active = self.sel.get_property("active-pad")
        if active is not None:
            self.tag = self.pad_index(active)
        return Gst.PadProbeReturn.OK

    def on_sample(self, sink):
        sample = sink.emit("pull-sample")
        buf = sample.get_buffer()
        data = buf.extract_dup(0, buf.get_size())
        with self.cond:
            self.seq += 1
            self.latest = (self.seq, self.tag, data)
            self.cond.notify_all()
        return Gst.FlowReturn.OK

    def set_active(self, k):
        pad = self.sel.get_static_pad(f"sink_{k}")
        if pad is None:
            return False
        self.sel.set_property("active-pad", pad)
        return True

    def next_frame(self, after_seq, timeout=5.0):
        with self.cond:
            self.cond.wait_for(lambda: self.latest is not None and self.latest[0] > after_seq, timeout)
            return self.latest


def make_handler(sw):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *_args):
            pass

        def do_POST(self):
            u = urlparse(self.path)
            if u.path != "/active":
                self.send_error(404)
                return
            try:
                k = int(parse_qs(u.query).get("pad", ["-1"])[0])
            except ValueError:
                k = -1
            ok = k >= 0 and sw.set_active(k)
            self.send_response(200 if ok else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            if urlparse(self.path).path != "/stream":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            # A new client gets the next picture encoded, like a tcpserversink/multipartmux
            # MJPEG server.
            last = sw.latest[0] if sw.latest else 0
            try:
                while True:
                    f = sw.next_frame(last)
                    if f is None or f[0] <= last:
                        continue
                    last, tag, data = f
                    head = (
                        f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
                        f"X-Stream: {tag}\r\nX-Seq: {last}\r\n\r\n"
                    )
                    self.wfile.write(head.encode() + data + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


class ThreadingServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--quality", type=int, default=75)
    p.add_argument("urls", nargs="+")
    a = p.parse_args()
    Gst.init(None)
    sw = Switcher(a.urls, a.quality)
    if sw.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print("ERROR pipeline does not start", flush=True)
        sys.exit(2)
    httpd = ThreadingServer(("127.0.0.1", a.port), make_handler(sw))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    loop = GLib.MainLoop()
    bus = sw.pipeline.get_bus()
    bus.add_signal_watch()

    def on_error(_bus, msg):
        err, dbg = msg.parse_error()
        print(f"ERROR {err.message} {dbg}", file=sys.stderr, flush=True)
        loop.quit()

    bus.connect("message::error", on_error)
    print(f"READY port={httpd.server_address[1]}", flush=True)

    def wait_stdin():
        sys.stdin.read()
        GLib.idle_add(loop.quit)

    threading.Thread(target=wait_stdin, daemon=True).start()
    loop.run()
    sw.pipeline.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
