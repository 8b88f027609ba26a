"""A real DNS server on loopback (dnslib) serving test zones that a test can change while it runs.

`with ZoneServer() as dns:` starts UDP and TCP listeners on one free port; `dns.add(name, "TXT",
value)` publishes, `dns.remove(name, type)` withdraws. Names the zones do not hold answer NXDOMAIN
(or NOERROR with no records when some other type exists at the name), as an authoritative server
would. Point the checks at it with settings DNS_NAMESERVERS=["127.0.0.1"], DNS_PORT=dns.port.
"""

from __future__ import annotations

import socket
import threading

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

RDATA = {"A": A, "AAAA": AAAA, "TXT": None, "MX": None}


def _txt(value: str) -> TXT:
    # One TXT record may hold several 255-byte strings (a 2048-bit DKIM key needs two).
    data = value.encode()
    return TXT([data[i : i + 255] for i in range(0, len(data), 255)] or [b""])


def _rdata(rtype: str, value: str):
    if rtype == "TXT":
        return _txt(value)
    if rtype == "MX":
        preference, _, host = value.partition(" ")
        return MX(host.rstrip(".") + ".", int(preference))
    return RDATA[rtype](value)


class _Zones(BaseResolver):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        rtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((name, rtype))
            values = list(self.records.get((name, rtype), []))
            exists = any(n == name for n, _ in self.records)
        for value in values:
            reply.add_answer(
                RR(DNSLabel(name + "."), getattr(QTYPE, rtype), rdata=_rdata(rtype, value), ttl=1)
            )
        if not values and not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _free_port_for_udp_and_tcp() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port for both UDP and TCP")


class ZoneServer:
    def __init__(self) -> None:
        self.zones = _Zones()
        self.port = 0
        self._servers: list[DNSServer] = []

    def add(self, name: str, rtype: str, value: str) -> None:
        with self.zones.lock:
            self.zones.records.setdefault((name.rstrip(".").lower(), rtype.upper()), []).append(value)

    def remove(self, name: str, rtype: str) -> None:
        with self.zones.lock:
            self.zones.records.pop((name.rstrip(".").lower(), rtype.upper()), None)

    def replace(self, name: str, rtype: str, value: str) -> None:
        self.remove(name, rtype)
        self.add(name, rtype, value)

    def __enter__(self) -> ZoneServer:
        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        for _attempt in range(5):
            self.port = _free_port_for_udp_and_tcp()
            try:
                servers = [
                    DNSServer(self.zones, address="127.0.0.1", port=self.port, tcp=tcp, logger=logger)
                    for tcp in (False, True)
                ]
            except OSError:
                continue  # another helper's test took the port in between
            self._servers = servers
            break
        else:
            raise RuntimeError("could not start the loopback DNS server")
        for server in self._servers:
            server.start_thread()
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()
