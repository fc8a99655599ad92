#!/usr/bin/env python3
"""An IPv6 WS-Discovery responder for tests/onvif_discovery.rs (standard library only): it
joins ff02::c on one interface, and answers every WS-Discovery Probe for
dn:NetworkVideoTransmitter with a ProbeMatches (RelatesTo the probe's MessageID) naming one
ONVIF camera, unicast to the prober, as a camera on an IPv6-only LAN does. PyPI's WSDiscovery
(the IPv4 responder, wsd_responder.py) does not fit here: its IPv6 thread fails on this kind of
network (see wsd_responder.py).

Run it inside the test's network namespace (never on a real network):
    ip netns exec NS python3 wsd6_responder.py IFNAME ENDPOINT XADDR NAME
It prints `ready` once it has joined the group, and runs until its stdin closes.
"""

import re
import socket
import struct
import sys
import threading

TEMPLATE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
    'xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
    "<s:Header>"
    "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>"
    "<a:MessageID>urn:uuid:6f1c2a3b-0000-4000-8000-{n:012d}</a:MessageID>"
    "<a:RelatesTo>{relates}</a:RelatesTo>"
    "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
    "</s:Header><s:Body><d:ProbeMatches><d:ProbeMatch>"
    "<a:EndpointReference><a:Address>{endpoint}</a:Address></a:EndpointReference>"
    "<d:Types>dn:NetworkVideoTransmitter</d:Types>"
    "<d:Scopes>onvif://www.onvif.org/name/{name}</d:Scopes>"
    "<d:XAddrs>{xaddr}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>"
    "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
)


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit("usage: wsd6_responder.py IFNAME ENDPOINT XADDR NAME")
    ifname, endpoint, xaddr, name = sys.argv[1:]
    index = socket.if_nametoindex(ifname)
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::", 3702))
    group = socket.inet_pton(socket.AF_INET6, "ff02::c") + struct.pack("@I", index)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)

    def serve():
        n = 0
        while True:
            data, peer = s.recvfrom(65536)
            text = data.decode("utf-8", "replace")
            if "NetworkVideoTransmitter" not in text or "Probe" not in text:
                continue
            m = re.search(r"<(?:\w+:)?MessageID>([^<]+)</", text)
            if not m:
                continue
            n += 1
            reply = TEMPLATE.format(n=n, relates=m.group(1), endpoint=endpoint, name=name, xaddr=xaddr)
            s.sendto(reply.encode(), peer)

    threading.Thread(target=serve, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
