"""The stand-in phone: a loopback adbd that takes ADB connections and gives shell, sync and a
benchmark_model that times .tflite models with LiteRT on this machine."""

from latbench.devices.emulated.benchmark import standin_script
from latbench.devices.emulated.protocol import decode_adb_public_key, verify_token_signature
from latbench.devices.emulated.server import EmulatedPhone
from latbench.devices.emulated.state import Clocks, Faults

__all__ = ["Clocks", "EmulatedPhone", "Faults", "decode_adb_public_key", "standin_script",
           "verify_token_signature"]
