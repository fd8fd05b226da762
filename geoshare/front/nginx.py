"""nginx as a front cache for tiles: its configuration, and the process ``geoshare serve`` runs.

A cached tile served by Python costs a worker ~100 µs of interpreter and socket work; nginx serves
the same bytes from its cache (memory-mapped index, page-cached files) with none of it. Only what the
app itself declares shareable is kept: responses marked ``public, …, immutable`` (versioned tile URLs
of layers anyone may read). A new layer version makes new URLs, so the cache never needs purging;
unversioned URLs (``no-cache``), private tiles and anything asked with a key or embed ticket always
reach the app. A kept copy is answered only while the gate
(``front.gate``) is open for its resource and version: a reclassification or a deletion closes it
at once, and the request goes to the app.

The client's address is the connection's, or, from a trusted proxy (``trusted_proxies``), the one
that proxy names: nginx replaces any ``X-Forwarded-For`` a client sent with that one address, so the
app (whose uvicorn believes only nginx) never sees an address a client made up.

What nginx answers itself (hits, its own 429s, and the requests it refuses: 400, 413, 414, each an
RFC 7807 body like the app's) it writes to a JSON log that the app ingests into the audit log
(``access.front_log``), so every request is still accounted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import orjson

from geoshare.api import http_policy

#: paths whose responses may be cached: vector, base map, raster and imagery tiles (the app's
#: ``Cache-Control`` still decides; everything else is passed through untouched)
TILE_LOCATION = r"^/(collections/[^/]+/tiles/|basemap/tiles/|imagery/[^/]+/tiles/)"
HIT_LOG = "hits.jsonl"
#: the JSON line ``access.front_log.parse`` reads
LOG_FORMAT = (
    '\'{"ts":$msec,"ip":"$remote_addr","method":"$request_method","path":"$uri",'
    '"status":$status,"bytes":$body_bytes_sent,"seconds":$request_time,"cache":"$upstream_cache_status"}\''
)
GATE_DIR = "gate"
#: the gate (``front.gate``): the file a kept copy of a URL needs, named for its resource and ``v``;
#: one map of three anchored regexes (each costs a worker microseconds, at tens of thousands of hits
#: a second), ids and versions of the shapes the app makes, nothing else
GATE_MAP = r"""    map "$uri#$arg_v" $gs_gate_file {
        "~^/collections/(?<gs_gl>[a-z][a-z0-9_-]{0,62})/tiles/[^#]*#(?<gs_glv>[0-9]{1,12})$"
            "layer.$gs_gl.$gs_glv";
        "~^/basemap/tiles/[^#]*#(?<gs_gbv>[0-9.]{1,200})$" "basemap.$gs_gbv";
        "~^/imagery/(?<gs_gi>[a-z][a-z0-9_-]{0,62})/tiles/[^#]*#(?<gs_giv>[0-9a-f]{1,64})$"
            "imagery.$gs_gi.$gs_giv";
        default "-";
    }
"""
# set in each location: a location that sets any proxy header inherits none from its server; the
# client's address replaces whatever X-Forwarded-For it sent (a client can write any address there)
_PROXY_HEADERS = """\
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
"""
_PROBLEM_429 = (
    '{"type":"about:blank","title":"Too Many Requests","status":429,'
    '"detail":"too many requests from this address; retry after the Retry-After seconds"}'
)


@dataclass(frozen=True)
class FrontConfig:
    listen_host: str
    listen_port: int
    upstream: str  # host:port of the API
    root: Path  # nginx's prefix: configuration, cache, temporary files, logs
    cache_max_size: str = "4g"
    workers: int | str = "auto"
    anonymous_per_minute: int = 600  # per client address, for tiles asked without a key; 0: no limit
    upload_max_bytes: int = 2 * 1024**3
    trusted_proxies: tuple[str, ...] = ()  # proxies in front of nginx whose X-Forwarded-For is believed

    @property
    def gate_dir(self) -> Path:
        return self.root / GATE_DIR

    @property
    def hit_log(self) -> Path:
        return self.root / "logs" / HIT_LOG

    @property
    def pid_file(self) -> Path:
        return self.root / "nginx.pid"

    @property
    def conf_path(self) -> Path:
        return self.root / "nginx.conf"


def _limit(per_minute: int) -> tuple[str, str]:
    """The rate-limit zone and its use; none when unlimited or beyond what nginx can count."""
    if per_minute <= 0 or per_minute > 6_000_000:
        return "", ""
    zone = f"    limit_req_zone $gs_anonymous zone=gs_anonymous:16m rate={per_minute}r/m;\n"
    use = f"            limit_req zone=gs_anonymous burst={per_minute} nodelay;\n"
    return zone, use


def _real_ip(trusted: tuple[str, ...]) -> str:
    """The client's address behind trusted proxies: the right-most one in X-Forwarded-For that is
    not a trusted proxy (``real_ip_recursive``); without trusted proxies, the connection's."""
    if not trusted:
        return ""
    lines = [f"    set_real_ip_from {t};" for t in trusted]
    return "\n".join([*lines, "    real_ip_header X-Forwarded-For;", "    real_ip_recursive on;", ""])


