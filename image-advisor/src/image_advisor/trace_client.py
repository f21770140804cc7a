"""The probe's HTTP client: run with `docker exec` inside the traced container, by its own Python.

    python -I -c "<this file's text>" '{"port": 8000, "wait_s": 5, "requests": [["GET", "/", null], ...]}'

The traced container has no network but its loopback, so the requests are sent from inside it.
It tries the first request until it gets an answer below 500 or wait_s passes; once answered it
sends every request and prints {"ready": true, "answers": [status, ...]} (0: no answer);
otherwise {"ready": false, "listening": [ports]}, the TCP ports something in the container
listens on (from /proc/net/tcp*), so a service on another port can be named. -I keeps the
probe's sitecustomize out of this process. Standard library only, and nothing newer than
Python 3.6's syntax: it runs on whatever Python the image has.
"""

import json
import sys
import time
import urllib.error
import urllib.request


def send(port, method, path, body, timeout):
    data = body.encode("utf-8") if body is not None else None
    headers = {"content-type": "application/json"} if body is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


def listening():
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as table:
                rows = table.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def main(argv):
    job = json.loads(argv[1])
    port, requests = job["port"], job["requests"]
    deadline = time.monotonic() + job["wait_s"]
    while True:
        method, path, body = requests[0]
        status = send(port, method, path, body, min(5.0, max(0.5, deadline - time.monotonic())))
        if 0 < status < 500:
            break
        if time.monotonic() >= deadline:
            print(json.dumps({"ready": False, "listening": listening()}))
            return 0
        time.sleep(0.25)
    answers = [send(port, method, path, body, 30) for method, path, body in requests]
    print(json.dumps({"ready": True, "answers": answers}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
