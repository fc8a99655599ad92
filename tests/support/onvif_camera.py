#!/usr/bin/env python3
"""An ONVIF camera on loopback for the tests: device, media and events (PullPoint) services
answering the real SOAP 1.2 requests with answers shaped like the ONVIF Core and Media
specifications' examples. Every request but GetSystemDateAndTime must carry a WS-Security
UsernameToken whose PasswordDigest (base64(sha1(nonce + created + password))) checks out and
whose Created is within 10 s of *this camera's* clock, which runs --skew-s ahead of the
machine's (a client that does not correct its clock is refused, as real cameras do).

Usage: onvif_camera.py --port N --user U --password P [--skew-s S] [--lifetime-s L] [--tls]
With --tls it answers HTTPS only, with a self-signed certificate made at start by the openssl
command (as most cameras' own), and its service addresses are https:// ones.
Prints `ready <port>` when listening. Reads commands on stdin, one a line:
  motion true|false   a CellMotionDetector/Motion event (IsMotion) to every subscription
  stats               prints `stats subscribe=.. renew=.. unsubscribe=.. pull=.. refused=..`
No other Python packages are needed (standard library only).
"""

import argparse
import base64
import datetime
import hashlib
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
ENV_OPEN = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
    'xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
    'xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:wsa="http://www.w3.org/2005/08/addressing" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics" '
    'xmlns:ter="http://www.onvif.org/ver10/error">'
    "<env:Body>"
)
ENV_CLOSE = "</env:Body></env:Envelope>"

ARGS = None
LOCK = threading.Condition()
STATE = {"motion": "false", "next_sub": 1, "nonces": set()}
SUBS = {}  # id -> {"expires": float, "queue": [xml]}
COUNTS = {"subscribe": 0, "renew": 0, "unsubscribe": 0, "pull": 0, "refused": 0}


def camera_now():
    return time.time() + ARGS.skew_s


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fault(code, subcode, reason):
    return (
        f"<env:Fault><env:Code><env:Value>env:{code}</env:Value><env:Subcode>"
        f"<env:Value>{subcode}</env:Value></env:Subcode></env:Code><env:Reason>"
        f'<env:Text xml:lang="en">{reason}</env:Text></env:Reason></env:Fault>'
    )


def check_token(header):
    """Whether the UsernameToken is this camera's user with a fresh, correct digest."""
    if header is None:
        return False
    tok = header.find("wsse:Security/wsse:UsernameToken", NS)
    if tok is None:
        return False
    user = tok.findtext("wsse:Username", "", NS)
    digest = tok.findtext("wsse:Password", "", NS)
    nonce = tok.findtext("wsse:Nonce", "", NS)
    created = tok.findtext("wsu:Created", "", NS)
    try:
        raw = base64.b64decode(nonce)
        t = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    except Exception:
        return False
    t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
    if abs(t - camera_now()) > 10:
        return False
    want = base64.b64encode(hashlib.sha1(raw + created.encode() + ARGS.password.encode()).digest()).decode()
    with LOCK:
        if nonce in STATE["nonces"]:
            return False
        STATE["nonces"].add(nonce)
    return user == ARGS.user and digest == want


def motion_message(value, operation):
    return (
        "<wsnt:NotificationMessage><wsnt:Topic "
        'Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
        "tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message>"
        f'<tt:Message UtcTime="{iso(camera_now())}" PropertyOperation="{operation}"><tt:Source>'
        '<tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceToken"/>'
        '<tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalyticsToken"/>'
        '<tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/></tt:Source>'
        f'<tt:Data><tt:SimpleItem Name="IsMotion" Value="{value}"/></tt:Data>'
        "</tt:Message></wsnt:Message></wsnt:NotificationMessage>"
    )


def base():
    scheme = "https" if ARGS.tls else "http"
    return f"{scheme}://127.0.0.1:{ARGS.port}"


def profile(token, name, w, h):
    return (
        f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{name}</tt:Name>'
        '<tt:VideoSourceConfiguration token="VideoSourceToken"><tt:Name>VideoSource</tt:Name>'
        "<tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken>"
        f'<tt:Bounds x="0" y="0" width="{w}" height="{h}"/></tt:VideoSourceConfiguration>'
        f'<tt:VideoEncoderConfiguration token="Enc_{token}"><tt:Name>Enc_{token}</tt:Name>'
        "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding><tt:Resolution>"
        f"<tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution>"
        "<tt:Quality>5</tt:Quality></tt:VideoEncoderConfiguration></trt:Profiles>"
    )


