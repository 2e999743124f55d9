"""soar.notify's public surface is its __all__; the modules behind it are free to move."""

import soar.notify


def test_public_surface_is_declared() -> None:
    assert {"notify_run_event", "notify_alert", "notify_text", "deliver", "deliver_all", "transport_for"} <= set(
        soar.notify.__all__
    )
    for name in soar.notify.__all__:
        assert hasattr(soar.notify, name), name
