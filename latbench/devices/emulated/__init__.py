"""The stand-in phone: takes ADB connections on a loopback port (the real wire protocol, RSA auth)
and gives a shell, push/pull and a benchmark_model that times .tflite models with LiteRT here.
"""

from latbench.devices.emulated.benchmark import standin_script
from latbench.devices.emulated.protocol import decode_adb_public_key, verify_token_signature
from latbench.devices.emulated.server import EmulatedPhone
from latbench.devices.emulated.state import Clocks, Faults

__all__ = [
    "Clocks",
    "EmulatedPhone",
    "Faults",
    "decode_adb_public_key",
    "standin_script",
    "verify_token_signature",
]
