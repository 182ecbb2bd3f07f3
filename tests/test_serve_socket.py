"""The listening socket of `llmspec serve`: connections accepted on it send small writes at once.

With Nagle's algorithm on, uvicorn's response (headers, then body, as two writes) waited for the
client's delayed ACK, about 40 ms per request (bench/serve_load.py: 1.33x the bare generate loop
at concurrency 1; /health took 45 ms). asyncio turns Nagle off only on sockets that say TCP.
"""

from __future__ import annotations

import asyncio
import socket

from llmspec.runtime.serve.server import listening_socket


def test_accepted_connections_have_nagle_off():
    async def main() -> int:
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listening_socket("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Protocol, sock=sock)
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()
            return nodelay
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(main()) != 0


def test_a_taken_port_is_a_located_error():
    import pytest

    from llmspec.spec.errors import LlmspecError

    first = listening_socket("127.0.0.1", 0)
    try:
        with pytest.raises(LlmspecError, match="cannot listen on 127.0.0.1"):
            listening_socket("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()
