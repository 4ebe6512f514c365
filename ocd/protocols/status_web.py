"""The status web resources: ``/``, ``/status``, ``/healthz``, ``/metrics``.

Thin on purpose: each resource asks its :class:`StatusSource` (the status
service's provider) and serialises the answer; what is shown is decided in
:mod:`ocd.core.status`. The page is one self-contained HTML document (inline
CSS and JavaScript, nothing from the internet) that polls ``status`` every
two seconds and is readable from across the control room.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from twisted.logger import Logger
from twisted.web.resource import Resource

from ocd.core.status import Health

log = Logger(namespace="ocd.status")


class StatusSource(Protocol):
    def snapshot(self) -> dict[str, Any]: ...

    def health(self) -> Health: ...

    def metrics(self) -> tuple[bytes, str]: ...


def _no_store(request: Any, content_type: bytes) -> None:
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", b"no-store")


def _failed(request: Any, what: str) -> bytes:
    log.failure("building {what} failed", what=what)
    request.setResponseCode(500)
    _no_store(request, b"text/plain; charset=utf-8")
    return f"OCD could not build {what}; see its log\n".encode()


class _SourceResource(Resource):
    """A leaf that answers GET from the status source, or 500 if that fails.

    Subclasses say what they read (:meth:`read`) and how it goes out
    (:meth:`answer`); a source that raises is logged once, here, with the path.
    """

    isLeaf = True
    #: The path named in the log and the 500 body when the source fails.
    path = ""

    def __init__(self, source: StatusSource):
        super().__init__()
        self.source = source

    def read(self) -> Any:
        raise NotImplementedError

    def answer(self, request: Any, value: Any) -> bytes:
        raise NotImplementedError

    def render_GET(self, request: Any) -> bytes:
        try:
            value = self.read()
        except Exception:
            return _failed(request, self.path)
        return self.answer(request, value)


class StatusJson(_SourceResource):
    """``GET /status``: the snapshot as JSON."""

    path = "/status"

    def read(self) -> str:
        return json.dumps(self.source.snapshot(), indent=1, sort_keys=False)

    def answer(self, request: Any, value: str) -> bytes:
        _no_store(request, b"application/json")
        return value.encode("utf-8") + b"\n"


class Healthz(_SourceResource):
    """``GET /healthz``: 200 ``ok`` or 503 with the reason, in plain text."""

    path = "/healthz"

    def read(self) -> Health:
        return self.source.health()

    def answer(self, request: Any, value: Health) -> bytes:
        _no_store(request, b"text/plain; charset=utf-8")
        if not value.ok:
            request.setResponseCode(503)
            return f"unhealthy: {value.reason}\n".encode()
        return f"ok: {value.reason}\n".encode()


class Metrics(_SourceResource):
    """``GET /metrics``: Prometheus text from the provider's own registry."""

    path = "/metrics"

    def read(self) -> tuple[bytes, str]:
        return self.source.metrics()

    def answer(self, request: Any, value: tuple[bytes, str]) -> bytes:
        body, content_type = value
        _no_store(request, content_type.encode())
        return body


