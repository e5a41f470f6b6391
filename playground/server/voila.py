"""How `make playground` serves the playground: Voilà 0.5.13 reads this file at start-up.

Voilà loads a file named ``voila.py`` from each directory in ``Voila.config_file_paths``;
`make playground` passes ``--Voila.config_file_paths=playground/server``. Options given on
the command line win over this file (the tests use that to shorten the culling times).

What it sets, and why (the reliability review of the playground found each of these open):

- **A token.** Without one, any local user, and any web page through DNS rebinding, can start
  kernels and drive the widgets. Voilà prints ``http://127.0.0.1:PORT/?token=...`` on start:
  open that. ``SAMPY_PLAYGROUND_TRUSTED=1`` (``make playground TRUSTED=1``) turns the token
  off, for a laptop no one else logs in to. ``JUPYTER_TOKEN`` fixes the token instead of a
  fresh one per start.
- **A Host allowlist.** 127.0.0.1 (any loopback address), localhost, and the names in
  ``SAMPY_PLAYGROUND_HOSTS`` (comma-separated: the name a reverse proxy forwards). Any other
  ``Host`` gets 403: a page that rebinds its own name to 127.0.0.1 cannot reach the server.
  The kernel websocket also refuses an ``Origin`` that differs from ``Host`` (Jupyter
  Server's own check, left on).
- **Idle kernels are culled, and their number is capped.** Every page view starts a kernel
  (~125 MB) that outlives its closed tab. A kernel with no open page is shut down after
  ``cull_idle_timeout`` seconds of idleness; a page view that would start more than
  ``PlaygroundKernelManager.max_kernels`` kernels gets a 503 page saying so.
- **Websocket messages are limited to 1 MiB.** The page sends slider values and short
  expressions; Tornado's default allows 10 MiB per message.
- **Only the v1 kernel websocket protocol.** Voilà 0.5.13 reads every binary frame the kernel
  sends as a v1 frame; on a legacy-protocol connection one ``request_state`` for an image
  widget makes it loop on the event loop until memory runs out (docs/voila-legacy-websocket.md).
  Browsers speak v1; a client that does not offer it gets HTTP 400 before the upgrade.
- **No 500s and no CDN.** ``/logout`` and malformed ``/voila/templates/...`` paths answer
  without a server error; the page's template drops the two Font Awesome stylesheets Voilà's
  lab template fetches from cdn.jsdelivr.net (its own bundle already carries the icons), and
  the jupytext labextension, built for a newer JupyterLab, is not loaded.
- **Clients cannot restart kernels.** ``shutdown_request`` is no longer let through the
  websocket (Voilà's restarter brought a bare kernel back after each one).
- **No traceback on the page.** Every kernel loads ``sampy.playground.kernel_guard``, which
  sends ipykernel's reports of a failed ``comm_open``/``comm_msg`` (a hostile client's made-up
  widget, with file paths in its traceback) to this server's log instead of to the page.
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.logout import LogoutHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Integer
from voila import app as voila_app
from voila.static_file_handler import TemplateStaticFileHandler

c = get_config()  # noqa: F821 (traitlets defines it while it runs this file)

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------- who may connect

# Nothing but this machine's own interfaces: a class is served through JupyterHub or a
# reverse proxy with authentication in front (README, the playground), never a public bind.
c.Voila.ip = "127.0.0.1"

if os.environ.get("SAMPY_PLAYGROUND_TRUSTED") == "1":
    c.Voila.token = ""
else:
    # A fresh random token per start (or JUPYTER_TOKEN's), printed in the URL Voilà logs.
    c.Voila.auto_token = True

EXTRA_HOSTS = [h.strip() for h in os.environ.get("SAMPY_PLAYGROUND_HOSTS", "").split(",")]
MAX_MESSAGE_BYTES = 1024 * 1024

c.Voila.tornado_settings = {
    # Voilà sets allow_remote_access=True, which turns Jupyter Server's Host check off.
    "allow_remote_access": False,
    "local_hostnames": ["localhost", *filter(None, EXTRA_HOSTS)],
    "websocket_max_message_size": MAX_MESSAGE_BYTES,
}

# --------------------------------------------------------------------------- kernels

# Only kernels with no open page are culled (cull_connected stays False): a student who
# leaves the tab open keeps the kernel; a closed tab's kernel goes after 10 idle minutes.
c.MappingKernelManager.cull_idle_timeout = 600
c.MappingKernelManager.cull_interval = 60


KERNEL_GUARD = "--IPKernelApp.extensions=sampy.playground.kernel_guard"


class PlaygroundKernelManager(AsyncMappingKernelManager):
    """Voilà's kernel manager with a cap on the number of kernels alive at once."""

    max_kernels = Integer(
        20,
        config=True,
        help="Most kernels alive at once (each ~125 MB); a page view beyond it gets a 503.",
    )

    _starting = 0

    def __init__(self, **kwargs) -> None:
        """Voilà's kernel manager, with ``shutdown_request`` no longer let through.

        A page never sends it over its websocket (closing a tab posts to
        /voila/api/shutdown/<kernel>); a script that does makes the restarter bring the kernel
        back as a bare ipykernel each time.
        """
        super().__init__(**kwargs)
        self.allowed_message_types = [
            t for t in self.allowed_message_types if t != "shutdown_request"
        ]

    async def start_kernel(self, *, kernel_id: str | None = None, **kwargs) -> str:
        """Start a kernel for a page view, or answer 503 when ``max_kernels`` are alive."""
        if kernel_id is None:
            # Kernels still starting count too, so that a burst of page views cannot pass the
            # check together.
            if len(self._kernels) + self._starting >= self.max_kernels:
                full = (
                    f"The playground is full ({self.max_kernels} pages are open on this "
                    "server). Close an unused tab, or try again in a few minutes: a page "
                    f"left closed is shut down after {self.cull_idle_timeout} s."
                )
                self.log.warning("Refused a page view: %s", full)
                # The reason is what Voilà's error page shows after "503:".
                raise web.HTTPError(503, reason=full)
            self._starting += 1
            try:
                return await self._start_guarded(**kwargs)
            finally:
                self._starting -= 1
        return await self._start_guarded(kernel_id=kernel_id, **kwargs)

    async def _start_guarded(self, **kwargs) -> str:
        # The kernel_guard extension sends ipykernel's comm errors (a hostile comm_open's
        # traceback) to this server's log instead of to the page.
        extra = [*kwargs.pop("extra_arguments", []), KERNEL_GUARD]
        return await super().start_kernel(extra_arguments=extra, **kwargs)


