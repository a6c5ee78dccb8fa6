"""A local Tencent Chat: REST, webhook delivery, fault injection, the web chat page.

A stand-in for Tencent, sharing only the wire types (`timbridge.protocol`) and UserSig with the
rest of timbridge; it never imports the engine.
"""

from timbridge.emulator.faults import Fault, Faults
from timbridge.emulator.server import DEMO_SDKAPPID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
from timbridge.emulator.world import Message, World

__all__ = [
    "DEMO_SDKAPPID",
    "DEMO_SECRET_KEY",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "Faults",
    "Message",
    "World",
]
