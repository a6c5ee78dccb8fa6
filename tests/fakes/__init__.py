"""Fake servers that speak the real wire formats over loopback: the model vendors (on one base,
`vendor`), a scripted Tencent REST endpoint, and a webhook receiver."""