def _problem(status: int, detail: str) -> str:
    """An RFC 7807 body as a quoted nginx string (the app's problems, for what nginx refuses)."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return orjson.dumps(body).decode().replace("'", "\\'")


def render(cfg: FrontConfig) -> str:
    """The whole nginx.conf, every path inside ``cfg.root`` (nothing of the system's is touched)."""
    root = cfg.root.resolve()
    zone, limit = _limit(cfg.anonymous_per_minute)
    too_large = _problem(413, f"the request body is larger than the {cfg.upload_max_bytes} bytes accepted")
    # with any origin allowed the CORS headers are the same for every Origin; otherwise they echo it
    cors = "o" if http_policy.CORS_ALLOW_ORIGINS == ("*",) else "$http_origin"
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    gate = root / GATE_DIR
    return f"""# written by `geoshare serve --front nginx`; edits are overwritten at the next start
{user}worker_processes {cfg.workers};
pcre_jit on;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 4096; }}

http {{
    default_type application/octet-stream;
    access_log off;
    server_tokens off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    proxy_cache_path {root}/cache levels=1:2 keys_zone=gs_tiles:64m max_size={cfg.cache_max_size}
                     inactive=30d use_temp_path=off;
{_real_ip(cfg.trusted_proxies)}
    # a request is anonymous (cacheable, limited per address) without a key or an embed ticket
    map "$http_x_api_key$arg_key$http_x_geoshare_embed" $gs_keyed {{ "" ""; default 1; }}
    map $gs_keyed $gs_anonymous {{ "" $binary_remote_addr; default ""; }}
    # the response varies by compression and by CORS (Vary: Accept-Encoding, Origin): both go into
    # the key in normal form, so every browser's Accept-Encoding shares one gzip copy
    map $http_accept_encoding $gs_gzip {{ "~*gzip" gzip; default ""; }}
    map $http_origin $gs_cors {{ "" ""; default {cors}; }}
{GATE_MAP}    # a request the cache does not answer goes to the app with the client's If-None-Match (a 304)
    map "$gs_keyed$gs_gated" $gs_revalidate {{ "" ""; default $http_if_none_match; }}
    # what nginx answered itself (hits, its 429s and the requests it refused) goes to the hit log
    map "$upstream_cache_status:$upstream_addr:$status" $gs_front_answered {{
        "~^HIT:" 1;
        "~^::(400|413|414|429)$" 1;
        default 0;
    }}
    log_format gs_front escape=json {LOG_FORMAT};
{zone}
    upstream gs_api {{
        server {cfg.upstream};
        keepalive 32;
    }}

    server {{
        listen {cfg.listen_host}:{cfg.listen_port} reuseport;
        client_max_body_size {cfg.upload_max_bytes};
        access_log {root}/logs/{HIT_LOG} gs_front buffer=64k flush=1s if=$gs_front_answered;

        proxy_http_version 1.1;
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;

        # the gate is checked here, where nginx keeps no open-file cache: a closed gate is seen at
        # the next request (a stat of one small directory; see benchmarks/front_gate.py)
        set $gs_gated 1;
        if (-f {gate}/$gs_gate_file) {{
            set $gs_gated "";
        }}

        # what nginx refuses itself answers as the app does (a URI: a request line nginx could not
        # read has none for a named location)
        error_page 400 /.gs-problem/400;
        error_page 413 /.gs-problem/413;
        error_page 414 /.gs-problem/414;
        error_page 429 = @gs_too_many;

        location ~ {TILE_LOCATION} {{
            proxy_pass http://gs_api;
{_PROXY_HEADERS}            proxy_set_header Accept-Encoding $gs_gzip;
            proxy_set_header If-None-Match $gs_revalidate;
            proxy_cache gs_tiles;
            # a HEAD reaches the app as a HEAD (audited as one; nginx would ask for a GET), so the
            # method is part of the key: a HEAD's empty answer is never a GET's
            proxy_cache_convert_head off;
            proxy_cache_key "$request_method|$gs_gzip|$gs_cors|$request_uri";
            proxy_ignore_headers Vary;
            proxy_cache_bypass $gs_keyed $gs_gated;
            proxy_no_cache $gs_keyed $gs_gated;
            proxy_cache_lock on;
            add_header X-Cache $upstream_cache_status always;
            # cached tiles go out by sendfile from descriptors kept open: on 2,000 cached tiles at 8
            # connections 0.77 of bare uvicorn's 20 KB rate, against 0.60 with a file opened per hit
            # (a kept tile is immutable per URL, so a kept descriptor is never stale); tcp_nopush
            # is left off: with sendfile over loopback it was 10x slower
            open_file_cache max=20000 inactive=60s;
{limit}            limit_req_status 429;
        }}

        location @gs_too_many {{
            default_type application/problem+json;
            add_header Retry-After 60 always;
            return 429 '{_PROBLEM_429}';
        }}
        location = /.gs-problem/400 {{
            internal;
            default_type application/problem+json;
            return 400 '{_problem(400, "the request is malformed")}';
        }}
        location = /.gs-problem/413 {{
            internal;
            default_type application/problem+json;
            return 413 '{too_large}';
        }}
        location = /.gs-problem/414 {{
            internal;
            default_type application/problem+json;
            return 414 '{_problem(414, "the request line or a header is too long")}';
        }}

        location / {{
            proxy_pass http://gs_api;
{_PROXY_HEADERS}            # streamed answers (exports, progress) and uploads pass through as they come
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def write(cfg: FrontConfig) -> Path:
    for sub in ("logs", "tmp", "cache", GATE_DIR):
        (cfg.root / sub).mkdir(parents=True, exist_ok=True)
    cfg.conf_path.write_text(render(cfg), encoding="utf-8")
    return cfg.conf_path


def check(cfg: FrontConfig, binary: str) -> None:
    """``nginx -t`` on the written configuration; a ``RuntimeError`` carries nginx's own words."""
    done = subprocess.run(
        [binary, "-t", "-q", "-p", str(cfg.root.resolve()), "-c", str(cfg.conf_path.resolve())],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"nginx rejected {cfg.conf_path}: {done.stderr.strip()}")


class NginxFront:
    """nginx in the foreground as a child process; ``stop`` shuts it down gracefully."""

    def __init__(self, cfg: FrontConfig, binary: str | None = None) -> None:
        found = binary or nginx_binary()
        if found is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
        self.cfg = cfg
        self.binary = found
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 10.0) -> None:
        _stop_leftover(self.cfg.pid_file)
        _port_free(self.cfg.listen_host, self.cfg.listen_port)
        write(self.cfg)
        check(self.cfg, self.binary)
        root = str(self.cfg.root.resolve())
        conf = str(self.cfg.conf_path.resolve())
        self.process = subprocess.Popen(
            [self.binary, "-p", root, "-c", conf, "-g", "daemon off;"], preexec_fn=_die_with_parent
        )
        deadline = time.monotonic() + ready_timeout
        address = (_connect_host(self.cfg.listen_host), self.cfg.listen_port)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: see {root}/logs/error.log")
            try:
                socket.create_connection(address, timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {address} within {ready_timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests in flight
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _die_with_parent() -> None:
    """In the child: the kernel stops nginx when ``geoshare serve`` dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: stop() still stops it on exit
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def running_pid(pid_file: Path) -> int | None:
    """The nginx master named by ``pid_file``, if it still runs; None for a missing or stale file (a
    number the kernel has since given to another process must never be signalled)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if b"nginx" not in cmdline or str(pid_file.parent.resolve()).encode() not in cmdline:
        return None
    return pid


def reopen_logs(pid_file: Path) -> None:
    """nginx reopens its logs on SIGUSR1 (what logrotate's nginx script sends)."""
    pid = running_pid(pid_file)
    if pid is None:
        raise OSError(f"no running nginx named in {pid_file}")
    os.kill(pid, signal.SIGUSR1)


def _stop_leftover(pid_file: Path, timeout: float = 10.0) -> None:
    """A previous run's nginx still holding the port (its parent was killed before it could stop it)."""
    pid = running_pid(pid_file)
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


def _port_free(host: str, port: int) -> None:
    """nginx listens with SO_REUSEPORT (connections spread over its workers by the kernel), which
    would let it share a port silently with another server doing the same: refuse a taken port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise RuntimeError(f"{host}:{port} is taken ({exc.strerror}): stop what serves it first") from exc


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "*") else host  # noqa: S104 - a host to connect to