c.VoilaConfiguration.multi_kernel_manager_class = PlaygroundKernelManager
c.PlaygroundKernelManager.max_kernels = 20

# --------------------------------------------------------------------------- the websocket


class PlainErrors:
    """Error answers as one line of text.

    Jupyter Server's error pages need a ``static_path`` setting that Voilà does not set: a 403
    or 400 from its handlers ends in "Uncaught exception in write_error" and an empty body.
    """

    def write_error(self, status_code: int, **kwargs) -> None:
        """Answer ``<status>: <reason>``."""
        self.finish(f"{status_code}: {self._reason}\n")


KERNEL_WS_V1 = "v1.kernel.websocket.jupyter.org"


class V1OnlyKernelWebsocketHandler(PlainErrors, voila_app.VoilaKernelWebsocketHandler):
    """Voilà's kernel websocket, refused to clients that do not offer the v1 protocol.

    Voilà 0.5.13 parses every binary frame it forwards as a v1 frame; a legacy frame read that
    way gives a buffer count near 1e18 and a list comprehension that never ends
    (docs/voila-legacy-websocket.md). The refusal is an HTTP 400 answer to the upgrade
    request, before the connection reaches the kernel.
    """

    async def get(self, *args, **kwargs) -> None:
        """Refuse the upgrade unless the client offered the v1 subprotocol."""
        offered = self.request.headers.get("Sec-WebSocket-Protocol", "")
        if KERNEL_WS_V1 not in [p.strip() for p in offered.split(",")]:
            raise web.HTTPError(
                400, "this server speaks only the %s kernel websocket protocol", KERNEL_WS_V1
            )
        await super().get(*args, **kwargs)


# Voilà 0.5.13 has no setting for its handler classes; it looks these names up in voila.app
# when it builds its routes, after this file has run.
voila_app.VoilaKernelWebsocketHandler = V1OnlyKernelWebsocketHandler

# --------------------------------------------------------------------------- no 500s


class PlaygroundLogoutHandler(PlainErrors, LogoutHandler):
    """Clears the login cookie and says so (Jupyter Server's renders a template Voilà lacks)."""

    @allow_unauthenticated
    def get(self) -> None:
        """Log out and answer with a short page."""
        self.identity_provider.clear_login_cookie(self)
        self.write("<p>Logged out. Open the playground's URL with its token to come back.</p>")


c.PasswordIdentityProvider.logout_handler_class = PlaygroundLogoutHandler


class CheckedTemplateStaticFileHandler(TemplateStaticFileHandler):
    """Voilà's template files, with 404 for a path that is not ``<template>/static/<file>``."""

    def parse_url_path(self, path: str) -> str:
        """Answer 404 instead of an unpacking error (a 500) for a malformed path."""
        parts = path.split("/", 2)
        if len(parts) != 3 or parts[1] != "static" or not parts[0] or not parts[2]:
            raise web.HTTPError(404)
        try:
            return super().parse_url_path(path)
        except ValueError as exc:  # an unknown template name
            raise web.HTTPError(404) from exc


voila_app.TemplateStaticFileHandler = CheckedTemplateStaticFileHandler

# --------------------------------------------------------------------------- the page

# The "sampy" template (jupyter/voila/templates/sampy) is Voilà's lab template without the
# Font Awesome links to cdn.jsdelivr.net. Voilà finds templates on the Jupyter data path.
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    filter(None, [str(HERE / "jupyter"), os.environ.get("JUPYTER_PATH")])
)
c.VoilaConfiguration.template = "sampy"

# jupytext installs a labextension built for JupyterLab 4.6; Voilà bundles 4.2, so it fails to
# load (a console error) and the playground does not use it.
c.VoilaConfiguration.extension_denylist = ["jupyterlab-jupytext"]
