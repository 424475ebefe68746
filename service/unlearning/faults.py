"""Fault injection for the end-to-end crash tests; does nothing unless RTBF_FAULT_PAUSE is set.

``RTBF_FAULT_PAUSE="after_unlearn=6,before_publish=3"`` makes a job sleep at those points,
so a test can SIGKILL the worker or stop Redis at a known phase of a real job.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)
ENV = "RTBF_FAULT_PAUSE"


def pause_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    for part in spec.split(","):
        key, _, seconds = part.partition("=")
        if key.strip() == name:
            log.warning("fault injection: pausing %s s at %s", seconds, name)
            time.sleep(float(seconds))
