from demo.words import word_count


def test_word_count() -> None:
    assert word_count("a b a") == {"a": 2, "b": 1}
    assert word_count("Hello hello") == {"hello": 2}
    assert word_count("") == {}
