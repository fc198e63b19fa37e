"""Key files: private keys as PEM (PKCS#8), written readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.base.signing import SigningKey, generate_key, load_private_key, private_key_pem


def write_private_key(path: Path) -> Ed25519PrivateKey:
    """Create a new key at `path`, readable by its owner only; an existing file is never overwritten."""
    key = generate_key()
    write_new_key_file(path, private_key_pem(key))
    return key


def write_new_key_file(path: Path, pem: bytes) -> None:
    """Write a private key's PEM to a new file readable by its owner only, whatever the umask; an existing file is
    never overwritten (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)


def load_or_create(path: Path, key_id: str) -> SigningKey:
    if path.exists():
        return SigningKey(key_id, load_private_key(path.read_bytes()))
    return SigningKey(key_id, write_private_key(path))


def load_signing_key(path: Path, key_id: str) -> SigningKey:
    try:
        return SigningKey(key_id, load_private_key(path.read_bytes()))
    except FileNotFoundError as error:
        former = path.parent / "keys" / path.name  # where a demo before issue 19 kept it
        if former.exists():
            raise SystemExit(f"no hub key at {path}: move {former} there (or run the demo on it once)") from error
        raise SystemExit(f"no hub key at {path}: create one with `crossroads keygen {path}`") from error
