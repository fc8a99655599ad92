#!/usr/bin/env python3
"""A WS-Discovery responder for tests/onvif_discovery.rs: PyPI's WSDiscovery publishing one
ONVIF NetworkVideoTransmitter, as a camera on the LAN would.

Run it inside the test's network namespace (never on a real network):
    ip netns exec NS python wsd_responder.py ENDPOINT XADDR SCOPE...
It prints `ready` once it has joined the multicast group and published the service, and runs
until its stdin closes.
"""

import sys

import wsdiscovery.threaded
from wsdiscovery import QName, Scope
from wsdiscovery.publishing import ThreadedWSPublishing

ONVIF_NETWORK = "http://www.onvif.org/ver10/network/wsdl"
ONVIF_DEVICE = "http://www.onvif.org/ver10/device/wsdl"


def _no_ipv6(_observer):
    """The test network is IPv4 only. WSDiscovery's IPv6 thread also hears IPv4 probes on its
    dual-stack socket, fails to answer them (gaierror) and dies noisily; refusing it the way
    WSDiscovery handles a box without IPv6 keeps the IPv4 responder alone."""
    raise OSError("IPv4 only in this test")


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: wsd_responder.py ENDPOINT XADDR [SCOPE...]")
    endpoint, xaddr, scopes = sys.argv[1], sys.argv[2], sys.argv[3:]
    # The publisher's endpoint reference is its `uuid` (WSDiscovery puts it in the Address).
    wsdiscovery.threaded.NetworkingThreadIPv6 = _no_ipv6
    wsd = ThreadedWSPublishing(uuid_=endpoint)
    wsd.start()
    types = [
        QName(ONVIF_NETWORK, "NetworkVideoTransmitter", "dn"),
        QName(ONVIF_DEVICE, "Device", "tds"),
    ]
    wsd.publishService(types=types, scopes=[Scope(s) for s in scopes], xAddrs=[xaddr])
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        wsd.stop()


if __name__ == "__main__":
    main()