class Page(Resource):
    """``GET /``: the page for the control room."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        _no_store(request, b"text/html; charset=utf-8")
        return PAGE.encode("utf-8")


def status_resource(source: StatusSource) -> Resource:
    """The root resource of the status site."""
    root = Resource()
    root.putChild(b"", Page())
    root.putChild(b"status", StatusJson(source))
    root.putChild(b"healthz", Healthz(source))
    root.putChild(b"metrics", Metrics(source))
    return root


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OCD status</title>
<style>
  :root { color-scheme: dark; }
  body { margin: 0; padding: 2vh 3vw; background: #111; color: #eee;
         font-family: "DejaVu Sans", Verdana, sans-serif; font-size: 3.6vh; }
  #verdict { font-size: 16vh; font-weight: bold; line-height: 1.05; margin: 0; }
  #verdict.run { color: #3ddc84; }
  #verdict.wait { color: #ffb000; }
  #verdict.down { color: #ff4d4d; }
  #arming { font-size: 4.5vh; margin: 0.5vh 0 2vh 0; }
  #shadow { font-size: 6vh; font-weight: bold; color: #111; background: #b48cff;
            padding: 0.5vh 1vw; margin: 0 0 1vh 0; }
  #blockers { font-size: 4.5vh; margin: 0 0 2vh 0; padding-left: 1.2em; }
  #blockers li { margin: 0.4vh 0; }
  .row { margin: 1vh 0; }
  .label { color: #999; display: inline-block; min-width: 9em; }
  .stale { color: #ff4d4d; font-weight: bold; }
  #progress { height: 2.5vh; background: #333; width: 60vw; margin-top: 0.5vh; }
  #bar { height: 100%; width: 0; background: #3ddc84; }
  footer { color: #777; font-size: 2.2vh; margin-top: 3vh; }
</style>
</head>
<body>
<div id="shadow" hidden>SHADOW: OCD decides but starts nothing</div>
<h1 id="verdict" class="down">&hellip;</h1>
<div id="arming"></div>
<ul id="blockers"></ul>
<div id="standins" class="stale" hidden></div>
<div class="row"><span class="label">shot</span><span id="shot">none</span>
  <div id="progress" hidden><div id="bar"></div></div></div>
<div class="row"><span class="label">next</span><span id="next">&ndash;</span></div>
<div class="row"><span class="label">TCS heartbeat</span><span id="heartbeat">&ndash;</span></div>
<div class="row"><span class="label">OCD time</span><span id="now">&ndash;</span></div>
<footer id="footer">waiting for OCD&hellip;</footer>
<noscript>This page needs JavaScript; the same facts are at <a href="status">status</a>.</noscript>
<script>
"use strict";
function $(id) { return document.getElementById(id); }
function clock(iso) { return iso ? iso.substring(11, 19) + " UTC" : "unknown"; }
function duration(s) {
  if (s === null || s === undefined) { return "unknown"; }
  s = Math.max(0, Math.round(s));
  var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) { return h + " h " + m + " min"; }
  if (m) { return m + " min " + r + " s"; }
  return r + " s";
}
function show(st) {
  var v = $("verdict");
  v.textContent = (st.shadow && st.verdict === "run" ? "WOULD RUN" :
      st.verdict === "run" ? "RUN" : st.verdict === "wait" ? "WAIT" : "STARTING");
  v.className = st.verdict === "run" ? "run" : "wait";
  $("shadow").hidden = !st.shadow;
  $("arming").textContent = (st.hetdex_allowed === "allowed" ? "HETDEX shots allowed"
      : "HETDEX shots NOT allowed") + (st.failed_shot ? " \\u2014 last shot failed" : "");
  var list = $("blockers");
  list.textContent = "";
  (st.reasons || []).forEach(function (text) {
    var li = document.createElement("li");
    li.textContent = text;
    list.appendChild(li);
  });
  $("standins").hidden = !st.stand_ins;
  $("standins").textContent = st.stand_ins ? "STAND-INS: " + st.stand_ins : "";
  var shot = st.shot;
  if (shot) {
    $("shot").textContent = shot.shotid + " (observation " + shot.obs_number + ")" +
        (shot.step ? ": " + shot.step : "") + ", " + duration(shot.elapsed) + " of up to " +
        duration(shot.expected);
    $("progress").hidden = false;
    $("bar").style.width = Math.min(100, 100 * shot.elapsed / shot.expected) + "%";
  } else {
    $("shot").textContent = "none";
    $("progress").hidden = true;
  }
  var next = st.next;
  $("next").textContent = !next ? "no shot with observations left" :
      next.shotid + " on the " + next.track + " track, " +
      (next.open_now ? "window open now" : "window opens at " + clock(next.opens) +
       " (in " + duration(next.opens_in) + ")");
  var hb = $("heartbeat");
  hb.textContent = st.tcs.heartbeat_age === null ? "never heard" :
      duration(st.tcs.heartbeat_age) + " ago";
  hb.className = st.healthy ? "" : "stale";
  $("now").textContent = clock(st.now);
  $("footer").textContent = (st.healthy ? "healthy" : "NOT HEALTHY: " + st.health) +
      " \\u00b7 OCD " + st.version + " \\u00b7 up " + duration(st.uptime) +
      " \\u00b7 updated " + new Date().toISOString().substring(11, 19) + " UTC";
}
function down(why) {
  var v = $("verdict");
  v.textContent = "NO OCD";
  v.className = "down";
  $("footer").textContent = "OCD does not answer (" + why + ") at " +
      new Date().toISOString().substring(11, 19) + " UTC";
}
function poll() {
  fetch("status", {cache: "no-store"})
    .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
    .then(show)
    .catch(function (e) { down(e.message); })
    .finally(function () { setTimeout(poll, 2000); });
}
poll();
</script>
</body>
</html>
"""
