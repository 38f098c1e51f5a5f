from demo.palindrome import is_palindrome


def test_is_palindrome() -> None:
    assert is_palindrome("racecar")
    assert is_palindrome("A man a plan a canal Panama")
    assert not is_palindrome("hello")
