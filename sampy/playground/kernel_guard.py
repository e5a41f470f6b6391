"""Keep the kernel's own error reports off the playground's page.

ipykernel reports a failing ``comm_open`` or ``comm_msg`` (a hostile client opening a widget
with a made-up model, an update that a trait rejects) through the ``ipykernel.comm`` logger.
That logger has no handler, so Python's last-resort handler writes the message, with its full
traceback and file paths, to ``sys.stderr``; in a kernel ``sys.stderr`` is forwarded to every
connected page as a stream message. This module gives the logger a handler that writes to
the kernel process's own stderr, which is the Voilà server's log.

`make playground`'s configuration (playground/server/voila.py) loads it into every kernel
it starts, as an IPython extension (``--IPKernelApp.extensions``).
"""

from __future__ import annotations

import io
import logging
import os
import sys
from typing import Any

COMM_LOGGER = "ipykernel.comm"


def _server_log_stream() -> io.TextIOBase:
    """The kernel process's stderr as it was before ipykernel forwarded it to the page."""
    # With fd capture on (ipykernel's default), file descriptor 2 is a pipe to the page too;
    # ipykernel keeps a copy of the original descriptor, and logs its own messages there.
    original_fd = getattr(sys.stderr, "_original_stdstream_copy", None)
    if original_fd is None:
        return sys.__stderr__
    return io.TextIOWrapper(io.FileIO(os.dup(original_fd), "w"), line_buffering=True)


def route_comm_errors_to_server_log() -> logging.Handler:
    """Send the ``ipykernel.comm`` logger's records to the server log only; idempotent.

    Returns the handler now attached to the logger.
    """
    logger = logging.getLogger(COMM_LOGGER)
    for handler in logger.handlers:
        if getattr(handler, "sampy_kernel_guard", False):
            return handler
    handler = logging.StreamHandler(_server_log_stream())
    handler.sampy_kernel_guard = True
    handler.setFormatter(
        logging.Formatter("[kernel %(process)d] %(levelname)s %(name)s: %(message)s")
    )
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def load_ipython_extension(ipython: Any) -> None:
    """IPython's extension hook: guard the kernel this module is loaded into."""
    route_comm_errors_to_server_log()
