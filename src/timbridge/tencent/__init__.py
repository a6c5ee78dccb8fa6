"""Tencent Chat REST: the client (`client`), its call limits (`limits`), the error codes and
what to do about them (`codes`), and the one door replies go out by (`outbound`).
Import from the modules."""

__all__: list[str] = []
