import soar


def test_public_surface_is_declared() -> None:
    assert set(soar.__all__) == {"ConfigError", "SoarError", "SourceLocation", "__version__"}
    for name in soar.__all__:
        assert hasattr(soar, name)


def test_errors_carry_their_source() -> None:
    err = soar.SoarError("unknown modifier 'contians'", soar.SourceLocation("rules/x.yml", 12, 5))
    assert str(err) == "rules/x.yml:12:5: unknown modifier 'contians'"