def handle(action, body_el, path):
    """The answer body for one request, or (status, fault) when refused."""
    if action == "GetSystemDateAndTime":
        t = datetime.datetime.fromtimestamp(camera_now(), datetime.timezone.utc)
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime><tt:Time>"
            f"<tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute><tt:Second>{t.second}</tt:Second>"
            f"</tt:Time><tt:Date><tt:Year>{t.year}</tt:Year><tt:Month>{t.month}</tt:Month>"
            f"<tt:Day>{t.day}</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime>"
            "</tds:GetSystemDateAndTimeResponse>"
        )
    if action == "GetDeviceInformation":
        return (
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>Loopback Optics</tds:Manufacturer>"
            "<tds:Model>LB-2000</tds:Model><tds:FirmwareVersion>1.2.3</tds:FirmwareVersion>"
            "<tds:SerialNumber>0001</tds:SerialNumber><tds:HardwareId>1</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )
    if action == "GetCapabilities":
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{base()}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Events><tt:XAddr>{base()}/onvif/events_service</tt:XAddr>"
            "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
            "<tt:WSPullPointSupport>true</tt:WSPullPointSupport></tt:Events>"
            f"<tt:Media><tt:XAddr>{base()}/onvif/media_service</tt:XAddr></tt:Media>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )
    if action == "GetProfiles":
        return (
            "<trt:GetProfilesResponse>"
            + profile("Profile_1", "mainStream", 1920, 1080)
            + profile("Profile_2", "subStream", 640, 360)
            + "</trt:GetProfilesResponse>"
        )
    if action == "GetStreamUri":
        token = body_el.findtext("{http://www.onvif.org/ver10/media/wsdl}ProfileToken", "")
        stream = {"Profile_1": "main", "Profile_2": "sub"}.get(token)
        if stream is None:
            return (400, fault("Sender", "ter:InvalidArgVal", "no such profile"))
        return (
            "<trt:GetStreamUriResponse><trt:MediaUri>"
            f"<tt:Uri>rtsp://127.0.0.1:{ARGS.rtsp_port}/{stream}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>"
            "</trt:MediaUri></trt:GetStreamUriResponse>"
        )
    if action == "CreatePullPointSubscription":
        now = camera_now()
        with LOCK:
            sid = STATE["next_sub"]
            STATE["next_sub"] += 1
            # A property event starts with its current state, as the Core spec asks.
            SUBS[sid] = {"expires": now + ARGS.lifetime_s, "queue": [motion_message(STATE["motion"], "Initialized")]}
            COUNTS["subscribe"] += 1
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa:Address>{base()}/onvif/subscription/{sid}</wsa:Address></tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{iso(now + ARGS.lifetime_s)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )
    m = re.fullmatch(r"/onvif/subscription/(\d+)", path)
    sid = int(m.group(1)) if m else -1
    with LOCK:
        sub = SUBS.get(sid)
        if sub is not None and sub["expires"] < camera_now():
            del SUBS[sid]
            sub = None
    if sub is None:
        return (400, fault("Receiver", "ter:ResourceUnknown", "no such subscription"))
    if action == "PullMessages":
        wait = body_el.findtext("{http://www.onvif.org/ver10/events/wsdl}Timeout", "PT1S")
        secs = int(re.search(r"(\d+)S", wait).group(1)) if re.search(r"(\d+)S", wait) else 1
        deadline = time.time() + secs
        with LOCK:
            COUNTS["pull"] += 1
            while not sub["queue"] and time.time() < deadline and sid in SUBS:
                LOCK.wait(deadline - time.time())
            msgs, sub["queue"] = sub["queue"], []
        now = camera_now()
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{iso(now)}</tev:CurrentTime>"
            f"<tev:TerminationTime>{iso(sub['expires'])}</tev:TerminationTime>"
            + "".join(msgs)
            + "</tev:PullMessagesResponse>"
        )
    if action == "Renew":
        now = camera_now()
        with LOCK:
            sub["expires"] = now + ARGS.lifetime_s
            COUNTS["renew"] += 1
        return (
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{iso(now + ARGS.lifetime_s)}</wsnt:TerminationTime>"
            f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime></wsnt:RenewResponse>"
        )
    if action == "Unsubscribe":
        with LOCK:
            SUBS.pop(sid, None)
            COUNTS["unsubscribe"] += 1
            LOCK.notify_all()
        return "<wsnt:UnsubscribeResponse/>"
    return (400, fault("Receiver", "ter:ActionNotSupported", f"{action} is not supported"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        status, body = 200, None
        try:
            env = ET.fromstring(raw)
            header = env.find("s:Header", NS)
            body_el = list(env.find("s:Body", NS))[0]
            action = body_el.tag.split("}")[-1]
        except Exception:
            status, body = 400, fault("Sender", "ter:WellFormed", "not a SOAP 1.2 envelope")
        if body is None and action != "GetSystemDateAndTime" and not check_token(header):
            with LOCK:
                COUNTS["refused"] += 1
            status, body = 400, fault("Sender", "ter:NotAuthorized", "Sender not Authorized")
        if body is None:
            r = handle(action, body_el, self.path)
            status, body = r if isinstance(r, tuple) else (200, r)
        data = (ENV_OPEN + body + ENV_CLOSE).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up in the middle of a long poll (it stopped, or timed out) is
        # normal for a PullPoint; anything else is printed.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def commands():
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["motion"] and len(words) == 2:
            with LOCK:
                STATE["motion"] = words[1]
                for sub in SUBS.values():
                    sub["queue"].append(motion_message(words[1], "Changed"))
                LOCK.notify_all()
            print(f"ok motion {words[1]}", flush=True)
        elif words == ["stats"]:
            with LOCK:
                print("stats " + " ".join(f"{k}={v}" for k, v in COUNTS.items()), flush=True)


def tls_context():
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    import ssl
    import subprocess
    import tempfile

    d = tempfile.mkdtemp(prefix="onvif-camera-tls-")
    key, cert = f"{d}/key.pem", f"{d}/cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=onvif-test-camera", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--user", default="admin")
    p.add_argument("--password", default="secret")
    p.add_argument("--skew-s", type=float, default=0)
    p.add_argument("--lifetime-s", type=int, default=60)
    p.add_argument("--rtsp-port", type=int, default=554)
    p.add_argument("--tls", action="store_true")
    ARGS = p.parse_args()
    server = Server(("127.0.0.1", ARGS.port), Handler)
    ARGS.port = server.server_address[1]
    if ARGS.tls:
        server.socket = tls_context().wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready {ARGS.port}", flush=True)
    commands()


if __name__ == "__main__":
    main()
