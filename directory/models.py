"""Directory tables. Only directory/ reads or writes them.

Holdings and relationships are declarations, never changed once written: a reference is named by its owner,
subject, category or capacity and start (`valid_from`); declaring it again with another end appends a row, and
the newest row of a reference is what it is (directory/references.py). So the directory as it stood at any
moment can be read back (`declared_at`), and who said so (`declared_by`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.store import Base


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    adapter_url: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="active")


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")


class PrincipalKey(Base):
    """A public key of an agency or an operator, with its validity and status: an Ed25519 key that signs (`use`
    `sign`), or an agency's X25519 key that sealed answers are encrypted to (`seal`)."""

    __tablename__ = "principal_keys"

    key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    principal_kind: Mapped[str] = mapped_column(String(16))
    principal_id: Mapped[str] = mapped_column(String(63), index=True)
    public_key_pem: Mapped[str] = mapped_column(String(400))
    use: Mapped[str] = mapped_column(String(8), default="sign", server_default="sign")  # sign, seal
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, revoked
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revocation_reason: Mapped[str | None] = mapped_column(String(1000))


class DirectoryVersion(Base):
    """One row counting the writes made to the directory. Every hub process compares it with the version its
    cached reads were made at before it trusts them (by default on every request: `cache_follow_s` 0), so a
    revocation or a suspension committed by any process counts on the very next request everywhere."""

    __tablename__ = "directory_version"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int]


class Category(Base):
    __tablename__ = "categories"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    # A sealed category's answers are encrypted by the holder to the requester: the hub never reads them.
    sealed: Mapped[bool] = mapped_column(default=False, server_default=false())


class CategoryChange(Base):
    """Every change of a category's sealing, never changed once written: the category's versions, who made each
    and why."""

    __tablename__ = "category_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(ForeignKey("categories.name"), index=True)
    version: Mapped[int]
    sealed: Mapped[bool]
    changed_at: Mapped[datetime]
    changed_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(1000))


class Purpose(Base):
    __tablename__ = "purposes"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    # Confidential purposes (e.g. fraud investigation) stay out of citizens' access logs until embargo_days
    # after each access; with no embargo_days they stay out.
    confidential: Mapped[bool] = mapped_column(default=False, server_default=false())
    embargo_days: Mapped[int | None]


class Capacity(Base):
    """A registered capacity in which an agency has a subject as a client: `beneficiary`, `employee`, `patient`."""

    __tablename__ = "capacities"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str] = mapped_column(String(500), default="")


class Holding(Base):
    """Agency `holder` holds `category` for `subject` during [valid_from, valid_until), as declared at
    `declared_at` by `declared_by`."""

    __tablename__ = "holdings"
    __table_args__ = (Index(None, "subject", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    holder: Mapped[str] = mapped_column(String(63))  # registered names, checked when declared (no foreign key)
    category: Mapped[str] = mapped_column(String(63))
    subject: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    declared_at: Mapped[datetime]
    declared_by: Mapped[str] = mapped_column(String(128))


class Relationship(Base):
    """Agency `agency` has `subject` as a client in `capacity` during [valid_from, valid_until), as declared at
    `declared_at` by `declared_by`."""

    __tablename__ = "relationships"
    __table_args__ = (Index(None, "subject", "agency"),)  # every read names the subject

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    agency: Mapped[str] = mapped_column(String(63))  # a registered agency, checked when declared (no foreign key)
    subject: Mapped[str] = mapped_column(String(64))
    capacity: Mapped[str] = mapped_column(String(63))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    declared_at: Mapped[datetime]
    declared_by: Mapped[str] = mapped_column(String(128))


class DirectoryImport(Base):
    """A bulk import of one agency's references (an NDJSON file), applied a batch at a time: what it has read
    (`position`, the byte offset of its next line; `lines`), applied and rejected so far, committed after
    each batch, so that a restart resumes it where it stood or reports exactly that."""

    __tablename__ = "directory_imports"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agency: Mapped[str] = mapped_column(String(63), index=True)
    declared_by: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # queued, running, done, interrupted
    body_digest: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    spool: Mapped[str] = mapped_column(String(1000))  # where the file is, for the process that accepted it
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    lines: Mapped[int] = mapped_column(BigInteger, default=0)
    applied: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]  # a running import whose process stops is taken up after this


class DirectoryImportRejection(Base):
    """A line of an import that was not applied, and why."""

    __tablename__ = "directory_import_rejections"

    import_id: Mapped[str] = mapped_column(ForeignKey("directory_imports.id"), primary_key=True)
    line: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    detail: Mapped[str] = mapped_column(String(500))
