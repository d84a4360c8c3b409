#!/usr/bin/env python3
"""A tiny authoritative DNS server for a headless Service's records, for tests (UDP only).

Answers, for the zone of one headless service (e.g. emporium-peers.emporium.svc.cluster.local):
  A    <service>                        -> every pod's address
  A    <statefulset>-N.<service>        -> pod N's address
  SRV  _<port-name>._tcp.<service>      -> 0 100 <port> <statefulset>-N.<service> for every pod
and NXDOMAIN for other names in the zone, REFUSED outside it. TTL 0, as the peers re-resolve.

Usage: dns_stub.py LISTEN_IP LISTEN_PORT SERVICE STATEFULSET PORT_NAME PORT ADDR...
       (ADDR i is pod i's IPv4 address)
"""
import socket
import struct
import sys


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def decode_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels).lower(), off + 1
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(msg[off + 1 : off + 1 + n].decode())
        off += 1 + n


def answer(query, service, sts, port_name, port, addrs):
    ident, flags, qd = struct.unpack(">HHH", query[:6])
    name, off = decode_name(query, 12)
    qtype, qclass = struct.unpack(">HH", query[off : off + 4])
    question = query[12 : off + 4]
    pods = {f"{sts}-{i}.{service}": a for i, a in enumerate(addrs)}
    records = []
    if name == service or name.endswith("." + service):
        rcode = 0
        if name == service and qtype in (1, 255):
            records = [(1, socket.inet_aton(a)) for a in addrs]
        elif name in pods and qtype in (1, 255):
            records = [(1, socket.inet_aton(pods[name]))]
        elif name == f"_{port_name}._tcp.{service}" and qtype in (33, 255):
            records = [(33, struct.pack(">HHH", 0, 100, port) + encode_name(p)) for p in pods]
        elif name not in pods and name != service and name != f"_{port_name}._tcp.{service}":
            rcode = 3
    else:
        rcode = 5
    header = struct.pack(">HHHHHH", ident, 0x8400 | (flags & 0x0100) | rcode, 1, len(records), 0, 0)
    body = b"".join(encode_name(name) + struct.pack(">HHIH", t, 1, 0, len(d)) + d for t, d in records)
    return header + question + body


def main(argv):
    if len(argv) < 8:
        raise SystemExit(__doc__)
    ip, lport, service, sts, port_name, port = argv[1:7]
    service = service.rstrip(".").lower()
    addrs = argv[7:]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, int(lport)))
    while True:
        query, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(query, service, sts, port_name, int(port), addrs), peer)
        except (ValueError, IndexError, struct.error):
            continue


if __name__ == "__main__":
    main(sys.argv)
