from demo.clamp import clamp


def test_clamp_inside_range() -> None:
    assert clamp(3, 1, 5) == 3


def test_clamp_edges() -> None:
    assert clamp(0, 1, 5) == 1
    assert clamp(9, 1, 5) == 5
    assert clamp(5, 1, 5) == 5
