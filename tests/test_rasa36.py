"""revierlotse.rasa36 patches Rasa 3.6.21 only, checks every target first, and applies all or nothing."""

from __future__ import annotations

import sys
import types

import pytest

from revierlotse import rasa36
from revierlotse.rasa36 import core
from revierlotse.rasa36.core import Patch, PatchTargetError, RasaVersionError, Target, apply_patches, fingerprint


def every_target(patches):
    return [target for patch in patches for target in (*patch.replaces, *patch.relies_on)]


def snapshot(patches):
    """What every target of `patches` is now (identity), to prove nothing changed."""
    return {target.key: target.current() for target in every_target(patches)}


# --- a throwaway module standing in for Rasa ---------------------------------------------

def greet(name):
    return f"hello {name}"


def shout(text):
    return text.upper()


class Guarded:
    """Refuses to have `locked` changed (an assignment that fails half-way through)."""

    def locked(self):
        return "original"

    def __setattr__(self, name, value):
        if name == "locked":
            raise TypeError("locked stays")
        super().__setattr__(name, value)


@pytest.fixture
def fake_rasa(monkeypatch):
    module = types.ModuleType("fake_rasa_for_patches")
    module.greet, module.shout, module.guarded = greet, shout, Guarded()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def target(module, path, value):
    return Target(module.__name__, path, fingerprint(value))


def wrapping(key, make):
    """A builder that wraps the original under `key` with `make(original)`."""
    return lambda originals: {key: make(originals[key])}


def test_a_wrapping_patch_gets_the_original_and_replaces_it(fake_rasa):
    greet_target = target(fake_rasa, "greet", greet)
    patch = Patch("louder", False, (greet_target,), wrapping(greet_target.key, lambda f: lambda n: f(n) + "!"))
    applied = apply_patches([patch])
    assert fake_rasa.greet("Duisburg") == "hello Duisburg!"
    assert applied.originals[greet_target.key] is greet
    applied.undo()
    assert fake_rasa.greet is greet


def test_a_changed_target_stops_every_patch_before_anything_changes(fake_rasa):
    def other_greet(name):
        return f"moin {name}"

    greet_target = target(fake_rasa, "greet", greet)
    shout_target = target(fake_rasa, "shout", shout)
    fake_rasa.greet = other_greet  # "a new Rasa version": same name, other code
    patches = [Patch("first", False, (shout_target,), lambda o: {shout_target.key: str.lower}),
               Patch("second", False, (greet_target,), lambda o: {greet_target.key: str.title})]
    with pytest.raises(PatchTargetError) as raised:
        apply_patches(patches)
    message = str(raised.value)
    assert "second" in message and "fake_rasa_for_patches:greet" in message
    assert "expected greet sha256:" in message and "other_greet sha256:" in message.split("found")[1]
    assert fake_rasa.shout is shout and fake_rasa.greet is other_greet  # the first one was not applied either


def test_a_patch_that_assigns_without_reading_still_needs_its_target_to_exist(fake_rasa):
    missing = Target(fake_rasa.__name__, "gone", "gone sha256:0123456789abcdef")
    shout_target = target(fake_rasa, "shout", shout)
    patches = [Patch("replace_gone", True, (missing,), lambda o: {missing.key: lambda: None}),
               Patch("replace_shout", True, (shout_target,), lambda o: {shout_target.key: str.lower})]
    with pytest.raises(PatchTargetError, match="fake_rasa_for_patches:gone: not found"):
        apply_patches(patches)
    assert not hasattr(fake_rasa, "gone") and fake_rasa.shout is shout


def test_a_missing_relied_upon_target_stops_the_patch_too(fake_rasa):
    shout_target = target(fake_rasa, "shout", shout)
    helper = Target(fake_rasa.__name__, "helper_it_calls", "helper_it_calls sha256:0123456789abcdef")
    patch = Patch("needs_helper", True, (shout_target,), lambda o: {shout_target.key: str.lower}, relies_on=(helper,))
    with pytest.raises(PatchTargetError, match="helper_it_calls: not found"):
        apply_patches([patch])
    assert fake_rasa.shout is shout


def test_a_failing_assignment_puts_back_everything_changed_before_it(fake_rasa):
    greet_target = target(fake_rasa, "greet", greet)
    shout_target = target(fake_rasa, "shout", shout)
    locked_target = target(fake_rasa, "guarded.locked", Guarded.locked)
    patches = [Patch("a", False, (greet_target, shout_target),
                     lambda o: {greet_target.key: str.title, shout_target.key: str.lower}),
               Patch("b", False, (locked_target,), lambda o: {locked_target.key: lambda: "patched"})]
    with pytest.raises(TypeError, match="locked stays"):
        apply_patches(patches)
    assert fake_rasa.greet is greet and fake_rasa.shout is shout
    assert fake_rasa.guarded.locked() == "original"


