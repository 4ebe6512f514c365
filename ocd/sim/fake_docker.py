"""A fake Docker Engine: the few HTTP endpoints that ``ocd docker_mysql`` uses.

There is no Docker engine where OCD is tested, so this serves, on a unix
socket selected with ``DOCKER_HOST=unix:///path``, just enough of the Engine
HTTP API for the Docker SDK for Python (``docker.from_env()``):

    GET    /version                       API version negotiation
    GET    /_ping
    GET    /images/{name}/json            404 until pulled (or preloaded)
    POST   /images/create?fromImage=&tag= streamed (chunked) JSON progress
    GET    /containers/json?all=
    POST   /containers/create?name=       404 if the image is missing, 409 on a name clash
    GET    /containers/{id|name}/json
    POST   /containers/{id}/start         204, 304 if already running
    POST   /containers/{id}/stop          204, 304 if not running
    DELETE /containers/{id}?v=            409 if running; v removes its volume

Paths may carry a ``/v1.NN`` prefix. A container runs nothing: it only
reports a published port. ``publish_port`` makes every container report that
host port (in tests, the real MariaDB's 3306) instead of the one requested,
so a client must read the port the engine reports. Each container gets one
anonymous volume (the MySQL image declares ``/var/lib/mysql``); it outlives
the container unless removed with ``v``, like Docker's.

Written with the standard library (a threading unix-socket server) so tests
that block on child processes can run it without a reactor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_VERSION = "1.45"
_VERSIONED = re.compile(r"^/v\d+\.\d+(/.*)$")
_TRUE = {"1", "true", "True", "yes"}


class FakeDockerEngine:
    """The engine's state and its HTTP server on ``socket_path``.

    ``start()`` serves in a daemon thread; ``stop()`` closes the socket.
    ``images``, ``containers`` and ``volumes`` are open for tests to read.
    """

    def __init__(self, socket_path: str, publish_port: int | None = None,
                 images: tuple[str, ...] = ()) -> None:
        self.socket_path = socket_path
        self.publish_port = publish_port
        self.lock = threading.Lock()
        self.images: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        self.volumes: set[str] = set()
        self.pulls: list[str] = []
        for image in images:
            self._add_image(image)
        self._server: socketserver.UnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------
    def start(self) -> "FakeDockerEngine":
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self._server = _Server(self.socket_path, _Handler)
        self._server.engine = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-docker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    @property
    def url(self) -> str:
        """The ``DOCKER_HOST`` value that selects this engine."""
        return f"unix://{self.socket_path}"

    # -- state ------------------------------------------------------------
    def _add_image(self, name: str) -> dict[str, Any]:
        if ":" not in name.rsplit("/", 1)[-1]:
            name += ":latest"
        digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        image = {"Id": digest, "RepoTags": [name], "Config": {"Volumes": {"/var/lib/mysql": {}}}}
        self.images[name] = image
        return image

    def find_image(self, name: str) -> dict[str, Any] | None:
        if name in self.images:
            return self.images[name]
        if ":" not in name.rsplit("/", 1)[-1] and f"{name}:latest" in self.images:
            return self.images[f"{name}:latest"]
        return next((i for i in self.images.values() if i["Id"] == name
                     or i["Id"].split(":")[1].startswith(name)), None)

    def find_container(self, ref: str) -> dict[str, Any] | None:
        """By full id, name (with or without ``/``) or a unique id prefix."""
        name = "/" + ref.lstrip("/")
        for container in self.containers.values():
            if container["Id"] == ref or container["Name"] == name:
                return container
        prefixed = [c for c in self.containers.values() if len(ref) >= 4 and c["Id"].startswith(ref)]
        return prefixed[0] if len(prefixed) == 1 else None

    def create(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        image = self.find_image(body.get("Image", ""))
        if image is None:
            return 404, {"message": f"No such image: {body.get('Image')}"}
        if name and self.find_container(name) is not None:
            return 409, {"message": f'Conflict. The container name "/{name}" is already in use'}
        cid = hashlib.sha256(f"{name}{len(self.containers)}{os.urandom(8).hex()}".encode()).hexdigest()
        name = name or f"fake_{cid[:8]}"
        volume = hashlib.sha256(cid.encode()).hexdigest()
        self.volumes.add(volume)
        self.containers[cid] = {
            "Id": cid, "Name": "/" + name, "Image": image["Id"],
            "Config": {"Image": body.get("Image"), "Env": body.get("Env") or [],
                       "ExposedPorts": body.get("ExposedPorts") or {}},
            "HostConfig": body.get("HostConfig") or {},
            "Mounts": [{"Type": "volume", "Name": volume, "Destination": "/var/lib/mysql"}],
            "State": _state("created"),
            "NetworkSettings": {"Ports": {}},
        }
        return 201, {"Id": cid, "Warnings": []}

    def _published(self, container: dict[str, Any]) -> dict[str, Any]:
        ports: dict[str, Any] = {}
        for port, bindings in (container["HostConfig"].get("PortBindings") or {}).items():
            ports[port] = [{"HostIp": "0.0.0.0",
                            "HostPort": str(self.publish_port if self.publish_port else b.get("HostPort"))}
                           for b in bindings or []]
        return ports

    def set_running(self, container: dict[str, Any], running: bool) -> int:
        if container["State"]["Running"] == running:
            return 304
        container["State"] = _state("running" if running else "exited")
        container["NetworkSettings"]["Ports"] = self._published(container) if running else {}
        return 204

    def remove(self, container: dict[str, Any], volumes: bool, force: bool) -> tuple[int, dict[str, Any] | None]:
        if container["State"]["Running"] and not force:
            return 409, {"message": f"You cannot remove a running container {container['Id']}. "
                                    "Stop the container before attempting removal or force remove"}
        del self.containers[container["Id"]]
        if volumes:
            for mount in container["Mounts"]:
                self.volumes.discard(mount["Name"])
        return 204, None


def _state(status: str) -> dict[str, Any]:
    return {"Status": status, "Running": status == "running", "Paused": False,
            "Restarting": False, "ExitCode": 0}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    """Routes a request to the engine; every answer is JSON (or chunked JSON)."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeDocker"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass  # quiet: tests read outcomes, not access logs

    def address_string(self) -> str:
        return "unix"

    @property
    def engine(self) -> FakeDockerEngine:
        return self.server.engine  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        match = _VERSIONED.match(path)
        if match:
            path = match.group(1)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw.strip() else {}
        with self.engine.lock:
            answer = self._route(method, path, query, body)
        if answer is None:
            return  # already streamed
        status, payload = answer
        self._send(status, payload)

    def _route(self, method: str, path: str, query: dict[str, str],
               body: dict[str, Any]) -> tuple[int, Any] | None:
        engine = self.engine
        if method in ("GET", "HEAD") and path == "/_ping":
            return 200, "OK"
        if method == "GET" and path == "/version":
            return 200, {"ApiVersion": API_VERSION, "MinAPIVersion": "1.24",
                         "Version": "fake", "Os": "linux", "Arch": "amd64"}
        if method == "GET" and path == "/containers/json":
            show_all = query.get("all") in _TRUE
            return 200, [_summary(c) for c in engine.containers.values()
                         if show_all or c["State"]["Running"]]
        if method == "POST" and path == "/containers/create":
            return engine.create(query.get("name", ""), body)
        if method == "POST" and path == "/images/create":
            return self._pull(query)
        match = re.fullmatch(r"/images/(.+)/json", path)
        if match and method == "GET":
            image = engine.find_image(match.group(1))
            if image is None:
                return 404, {"message": f"No such image: {match.group(1)}"}
            return 200, image
        match = re.fullmatch(r"/containers/([^/]+)(/json|/start|/stop)?", path)
        if not match:
            return 404, {"message": f"page not found: {method} {path}"}
        container = engine.find_container(match.group(1))
        if container is None:
            return 404, {"message": f"No such container: {match.group(1)}"}
        action = match.group(2)
        if method == "GET" and action == "/json":
            return 200, container
        if method == "POST" and action in ("/start", "/stop"):
            return engine.set_running(container, action == "/start"), None
        if method == "DELETE" and action is None:
            return engine.remove(container, query.get("v") in _TRUE, query.get("force") in _TRUE)
        return 404, {"message": f"page not found: {method} {path}"}

    def _pull(self, query: dict[str, str]) -> None:
        """Stream the progress of a pull as chunked JSON lines, like the engine."""
        name = query.get("fromImage", "")
        tag = query.get("tag") or "latest"
        full = f"{name}:{tag}"
        self.engine.pulls.append(full)
        self.engine._add_image(full)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in ({"status": f"Pulling from {name}", "id": tag},
                     {"status": f"Digest: {self.engine.images[full]['Id']}"},
                     {"status": f"Status: Downloaded newer image for {full}"}):
            data = (json.dumps(line) + "\r\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")
        return None

    def _send(self, status: int, payload: Any) -> None:
        if payload is None:
            data = b""
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)


def _summary(container: dict[str, Any]) -> dict[str, Any]:
    ports = [{"PrivatePort": int(p.split("/")[0]), "Type": p.split("/")[1],
              "PublicPort": int(b["HostPort"]), "IP": b["HostIp"]}
             for p, bs in container["NetworkSettings"]["Ports"].items() for b in bs or []]
    return {"Id": container["Id"], "Names": [container["Name"]], "Image": container["Config"]["Image"],
            "State": container["State"]["Status"], "Status": container["State"]["Status"], "Ports": ports}


def main(argv: list[str] | None = None) -> int:
    """``python -m ocd.sim.fake_docker SOCKET [--publish-port N]``: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket", help="path of the unix socket to serve on")
    parser.add_argument("--publish-port", type=int, default=None,
                        help="host port that every container reports (default: the one requested)")
    args = parser.parse_args(argv)
    engine = FakeDockerEngine(args.socket, args.publish_port).start()
    print(f"DOCKER_HOST={engine.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
