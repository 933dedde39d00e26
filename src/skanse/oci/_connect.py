"""Resolving a registry's name and connecting to it within the time a request has left.

`socket.getaddrinfo` takes no timeout: a lookup lasts as long as the resolver's own
`timeout` times `attempts` times nameservers (and search domains), and the nameserver that
answers for a registry's domain is whoever owns that domain, a pod author's registry
included. urllib3 resolves inside the connect call, so its connect timeout does not bound the
lookup, and it gives every address the name resolves to the whole connect timeout again.

Here a lookup runs on a thread of its own and the caller waits only for the time it has;
callers asking for the same name share one lookup (a stalled name holds one thread, not one
per request), and at most `MAX_LOOKUPS` lookups run at once: past that, resolution fails at
once rather than piling up threads behind a stalled resolver. Each address then gets the time
left, not a fresh timeout, and the socket keeps the time left when it is handed on, so the
TLS handshake that follows (CPython bounds a handshake by the socket's timeout as a whole)
ends by the same deadline.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MAX_LOOKUPS", "LookupsBusy", "connect", "resolve"]

# Lookups in flight at once, each on its own thread; a stalled resolver answers every one
# late, so this bounds the threads such a resolver can hold.
MAX_LOOKUPS = 32

# what getaddrinfo returns for each address (typeshed spells it per family)
_AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


class LookupsBusy(OSError):
    """MAX_LOOKUPS lookups are in flight: this one is not started."""


class _Lookup:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Sequence[_AddrInfo] = ()
        self.error: socket.gaierror | None = None


_lookups: dict[tuple[str, int, int], _Lookup] = {}
_lock = threading.Lock()


def _run(key: tuple[str, int, int], lookup: _Lookup) -> None:
    host, port, family = key
    try:
        lookup.result = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        lookup.error = exc
    except (OSError, UnicodeError) as exc:  # an unencodable name, for instance
        lookup.error = socket.gaierror(socket.EAI_FAIL, str(exc))
    finally:
        with _lock:
            # the next caller starts a lookup of its own (the system's cache, if any, is
            # what remembers answers)
            if _lookups.get(key) is lookup:
                del _lookups[key]
        lookup.done.set()


def resolve(host: str, port: int, family: int, seconds: float) -> Sequence[_AddrInfo]:
    """getaddrinfo's stream addresses for `host`, within `seconds`: TimeoutError past them,
    `LookupsBusy` when too many lookups are in flight, socket.gaierror as getaddrinfo."""
    try:  # an address needs no lookup (and no thread)
        return socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    key = (host, port, family)
    with _lock:
        lookup = _lookups.get(key)
        if lookup is None:
            if len(_lookups) >= MAX_LOOKUPS:
                raise LookupsBusy(
                    f"{MAX_LOOKUPS} name lookups are already waiting for the resolver; "
                    f"{host} is not looked up"
                )
            lookup = _lookups[key] = _Lookup()
            threading.Thread(
                target=_run, args=(key, lookup), name="skanse-resolve", daemon=True
            ).start()
    if not lookup.done.wait(max(0.0, seconds)):
        raise TimeoutError(f"{host} was not resolved within {seconds:.3g} s")
    if lookup.error is not None:
        # a new exception per caller: the shared one may be raised on several threads
        raise socket.gaierror(lookup.error.errno, lookup.error.strerror)
    if not lookup.result:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
    return lookup.result


def connect(
    host: str,
    port: int,
    family: int,
    left: Callable[[], float],
    *,
    source_address: tuple[str, int] | None = None,
    socket_options: Sequence[tuple[int, int, Any]] | None = None,
) -> socket.socket:
    """A connected socket to `host`, as urllib3's create_connection makes one, but every step
    (the lookup, each address tried) waits at most `left()` seconds, asked again before each:
    `left` raises TimeoutError once no time is left. The socket's timeout is what is left."""
    if host.startswith("["):
        host = host.strip("[]")
    error: OSError | None = None
    for af, kind, proto, _name, address in resolve(host, port, family, left()):
        sock = socket.socket(af, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(left())
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
            sock.settimeout(left())  # for the TLS handshake
            return sock
        except OSError as exc:  # TimeoutError included: the next address gets what is left
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    assert error is not None  # resolve never returns an empty list
    raise error
