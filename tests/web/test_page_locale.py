"""The page language is set for the whole request, not only while the template renders."""


def test_page_requests_run_in_the_page_language_before_rendering():
    """Text a page handler translates itself (titles, error messages) follows ?lang=, the cookie and
    Accept-Language, as the renderer does — not only the template."""
    from hutong.web.page_locale import scope_locale

    def scope(query=b"", **headers):
        return {"type": "http", "path": "/portal", "query_string": query,
                "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}

    assert scope_locale(scope()) == "zh-CN"
    assert scope_locale(scope(b"lang=en")) == "en"
    assert scope_locale(scope(cookie="hutong_lang=en")) == "en"
    assert scope_locale(scope(accept_language="en-US,en;q=0.9")) == "en"
    assert scope_locale(scope(b"lang=zh-CN", cookie="hutong_lang=en")) == "zh-CN"
    assert scope_locale(scope(cookie="bad\x7f;;=")) in ("zh-CN", "en")  # a broken cookie header is no crash
