"""`crossroads notifications backlog`: per recipient, the deliveries waiting, failing and dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from broker.cli.acting import on_hub
from broker.cli.main import main
from broker.hub import Hub
from broker.notifications.outbox import Notification

PUBLISHED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def change(notification: str, category: str) -> Notification:
    return Notification(notification, "population-register", "85073003328", category, "updated", None, PUBLISHED)


def test_the_backlog_per_recipient(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    store = ["--state-dir", str(tmp_path)]
    assert runner.invoke(main, ["db", "upgrade", *store]).exit_code == 0
    assert runner.invoke(main, ["notifications", "backlog", *store]).output == (
        "nothing waiting, failing or dead: every notification is delivered\n"
    )

    async def publish(hub: Hub) -> None:
        outbox, retry_at = hub.notifications.outbox, PUBLISHED + timedelta(minutes=5)
        for number, recipients in enumerate([["family-benefits", "tax-authority"], ["family-benefits"]]):
            await outbox.publish(change(f"n-{number}", "civil-status"), recipients)
        first, second, third = [d.id for n in ("n-0", "n-1") for d in await outbox.deliveries(n)]
        await outbox.retry(first, 1, retry_at, "503 from the adapter")
        await outbox.dead(second, 10, "connection refused")
        await outbox.delivered(third, 1, PUBLISHED)
        await outbox.publish(change("n-2", "income"), ["family-benefits"])

    on_hub((tmp_path, "", None), publish)
    shown = runner.invoke(main, ["notifications", "backlog", *store])
    assert shown.exit_code == 0, shown.output
    assert [line.split() for line in shown.output.splitlines()] == [
        ["recipient", "waiting", "failing", "dead", "oldest", "next", "attempt"],
        ["family-benefits", "1", "1", "0", "2026-12-01", "09:30", "2026-12-01", "09:30:00"],
        ["tax-authority", "0", "0", "1", "2026-12-01", "09:30", "-"],
    ]
