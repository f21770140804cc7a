"""The run-time probe image-advisor puts into a throw-away container as its sitecustomize.py.

Python imports sitecustomize at start-up, from the first directory on sys.path that holds one;
trace.py copies this file into the container (never into the image) and puts its
directory first on PYTHONPATH. Every Python process of the service then writes, to
$DIAGNOSE_PROBE_OUT/<pid>.json, the modules it has imported and the files it has mapped
(/proc/self/maps): every half second, again in each forked child (gunicorn's workers), and at exit.
Standard library only, and nothing here may raise: the service must run as it would without it.
"""

import atexit
import json
import os
import sys
import threading
import time

OUT = os.environ.get("DIAGNOSE_PROBE_OUT", "/.diagnose-probe/out")
INTERVAL_S = 0.5
_lock = threading.Lock()


def _snapshot() -> dict:
    files, names = set(), []
    for name, module in list(sys.modules.items()):
        names.append(name)
        path = getattr(module, "__file__", None)
        if getattr(getattr(module, "__spec__", None), "origin", None) == "frozen":
            continue  # runs from bytecode inside the interpreter (os, io, site, ...): its file is never read
        if isinstance(path, str):
            files.add(os.path.abspath(path))
    mapped = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    mapped.add(fields[5].strip().removesuffix(" (deleted)"))
    except OSError:
        pass
    return {"pid": os.getpid(), "argv": sys.argv, "executable": sys.executable,
            "python": f"{sys.version_info[0]}.{sys.version_info[1]}", "stdlib": os.path.dirname(os.__file__),
            "modules": sorted(names), "module_files": sorted(files), "mapped": sorted(mapped)}


def _dump() -> None:
    try:
        with _lock:
            data = json.dumps(_snapshot())
            tmp = os.path.join(OUT, f"{os.getpid()}.json.tmp")
            with open(tmp, "w") as out:
                out.write(data)
            os.replace(tmp, tmp[:-4])
    except Exception:  # a probe that cannot write must not stop the service
        pass


def _every_interval() -> None:
    while True:
        time.sleep(INTERVAL_S)
        _dump()


def _start() -> None:
    threading.Thread(target=_every_interval, name="diagnose-probe", daemon=True).start()


if os.path.isdir(OUT):
    atexit.register(_dump)
    # Hold the lock across fork so a child never inherits it mid-write; restart the thread in the child.
    os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release,
                        after_in_child=lambda: (_lock.release(), _start()))
    _start()
