"""incidents.services and detection.services are packages now; to their callers they are still one
module: every public name is on the package, and a name replaced on the package (monkeypatch, a
spy) is replaced where the package's own modules call it (reliability_studio/packages.py)."""
import importlib
import inspect
import pkgutil

import pytest

PACKAGES = ["incidents.services", "detection.services"]


def _defined_here(module):
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        if getattr(value, "__module__", module.__name__) == module.__name__:
            yield name


@pytest.mark.parametrize("package_name", PACKAGES)
def test_every_public_name_of_every_module_is_on_the_package(package_name):
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package_name}.{info.name}")
        for name in _defined_here(module):
            if name.isupper() or callable(getattr(module, name)):
                assert getattr(package, name, None) is getattr(module, name), f"{package_name}.{name} ({info.name})"
                assert name in package.__all__


def test_the_package_keeps_the_modules_the_single_module_exposed():
    from detection import evaluation as detection_evaluation
    from detection import services as detection_services
    from incidents import events, hooks, selectors, tasks
    from incidents import services

    assert (services.events, services.hooks, services.selectors, services.tasks) == (events, hooks, selectors, tasks)
    assert detection_services.evaluation is detection_evaluation


def test_a_name_replaced_on_the_package_is_replaced_in_its_modules(monkeypatch):
    from detection import services
    from detection.services import alert_state, external, rule_evaluation

    real = services.on_alert_transition

    def fake(*args, **kwargs):
        return None

    def used():
        return {alert_state.on_alert_transition, external.on_alert_transition, rule_evaluation.on_alert_transition}

    monkeypatch.setattr(services, "on_alert_transition", fake)
    assert used() == {fake}
    monkeypatch.undo()
    assert used() == {real}


def test_a_replacement_reaches_the_package_callers_inside_it(monkeypatch):
    from incidents import services
    from incidents.services import deduplication, lifecycle

    monkeypatch.setattr(services, "append_timeline_event", lambda **kwargs: kwargs)
    assert lifecycle.append_timeline_event is deduplication.append_timeline_event is services.append_timeline_event
