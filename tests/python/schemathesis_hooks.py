"""Schemathesis hooks for tests/python/schemathesis.sh: STOW-RS bodies (`multipart/related`) have no built-in
serializer, so the generated value is sent as bytes, as `application/octet-stream` bodies are. The server must then
answer each such body with a documented client error (tests/schemathesis.toml lists them), never a 5xx."""
import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("multipart/related")
def related(ctx, value):
    return {"data": serialize_binary(value)}
