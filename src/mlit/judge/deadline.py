"""A deadline and a size limit for one whole judge request, enforced on the connection's reads.

httpx's timeouts are per operation: a read that gets one byte a second never times out, so a server
that trickles its reply holds a request (and a job) as long as it likes, and a reply of any size is
read whole. ``request_budget`` gives the requests this thread sends while it is open a deadline
(``launch.judge.timeout_s`` for the whole request: connecting, sending, the headers and the body) and a
number of bytes; the transport of ``http_client`` shortens each socket read to the time that is left
and counts what arrives. Past the deadline a read raises a read timeout (the client retries it and
then records ``api_error``); past the bytes, ``ReplyTooLargeError`` (not retried, not cached).
"""

from __future__ import annotations

import contextlib
import threading
import time

import httpcore2
import httpx2

_BUDGET = threading.local()


class ReplyTooLargeError(Exception):
    """The endpoint sent more bytes than a reply of ``judge.max_tokens`` tokens can take."""


class _Budget:
    def __init__(self, seconds: float, max_bytes: int):
        self.seconds, self.max_bytes = seconds, max_bytes
        self.deadline = time.monotonic() + seconds
        self.received = 0

    def left(self, timeout: float | None) -> float:
        """The timeout of the next socket operation: at most what is left until the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left if timeout is None else min(timeout, left)

    def expired(self) -> httpcore2.ReadTimeout | None:
        """The error of a request past its deadline; None before it."""
        if time.monotonic() < self.deadline:
            return None
        return httpcore2.ReadTimeout(f"no complete reply within launch.judge.timeout_s = {self.seconds:g} s (a deadline "
                                     "for the whole request, not for each read)")


def _current() -> _Budget | None:
    return getattr(_BUDGET, "value", None)


@contextlib.contextmanager
def request_budget(seconds: float, max_bytes: int):
    """The requests sent by this thread inside the block end by ``seconds`` and read at most ``max_bytes``."""
    _BUDGET.value = _Budget(seconds, max_bytes)
    try:
        yield
    finally:
        _BUDGET.value = None


class _BudgetStream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = _current()
        if budget is None:
            return self._stream.read(max_bytes, timeout)
        try:
            data = self._stream.read(max_bytes, budget.left(timeout))
        except httpcore2.TimeoutException as error:  # the socket waited the time left: say it was the deadline
            raise (budget.expired() or error) from None
        budget.received += len(data)
        if budget.received > budget.max_bytes:
            raise ReplyTooLargeError(f"the judge's reply is larger than {budget.max_bytes} bytes, more than "
                                     "judge.max_tokens tokens can be; it was not read further nor stored")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        budget = _current()
        self._stream.write(buffer, timeout if budget is None else budget.left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None, timeout: float | None = None):
        budget = _current()
        return _BudgetStream(self._stream.start_tls(ssl_context, server_hostname,
                                                    timeout if budget is None else budget.left(timeout)))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _BudgetBackend(httpcore2.NetworkBackend):
    def __init__(self, backend: httpcore2.NetworkBackend):
        self._backend = backend

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        budget = _current()
        timeout = timeout if budget is None else budget.left(timeout)
        return _BudgetStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        budget = _current()
        timeout = timeout if budget is None else budget.left(timeout)
        return _BudgetStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY, ALL_PROXY, NO_PROXY, ...): httpx reads
    these only for a client without its own transport."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


def http_client(base_url: str) -> httpx2.Client:
    """The judge client's HTTP client: openai's defaults (and the environment's proxy), with the budget
    on every connection."""
    from openai import DefaultHttpxClient

    transport = httpx2.HTTPTransport(proxy=environment_proxy(base_url))
    pool = transport._pool  # httpx builds its connection pool (or proxy) with a network backend: wrap it
    pool._network_backend = _BudgetBackend(pool._network_backend)
    return DefaultHttpxClient(transport=transport)
