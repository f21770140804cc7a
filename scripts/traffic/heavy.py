"""The heaviest request the service's limits allow, and a plain one: for memory checks under a container limit."""

from __future__ import annotations

import http.client
import json

HEAVY_REPEATS = 6


def heaviest_body(i: int = 0) -> dict:
    """8 texts truncated to 512 tokens each: the 4,096 tokens MAX_TOKENS allows (i varies the text)."""
    return {"texts": [f"a long and rather wonderful film {i} " * 120] * 8}


def post_status(host: str, port: int, body: dict, timeout: float = 120) -> int:
    """POST /classify; the status, or 0 for a dropped connection (the worker killed mid-request)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/classify", json.dumps(body).encode(), {"content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def heaviest(host: str, port: int, repeats: int = HEAVY_REPEATS) -> list[int]:
    """The heaviest request, repeats times in a row; the statuses."""
    return [post_status(host, port, heaviest_body(i)) for i in range(repeats)]


def small(host: str, port: int) -> int:
    return post_status(host, port, {"text": "a fine film"}, timeout=30)
