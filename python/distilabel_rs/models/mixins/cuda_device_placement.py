"""The CUDA device placement mixin of in-process LLMs (distilabel 1.5.3's fields and
behaviour).

Every LLM of a machine that uses the mixin records the CUDA devices it took in one JSON file
per host (the same file as distilabel's, under an exclusive file lock), so that LLMs loaded
by different pipeline workers pick different devices. With distilabel installed, the mixin
also derives from distilabel's, so that distilabel's pipelines recognise it and set the
LLM's identifier and number of GPUs (they check with `isinstance`).
"""

import json
import os
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Dict, Iterator, List, Literal, Tuple, Union

from pydantic import BaseModel, Field, PositiveInt, PrivateAttr

from distilabel_rs._interop import counterpart
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter

if TYPE_CHECKING:
    from logging import Logger

__all__ = ["CudaDevicePlacementMixin"]

# Shared with distilabel's mixin: LLMs of both libraries on one host see each other.
_CUDA_DEVICE_PLACEMENT_MIXIN_FILE = (
    Path(tempfile.gettempdir())
    / "distilabel"
    / "cuda_device_placement"
    / socket.gethostname()
    / "distilabel_cuda_device_placement_mixin.json"
)

_DISTILABEL_MIXIN = counterpart("models.mixins.cuda_device_placement", "CudaDevicePlacementMixin")
_BASES: Tuple[type, ...] = _DISTILABEL_MIXIN or (BaseModel,)


