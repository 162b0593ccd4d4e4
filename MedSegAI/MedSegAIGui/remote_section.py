"""The panel's "Run on: this computer / server" section.

The choice, the server's address, token and CA bundle live in the application's settings
(QSettings), never in the scene, so a saved scene cannot leak a token. What is chosen applies to
Apply and to the interactive tools (the Segment Editor effect), through ``logic.remote``. "Test
connection" asks the server in a thread, so a dead or slow server never freezes the panel.
"""
from __future__ import annotations

import threading
from typing import Callable, List, Optional

import qt

from MedSegAILib.remote_job import RemoteSettings

RUN_ON = (("This computer", "local"), ("Server", "server"))


def settings():
    return qt.QSettings()


class RemoteSection:
    POLL_MS = 100

    def __init__(self, ui, logic, log: Callable[[str], None],
                 on_change: Optional[Callable[[Optional[RemoteSettings]], None]] = None):
        self.ui = ui
        self.logic = logic
        self.log = log
        self.on_change = on_change  # the interactive effect's Logic follows the panel's choice
        self._probe: Optional[dict] = None
        self.problem: Optional[str] = None  # why "Server" is chosen but cannot be used, for Apply to say
        for label, value in RUN_ON:
            ui.runOnSelector.addItem(label, value)
        on_server, stored = RemoteSettings.stored(settings())
        ui.runOnSelector.setCurrentIndex(ui.runOnSelector.findData("server" if on_server else "local"))
        ui.serverUrlLineEdit.text = stored.url
        ui.serverTokenLineEdit.text = stored.token or ""
        ui.serverCABundleLineEdit.text = stored.ca_bundle or ""
        self.timer = qt.QTimer()
        self.timer.setInterval(self.POLL_MS)
        self.timer.connect("timeout()", self._poll_probe)
        ui.runOnSelector.connect("currentIndexChanged(int)", self.on_changed)
        for edit in (ui.serverUrlLineEdit, ui.serverTokenLineEdit, ui.serverCABundleLineEdit):
            edit.connect("editingFinished()", self.on_changed)
        ui.testConnectionButton.connect("clicked()", self.test_connection)
        self.on_changed()

    @property
    def input_widgets(self) -> List:
        ui = self.ui
        return [ui.runOnSelector, ui.serverUrlLineEdit, ui.serverTokenLineEdit, ui.serverCABundleLineEdit]

    def entered(self) -> RemoteSettings:
        ui = self.ui
        return RemoteSettings(ui.serverUrlLineEdit.text.strip(), ui.serverTokenLineEdit.text.strip() or None,
                              ui.serverCABundleLineEdit.text.strip() or None)

    @property
    def on_server(self) -> bool:
        return self.ui.runOnSelector.currentData == "server"

    def on_changed(self, *_) -> None:
        """Store what is entered and hand it to the Logic; a server without a usable address is said
        at once, Apply refuses until it is fixed, and prompts run on this computer meanwhile."""
        remote = self.entered()
        remote.save(settings(), self.on_server)
        for w in (self.ui.serverUrlLineEdit, self.ui.serverTokenLineEdit, self.ui.serverCABundleLineEdit,
                  self.ui.testConnectionButton):
            w.enabled = self.on_server
        chosen, self.problem = None, None
        if self.on_server:
            try:
                chosen = remote.checked()
                self.ui.serverStatusLabel.text = f"Apply and the interactive tools run on {remote.url}."
            except Exception as e:  # noqa: BLE001 - the line says what to fix
                self.problem = str(e)
                self.ui.serverStatusLabel.text = f"{e} Apply waits until it is fixed; prompts run on this computer."
        else:
            self.ui.serverStatusLabel.text = "Runs on this computer."
        self.logic.remote = chosen
        if self.on_change is not None:
            self.on_change(chosen)

    # -- test connection ----------------------------------------------------------------------------
    def test_connection(self) -> None:
        if self._probe is not None:
            return
        try:
            remote = self.entered().checked()
        except Exception as e:  # noqa: BLE001
            self.ui.serverStatusLabel.text = str(e)
            return
        probe = self._probe = {"remote": remote, "answer": None}
        self.ui.testConnectionButton.enabled = False
        self.ui.serverStatusLabel.text = f"Asking {remote.url}..."
        threading.Thread(target=self._ask, args=(probe,), name="medsegai-server-probe", daemon=True).start()
        self.timer.start()

    @staticmethod
    def _ask(probe: dict) -> None:
        from medsegai.remote.client import RemoteClient

        remote = probe["remote"]
        try:
            info = RemoteClient(remote.url, remote.token, ca_bundle=remote.ca_bundle).check()
            models = ", ".join(m.get("id", "?") for m in info.get("models", [])) or "none"
            devices = ", ".join(str(d.get("name") or d.get("device", "?")) for d in info.get("devices", [])) or "?"
            probe["answer"] = (True, f"Connected: MedSegAI {info.get('version')} server (protocol "
                                     f"{info.get('protocol')}); models: {models}; devices: {devices}.")
        except Exception as e:  # noqa: BLE001 - a dead server, a wrong token, a protocol mismatch: its line
            probe["answer"] = (False, str(e).splitlines()[0] if str(e) else type(e).__name__)

    def _poll_probe(self) -> None:
        probe = self._probe
        if probe is None or probe["answer"] is None:
            return
        self.timer.stop()
        self._probe = None
        ok, text = probe["answer"]
        self.ui.serverStatusLabel.text = text
        self.ui.testConnectionButton.enabled = self.on_server
        self.log(text)

    def cleanup(self) -> None:
        self.timer.stop()
