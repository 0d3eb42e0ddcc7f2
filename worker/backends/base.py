"""The result backend interface: task id -> (state, encoded result document).

Backends store the bytes of `worker.protocol.encode_result` without decoding them,
plus the state, so that `wait` can tell a final result from STARTED or RETRY.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class ResultBackend(ABC):
    """Results by task id. Each process uses its own instance, made after fork."""

    url: str

    @abstractmethod
    def set(self, task_id: str, state: str, blob: bytes, ttl: float | None) -> None:
        """Store the latest state of a task, expiring `ttl` seconds later (None or <= 0: never)."""

    @abstractmethod
    def get(self, task_id: str) -> bytes | None:
        """The latest stored document, or None if there is none (PENDING)."""

    @abstractmethod
    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until the task has a final state (SUCCESS, FAILURE, REVOKED) and return its
        document; None if `timeout` seconds pass first. Push-based where the store allows."""

    @abstractmethod
    def forget(self, task_id: str) -> None:
        """Delete the stored result."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the object is not used afterwards."""
