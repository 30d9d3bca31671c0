"""The fault drill's stand-in for a Ray head's GCS: a TCP server on 6379 that knows which nodes are connected.

`drill_ray_head.py serve [port]` serves; `drill_ray_head.py nodes` prints the connected nodes in the shape of
`ray list nodes --format json` ([{"node_ip": ..., "state": "ALIVE"}, ...]), which recover.yml's Ray check reads.
"""

import json
import os
import selectors
import socket
import sys

STATE = "/run/drill-ray-head/nodes.json"


def save(peers):
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    nodes = [{"node_id": f"{ip}:{port}", "node_ip": ip, "state": "ALIVE"} for ip, port in sorted(peers.values())]
    tmp = STATE + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(nodes, handle)
    os.replace(tmp, STATE)


def serve(port):
    selector = selectors.DefaultSelector()
    server = socket.create_server(("0.0.0.0", port), reuse_port=True)  # noqa: S104 - workers on other hosts connect
    server.setblocking(False)
    selector.register(server, selectors.EVENT_READ)
    peers = {}
    save(peers)
    print(f"head listening on {port}", flush=True)
    while True:
        for key, _events in selector.select():
            if key.fileobj is server:
                conn, peer = server.accept()
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                peers[conn] = peer[:2]
            else:
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if data:
                    continue
                selector.unregister(key.fileobj)
                peers.pop(key.fileobj, None)
                key.fileobj.close()
            save(peers)


def nodes():
    try:
        with open(STATE) as handle:
            print(handle.read())
    except OSError:
        print("[]")
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]) if len(sys.argv) > 2 else 6379)
    sys.exit(nodes())
