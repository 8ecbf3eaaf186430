"""The key that encrypts secret run arguments, and the run arguments it seals and opens.

The key is a Fernet key (AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package) in a file
under the data directory, created with mode 0600 the first time a secret is sealed. Every process
that runs nodes of runs with secrets (each worker, on every machine) needs the same file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releaseflow.domain.errors import ReleaseflowError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_FILE_NAME = "secret.key"


def data_dir_box(data_dir: Path) -> SecretBox:
    """The key every process of one installation shares: ``secret.key`` in its data directory."""
    return SecretBox(data_dir / KEY_FILE_NAME)


class SecretKeyError(ReleaseflowError):
    """The secret key is missing, unreadable, or does not open what it should."""


class SecretBox:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._fernet: Fernet | None = None

    def seal(self, value: Any) -> str:
        """A value (any JSON) as an encrypted token."""
        return self._key(create=True).encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> Any:
        from cryptography.fernet import InvalidToken

        try:
            return json.loads(self._key(create=False).decrypt(token.encode()))
        except (InvalidToken, ValueError) as error:
            raise SecretKeyError(
                f"the secret key {self.key_file} does not open this secret (was the file replaced?)"
            ) from error

    def _key(self, *, create: bool) -> Fernet:
        # Imported when a secret is first used: commands that meet none never load it.
        from cryptography.fernet import Fernet

        if self._fernet is None:
            self._fernet = Fernet(self._read(create))
        return self._fernet

    def _read(self, create: bool) -> bytes:
        from cryptography.fernet import Fernet

        try:
            return self.key_file.read_bytes().strip()
        except FileNotFoundError:
            if not create:
                raise SecretKeyError(
                    f"no secret key at {self.key_file}: runs with secret arguments need the key file"
                    " their server created (copy it to every worker's data directory)"
                ) from None
        key = Fernet.generate_key()
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            # 0600 from the start: never readable by others, not even for a moment.
            descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return self.key_file.read_bytes().strip()
        with os.fdopen(descriptor, "wb") as file:
            file.write(key + b"\n")
        return key


def seal_arguments(
    arguments: Mapping[str, Any], secret_keys: Collection[str], box: SecretBox
) -> dict[str, Any]:
    """The arguments as stored: the secret ones encrypted."""
    return {key: box.seal(value) if key in secret_keys else value for key, value in arguments.items()}


def open_arguments(stored: Mapping[str, Any], secret_keys: Collection[str], box: SecretBox) -> dict[str, Any]:
    return {key: box.open(value) if key in secret_keys else value for key, value in stored.items()}
