"""kombu's filesystem transport with atomic message writes, for the demo and the tests.

The stock transport opens the message file, then writes it; a consumer polling the same
folder can move and read the file in between, get an empty message and crash the worker
(``JSONDecodeError`` in ``Channel._get``, seen with several workers on one folder). Here a
message is written under a dot-name the consumer skips, then renamed into place, which is
atomic on POSIX. Select it with ``broker_transport = "s3result.testing.fsbroker:Transport"``.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

__all__ = ["Channel", "Transport", "folder_options"]


class Channel(filesystem.Channel):
    """Writes each message to a hidden temporary file, then renames it into the queue."""

    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's own bases disagree
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: Channel._get only takes names whose part after the first dot is
        # '<queue>.msg', so it never picks up the half-written file.
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        with open(partial, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.replace(partial, final)


class Transport(filesystem.Transport):
    """The filesystem transport with ``Channel`` above."""

    Channel = Channel


def folder_options(folder: str, *, polling_interval: float = 0.05) -> dict[str, Any]:
    """``broker_transport_options`` keeping every file of the broker under ``folder``.

    Fanout tables (worker control, pidbox) included: kombu's default for them is ``control``
    in the current directory.
    """
    return {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "processed_folder": os.path.join(folder, "processed"),
        "control_folder": os.path.join(folder, "control"),
        "store_processed": False,
        "polling_interval": polling_interval,
    }
