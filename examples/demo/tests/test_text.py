from demo.text import clamp, is_palindrome, word_count


def test_clamp_inside_range() -> None:
    assert clamp(3, 1, 5) == 3


def test_clamp_edges() -> None:
    assert clamp(0, 1, 5) == 1
    assert clamp(9, 1, 5) == 5
    assert clamp(5, 1, 5) == 5


def test_is_palindrome() -> None:
    assert is_palindrome("racecar")
    assert is_palindrome("A man a plan a canal Panama")
    assert not is_palindrome("hello")


def test_word_count() -> None:
    assert word_count("a b a") == {"a": 2, "b": 1}
    assert word_count("Hello hello") == {"hello": 2}
    assert word_count("") == {}