def test_a_failing_build_changes_nothing(fake_rasa):
    greet_target = target(fake_rasa, "greet", greet)
    shout_target = target(fake_rasa, "shout", shout)

    def broken(_originals):
        raise RuntimeError("cannot build")

    patches = [Patch("a", False, (greet_target,), lambda o: {greet_target.key: str.title}),
               Patch("b", False, (shout_target,), broken)]
    with pytest.raises(RuntimeError, match="cannot build"):
        apply_patches(patches)
    assert fake_rasa.greet is greet and fake_rasa.shout is shout


def test_a_static_method_target_is_put_back_as_a_static_method(fake_rasa):
    class Owner:
        @staticmethod
        def resolve(name):
            return name

    fake_rasa.Owner = Owner
    resolve_target = target(fake_rasa, "Owner.resolve", Owner.resolve)
    applied = apply_patches([Patch("s", True, (resolve_target,),
                                   lambda o: {resolve_target.key: staticmethod(lambda name: name * 2)})])
    assert Owner.resolve("a") == "aa" and Owner().resolve("b") == "bb"
    applied.undo()
    assert isinstance(Owner.__dict__["resolve"], staticmethod) and Owner().resolve("c") == "c"


# --- the real patch set -------------------------------------------------------------------

def test_another_rasa_version_is_refused_naming_the_version_found(monkeypatch):
    before = snapshot(rasa36.selected_patches(True))
    monkeypatch.setattr(rasa36, "_state", {})
    monkeypatch.setattr(core, "installed_rasa_version", lambda: "3.7.0")
    with pytest.raises(RasaVersionError) as raised:
        rasa36.apply(speedups=True)
    assert "Rasa 3.7.0 is installed" in str(raised.value) and "Rasa 3.6.21" in str(raised.value)
    assert snapshot(rasa36.selected_patches(True)) == before
    assert rasa36.applied() is None


def test_the_launcher_refuses_to_start_another_rasa_version(monkeypatch):
    from revierlotse import launch

    rasa36.selected_patches(True)  # the modules are imported
    monkeypatch.setattr(rasa36, "_state", {})
    monkeypatch.setattr(core, "installed_rasa_version", lambda: "3.6.20")
    with pytest.raises(SystemExit) as raised:
        launch.run_rasa(["--version"])
    assert str(raised.value).startswith("Refusing to start:") and "Rasa 3.6.20 is installed" in str(raised.value)


def test_a_target_that_is_not_rasas_stops_the_real_patch_set_before_any_change(monkeypatch):
    import rasa.server

    monkeypatch.setattr(rasa36, "_state", {})
    monkeypatch.setattr(rasa.server, "add_root_route", lambda app: None)
    before = snapshot(rasa36.selected_patches(True))
    with pytest.raises(PatchTargetError, match="hide_version_on_root_route: rasa.server:add_root_route"):
        rasa36.apply(speedups=True)
    assert snapshot(rasa36.selected_patches(True)) == before
    assert rasa36.applied() is None


def test_every_original_was_the_one_written_down_for_rasa_3_6_21():
    rasa36.apply()
    applied = rasa36.applied()
    if not rasa36._state["speedups"]:
        pytest.skip("this process runs with RASA_SPEEDUPS=false")
    patches = rasa36.selected_patches(True)
    replaced = [target for patch in patches for target in patch.replaces]
    assert len(replaced) == 18 and set(applied.originals) == {target.key for target in replaced}
    for target in replaced:
        assert fingerprint(applied.originals[target.key]) == target.expected
        assert target.current() is not applied.originals[target.key]  # really replaced
    relied_upon = [target for patch in patches for target in patch.relies_on]
    assert relied_upon and all(not target.problem() for target in relied_upon)


def test_speedups_off_keeps_only_the_behaviour_patches():
    names = {patch.name for patch in rasa36.selected_patches(False)}
    assert names == {"guard_every_turn", "apologise_when_actions_fail", "keep_log_level_after_model_load",
                     "hide_version_on_root_route", "refuse_turns_the_tracker_store_cannot_keep",
                     "database_tracker_store"}
    every = rasa36.selected_patches(True)
    assert {patch.name for patch in every if not patch.speedup} == names
    assert len([patch for patch in every if patch.speedup]) == 7


def test_the_setting_reads_true_unless_turned_off():
    from revierlotse.settings import load_settings

    assert load_settings({}).rasa_speedups is True
    assert load_settings({"RASA_SPEEDUPS": "false"}).rasa_speedups is False
    assert load_settings({"RASA_SPEEDUPS": "true"}).rasa_speedups is True


def test_one_process_cannot_switch_speedups_once_patched():
    rasa36.apply()
    speedups = rasa36._state["speedups"]
    rasa36.apply(speedups)  # again: nothing happens
    with pytest.raises(RuntimeError, match="already patched"):
        rasa36.apply(not speedups)


def test_the_tracker_store_refuses_another_rasa_version_too(monkeypatch):
    from revierlotse.rasa36 import tracker_store

    monkeypatch.setattr(core, "installed_rasa_version", lambda: "3.7.0")
    with pytest.raises(RasaVersionError, match="Rasa 3.7.0 is installed"):
        tracker_store._check_rasa()
