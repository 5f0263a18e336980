"""parley's own website chat: a script tag on the store's site, a WebSocket to parley.

- ``visitor.py``: the signed token that names a shopper's browser (workspace, visitor id,
  issued-at), so a socket proves which visitor it speaks for without an account;
- ``protocol.py``: the JSON frames of the socket, and what one socket has already shown;
- ``adapter.py``: :class:`WebChat`, the channel adapter delivery calls, and
  :class:`ChatHub`, which wakes this process's sockets when a reply is sent.

The message row in the database *is* the delivery: a socket shows what was stored for its
visitor, and the hub only makes it immediate. The HTTP side (widget script, session
endpoint, socket) lives in ``parley.http.webchat``.
"""
