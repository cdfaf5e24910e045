"""Render docs/img/watch.svg, the README's screenshot of `mididuet watch`, from a real run.

A private JACK server, `mididuet run` in duet mode with the shipped model, a phrase played
into it, and the watch app (headless, through Textual's pilot) saving what it shows once
the answer has played. Run: ``.venv/bin/python docs/img/make_watch_screenshot.py``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # for tests.helpers

from mididuet.daemon.watch.app import WatchApp  # noqa: E402
from mididuet.daemon.watch.client import ControlClient  # noqa: E402
from tests.helpers.jack import DaemonProcess, JackServer, Monitor, Player, environment, poll  # noqa: E402

OUT = Path(__file__).with_name("watch.svg")


async def shoot(path: Path, player: Player, monitor: Monitor) -> None:
    app = WatchApp(path, ControlClient(path))
    async with app.run_test(size=(92, 24)) as pilot:
        await pilot.pause(1.0)
        for notes in ([60, 64, 67], [62, 65, 69, 72], [67, 64]):
            await asyncio.to_thread(player.play, notes, 0.25, 0.2, 70 + 10 * len(notes))
        await asyncio.to_thread(poll, lambda: len(monitor.note_ons()) >= 6, 10)
        await pilot.pause(2.0)
        app.save_screenshot(OUT.name, str(OUT.parent))


def main() -> int:
    server = JackServer(period=256)
    server.start()
    try:
        with environment(server.env), tempfile.TemporaryDirectory() as tmp:
            control = Path(tmp) / "control.sock"
            player, monitor = Player("keyboard"), Monitor("synth")
            daemon = DaemonProcess(["--api", "jack", "--in", player.name, "--out", monitor.name, "--control",
                                    str(control), "--phrase-gap", "400", "--seed", "3"], server.env)
            try:
                daemon.wait_ready(20)
                time.sleep(0.5)
                asyncio.run(shoot(control, player, monitor))
            finally:
                daemon.stop()
                player.close()
                monitor.close()
    finally:
        server.stop()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