def _lock(file: IO[str]) -> None:
    """An exclusive lock on `file` (blocking), the kind distilabel's `portalocker` takes."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(file.fileno(), fcntl.LOCK_EX)


def _unlock(file: IO[str]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(file.fileno(), fcntl.LOCK_UN)


class CudaDevicePlacementMixin(*_BASES):  # type: ignore[misc]
    """Assigns CUDA devices to an LLM from its `cuda_devices` attribute and the device
    placement file of the host, trying not to give one device to several LLMs.

    Attributes:
        cuda_devices: a list with the ID of the CUDA devices to be used by the `LLM`. If set
            to "auto", the devices will be automatically assigned based on the device
            placement information of the host. If set to a list of devices, it will be
            checked if the devices are available to be used by the `LLM`. If not, a warning
            will be logged.
        disable_cuda_device_placement: Whether to disable the CUDA device placement logic
            or not. Defaults to `False`.
        _llm_identifier: the identifier of the `LLM` in the device placement file (set by
            the pipeline).
        _desired_num_gpus: how many devices "auto" assigns (set by the pipeline).
    """

    cuda_devices: RuntimeParameter[Union[List[int], Literal["auto"]]] = Field(
        default="auto", description="A list with the ID of the CUDA devices to be used."
    )
    disable_cuda_device_placement: RuntimeParameter[bool] = Field(
        default=False,
        description="Whether to disable the CUDA device placement logic or not.",
    )

    _llm_identifier: Union[str, None] = PrivateAttr(default=None)
    _desired_num_gpus: PositiveInt = PrivateAttr(default=1)
    _available_cuda_devices: List[int] = PrivateAttr(default_factory=list)
    _can_check_cuda_devices: bool = PrivateAttr(default=False)

    _logger: "Logger" = PrivateAttr(None)  # type: ignore[assignment]

    def load(self) -> None:
        """Assigns the CUDA devices (through `CUDA_VISIBLE_DEVICES`), unless disabled.

        Raises:
            ImportError: if `cuda_devices` is "auto" and `pynvml` is not installed.
        """
        if self.disable_cuda_device_placement:
            return
        try:
            import pynvml
        except ImportError as e:
            if self.cuda_devices == "auto":
                raise ImportError(
                    "The 'pynvml' library is not installed. It is required to automatically"
                    " assign CUDA devices to the `LLM`s. Please, install it and try again."
                ) from e
            if self.cuda_devices:
                self._logger.warning(
                    "The 'pynvml' library is not installed. It is recommended to install it"
                    " to check if the CUDA devices assigned to the LLM are available."
                )
        else:
            pynvml.nvmlInit()
            self._available_cuda_devices = list(range(pynvml.nvmlDeviceGetCount()))
            self._can_check_cuda_devices = True
        self._assign_cuda_devices()

    def unload(self) -> None:
        """Removes this LLM's devices from the host's device placement file."""
        if self.disable_cuda_device_placement:
            return
        with self._device_llm_placement_map() as device_map:
            if self._llm_identifier in device_map:
                self._logger.debug(
                    f"Removing '{self._llm_identifier}' from the CUDA device map file"
                    f" '{_CUDA_DEVICE_PLACEMENT_MIXIN_FILE}'."
                )
                del device_map[self._llm_identifier]

    @contextmanager
    def _device_llm_placement_map(self) -> Iterator[Dict[str, List[int]]]:
        """The host's device placement map, read and written back under an exclusive lock.

        Yields:
            The map (empty when the file is new or unreadable); changes made to it are saved.
        """
        path = _CUDA_DEVICE_PLACEMENT_MIXIN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        with open(path, "r+") as file:
            _lock(file)
            try:
                try:
                    content = json.load(file)
                except json.JSONDecodeError:
                    content = {}
                yield content
                file.seek(0)
                file.truncate()
                file.write(json.dumps(content))
                file.flush()
            finally:
                _unlock(file)

    def _assign_cuda_devices(self) -> None:
        """Picks devices for "auto" (the first ones no other LLM of the host uses), or
        warns about devices shared with other LLMs, records them in the placement file and
        sets `CUDA_VISIBLE_DEVICES`."""
        with self._device_llm_placement_map() as device_map:
            if self.cuda_devices == "auto":
                self.cuda_devices = []
                for _ in range(self._desired_num_gpus):
                    if (device := self._get_cuda_device(device_map)) is not None:
                        self.cuda_devices.append(device)
                        device_map[self._llm_identifier] = self.cuda_devices  # type: ignore[index]
                if len(self.cuda_devices) != self._desired_num_gpus:
                    self._logger.warning(
                        f"Could not assign the desired number of GPUs {self._desired_num_gpus}"
                        f" for LLM with identifier '{self._llm_identifier}'."
                    )
            else:
                self._check_cuda_devices(device_map)
            device_map[self._llm_identifier] = self.cuda_devices  # type: ignore[assignment, index]
        if self.cuda_devices == "auto":
            self.cuda_devices = []
        self._set_cuda_visible_devices()

    def _check_cuda_devices(self, device_map: Dict[str, List[int]]) -> None:
        """Warns for each of this LLM's devices that another LLM of the host uses.

        Args:
            device_map: the host's device placement map.
        """
        for device in self.cuda_devices:  # type: ignore[union-attr]
            for llm, devices in device_map.items():
                if device in devices:
                    self._logger.warning(
                        f"LLM with identifier '{llm}' is also going to use CUDA device "
                        f"'{device}'. This may lead to performance issues or running out"
                        " of memory depending on the device capabilities and the loaded"
                        " models."
                    )

    def _get_cuda_device(self, device_map: Dict[str, List[int]]) -> Union[int, None]:
        """The first available device that no LLM of the host uses, if any.

        Args:
            device_map: the host's device placement map.

        Returns:
            The device id, or `None`.
        """
        for device in self._available_cuda_devices:
            if all(device not in devices for devices in device_map.values()):
                return device
        return None

    def _set_cuda_visible_devices(self) -> None:
        """Sets `CUDA_VISIBLE_DEVICES` to this LLM's devices (if it has any).

        Raises:
            RuntimeError: if a device is not among the available ones.
        """
        if not self.cuda_devices:
            return
        if self._can_check_cuda_devices and not all(
            device in self._available_cuda_devices
            for device in self.cuda_devices  # type: ignore[union-attr]
        ):
            raise RuntimeError(
                f"Invalid CUDA devices for LLM '{self._llm_identifier}': {self.cuda_devices}."
                f" The available devices are: {self._available_cuda_devices}. Please, review"
                " the 'cuda_devices' attribute and try again."
            )
        self._logger.info(
            f"🎮 LLM '{self._llm_identifier}' is going to use the following CUDA devices:"
            f" {self.cuda_devices}."
        )
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(
            str(device)
            for device in self.cuda_devices  # type: ignore[union-attr]
        )
