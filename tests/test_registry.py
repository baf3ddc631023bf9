import pytest

from ssae_utils.registry import Registry


def test_registry_registers_names_and_refuses_duplicates():
    reg: Registry[object] = Registry("widget")

    @reg.register("b")
    class B: ...

    @reg.register("a")
    class A: ...

    assert reg.names() == ["a", "b"] and "a" in reg and A.name == "a"
    assert reg.get("b") is B
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(type("Other", (), {}))
    with pytest.raises(KeyError, match=r"unknown widget 'c'; widgets: \['a', 'b'\]"):
        reg.get("c")
