"""The garbage collector of a server process, tuned for thousands of open sockets.

A socket costs a server about 155 objects the collector tracks (daphne's protocol, the consumer,
its scope, tasks and queues), so 10,000 sockets are 1.5 million, and a full collection of them
stops the event loop for 1.0-1.4 s: every frame of every socket waits (docs/benchmarks.md, "Garbage
collection with 10,000 sockets"). With Python's default (a young pass every 700 net allocations),
the short-lived objects of heartbeats and messages, alive across an await or two, were still alive
at the young passes, got promoted, and made the old generation grow by the quarter that triggers
a full collection every 15-20 s on a server merely holding its sockets. A young pass every 10,000
allocations lets them die first: no full collection while the sockets are held, and less CPU for
a server holding them (27 % of a core against 31 %). Under heavy message load it may cost a few
per cent of CPU per message (measured 1.98 against 1.84 ms, overlapping ranges). The older
generations keep Python's thresholds.

What the process loaded to start (Django, the apps, the URL conf: about 124,000 tracked objects,
more than 200 open sockets hold) lives as long as the process, yet every full collection walked
it again: 137-201 ms pauses under message load on a slower host, each one a p99 miss of a 6 s
step at 200 messages/s (docs/benchmarks.md, "A fourth host"). `freeze_startup` moves it to the
collector's permanent generation once, when the application is built and before any socket
exists, so full collections walk only what sockets and messages made since.
"""

from __future__ import annotations

import gc

from django.conf import settings


def tune() -> None:
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(settings.SERVER_GC_YOUNG_THRESHOLD, middle, oldest)


def freeze_startup() -> None:
    """Called once, at the end of loading the ASGI application: nothing per-socket exists yet."""
    if not settings.SERVER_GC_FREEZE_STARTUP:
        return
    gc.collect()  # what import left as garbage is freed, not kept for good
    gc.freeze()
