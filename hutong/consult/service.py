"""The node's consult services: one ``Env`` per node (store, settings, event bus, notifier, triage)."""

from __future__ import annotations

from hutong.consult import sla
from hutong.consult.work import Env, FileNotifier, MemoryNotifier, Notifier

SERVICE = "consult"


def _notifier(spec: str) -> Notifier:
    """``log`` (default), ``memory`` or ``file:/path`` (JSON lines a gateway forwards as SMS or push)."""
    if spec == "memory":
        return MemoryNotifier()
    if spec.startswith("file:"):
        return FileNotifier(spec[5:])
    return Notifier()


def env_of(node) -> Env:
    """The node's Env (made on first use)."""
    env = node.services.get(SERVICE)
    if env is None:
        from hutong.federation.events import event_bus

        bus = event_bus(node)
        env = Env(node.store, node.settings, publish=bus.publish_sync,
                  notifier=_notifier(getattr(node.settings, "consult_notifier", "log")))
        try:
            from hutong.triage.routes import service as triage_service

            env.triager = triage_service(node)
        except Exception:  # noqa: BLE001 - triage absent: ask_question loads the model itself
            pass
        node.services[SERVICE] = env
    return env


def startup(node) -> None:
    """Make the Env and start the escalation loop when the node runs background workers."""
    env = env_of(node)
    seconds = int(getattr(node.settings, "consult_escalation_seconds", 30))
    if node.settings.workers and seconds > 0:
        loop = sla.EscalationLoop(env, seconds)
        loop.start()
        node.services["consult.escalation"] = loop


def shutdown(node) -> None:
    loop = node.services.pop("consult.escalation", None)
    if loop is not None:
        loop.stop()
