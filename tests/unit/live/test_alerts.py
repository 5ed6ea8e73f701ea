"""Alerts reach a real local HTTP receiver as JSON; a dead webhook never raises."""

from live.alerts import Alerts
from tests.http_receiver import start_receiver


def test_an_alert_is_posted_as_json_and_logged(caplog):
    server, got = start_receiver()
    try:
        sunk = []
        alerts = Alerts("s1", f"http://127.0.0.1:{server.server_port}/hook/secret-token",
                        sinks=[sunk.append])
        alerts.send("kill_switch", "drawdown 0.21 breached", rule="max_drawdown")
    finally:
        server.shutdown()
    (ctype, body), = got
    assert ctype == "application/json"
    assert body["session"] == "s1" and body["rule"] == "max_drawdown"
    assert sunk[0]["kind"] == "kill_switch"
    assert "ALERT kill_switch" in caplog.text


def test_a_dead_webhook_is_logged_without_its_token_and_does_not_raise(caplog):
    server, _ = start_receiver()
    port = server.server_port
    server.shutdown()
    server.server_close()
    alerts = Alerts("s1", f"http://127.0.0.1:{port}/hook/secret-token", timeout_s=1.0)
    alerts.send("stale_data", "no bar for 3 bar lengths")
    assert "webhook" in caplog.text and "secret-token" not in caplog.text
