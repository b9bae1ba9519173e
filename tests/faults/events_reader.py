#!/usr/bin/env python3
"""A change-feed client that survives the faults: reads GET /v1/events (Server-Sent Events) from
one replica, and on any error (replica killed or frozen, database away) reconnects to the next one
with `Last-Event-ID` set to the last id it received. Appends each event id to OUT as it arrives
(one per line), so the suite can check afterwards that it saw every stored event exactly once and
in increasing order. Runs until killed.

usage: events_reader.py OUT TOKEN URL [URL...]
"""
import sys
import time
import urllib.request

out_path, token, urls = sys.argv[1], sys.argv[2], sys.argv[3:]
# From the start: without Last-Event-ID the feed would begin "now", and a first reconnection
# before any event arrived would skip what committed in between.
last = 0
turn = 0
with open(out_path, "a", buffering=1) as out:
    while True:
        url = urls[turn % len(urls)]
        turn += 1
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        headers["Last-Event-ID"] = str(last)
        try:
            req = urllib.request.Request(url + "/v1/events", headers=headers)
            # A frozen replica sends nothing: keep-alives come every 15 s, so 20 s of silence
            # means go elsewhere.
            with urllib.request.urlopen(req, timeout=20) as resp:
                for raw in resp:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.startswith("id:"):
                        last = int(line[3:].strip())
                        out.write(f"{last}\n")
            print(f"events_reader: {url}: stream ended after {last}; reconnecting", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - any failure means: reconnect elsewhere
            print(f"events_reader: {url}: {e!r}; reconnecting after {last}", file=sys.stderr, flush=True)
        time.sleep(0.3)
