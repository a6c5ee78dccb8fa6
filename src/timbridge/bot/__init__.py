"""The engine: what a robot does with a message, from the gate to the reply.

Import from the modules: `engine` (orchestration), `gate` (which callbacks are answered),
`admission`, `bursts`, `commands`, `summaries` (the policies), `context` (what the model is
sent), `replies` and `live` (how answers go out), `split` and `fences` (message sizes),
`sentences` (everything the robot says on its own), `conversation`, `text`, `media`.
"""

__all__: list[str] = []
