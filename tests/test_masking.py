from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from pipeline.masking import (
    MASK,
    MIN_SECRET_LENGTH,
    Masker,
    MaskingFilter,
    install,
    is_sensitive_name,
)


@pytest.mark.parametrize(
    "name",
    ["API_TOKEN", "token", "DB_PASSWORD", "client_secret", "SSH_PRIVATE_KEY", "keyring"],
)
def test_is_sensitive_name_matches_words_in_any_case(name: str) -> None:
    assert is_sensitive_name(name)


@pytest.mark.parametrize("name", ["IMAGE_TAG", "CI_COMMIT_SHA", "USER", ""])
def test_is_sensitive_name_ignores_other_names(name: str) -> None:
    assert not is_sensitive_name(name)


def test_masker_replaces_every_occurrence() -> None:
    masker = Masker(["hunter22"])

    assert masker.mask("a hunter22 b hunter22") == f"a {MASK} b {MASK}"


def test_masker_without_secrets_returns_same_object() -> None:
    text = "nothing to hide"

    assert Masker().mask(text) is text


def test_masker_without_match_returns_same_object() -> None:
    text = "nothing to hide"

    assert Masker(["hunter22"]).mask(text) is text


def test_masker_call_is_mask() -> None:
    masker = Masker(["hunter22"])

    assert masker("x hunter22") == f"x {MASK}"


def test_masker_masks_longest_first() -> None:
    masker = Masker(["abc", "abcdef"])

    assert masker.mask("[abcdef] [abc]") == f"[{MASK}] [{MASK}]"


def test_masker_merges_overlapping_secrets() -> None:
    masker = Masker(["xabc", "abcdef"])

    assert masker.mask("1 xabcdef 2") == f"1 {MASK} 2"


def test_masker_keeps_adjacent_secrets_apart() -> None:
    masker = Masker(["abc", "def"])

    assert masker.mask("abcdef") == MASK + MASK


def test_masker_masks_url_encoded_form() -> None:
    secret = "p@ss/w rd"
    masker = Masker([secret])
    url = "https://hooks.example/?token=" + quote(secret, safe="")

    assert masker.mask(url) == f"https://hooks.example/?token={MASK}"


def test_masker_masks_json_escaped_form() -> None:
    secret = 'pa"ss\\word'
    masker = Masker([secret])
    body = json.dumps({"password": secret})

    assert masker.mask(body) == f'{{"password": "{MASK}"}}'


def test_masker_masks_ascii_json_form_of_non_ascii() -> None:
    secret = "clé-secrète"
    masker = Masker([secret])

    assert masker.mask(json.dumps(secret)) == f'"{MASK}"'


def test_masker_masks_each_line_of_multiline_secret() -> None:
    masker = Masker(["-----BEGIN KEY-----\nAAAAB3Nza\n-----END KEY-----\n"])

    assert masker.mask("line: AAAAB3Nza") == f"line: {MASK}"


def test_masker_masks_secret_without_trailing_newline() -> None:
    masker = Masker(["tok-123\n"])

    assert masker.mask("token is tok-123.") == f"token is {MASK}."


def test_masker_ignores_short_values() -> None:
    masker = Masker(["", "a", "ab"])

    assert masker.mask("a ab abc") == "a ab abc"
    assert masker.secrets == frozenset()


def test_masker_masks_value_of_minimum_length() -> None:
    secret = "x" * MIN_SECRET_LENGTH
    masker = Masker([secret])

    assert masker.mask(f"<{secret}>") == f"<{MASK}>"


def test_masker_ignores_short_lines_of_long_secret() -> None:
    masker = Masker(["ab\nlong-enough"])

    assert masker.mask("ab long-enough") == f"ab {MASK}"


def test_masker_add_registers_after_creation() -> None:
    masker = Masker()
    masker.add("hunter22")

    assert masker.mask("hunter22") == MASK


def test_masker_secrets_returns_registered_values() -> None:
    masker = Masker(["hunter22"])
    masker.add("line1-abc\nline2-abc")

    assert masker.secrets == frozenset({"hunter22", "line1-abc\nline2-abc"})


def test_masker_secrets_is_a_copy() -> None:
    masker = Masker(["hunter22"])
    before = masker.secrets
    masker.add("other-secret")

    assert before == frozenset({"hunter22"})


def test_masker_escapes_regex_characters() -> None:
    masker = Masker(["a.b*c"])

    assert masker.mask("aXbbc a.b*c") == f"aXbbc {MASK}"


def test_masker_mask_data_masks_nested_strings() -> None:
    masker = Masker(["hunter22"])
    data = {
        "url": "https://x/?t=hunter22",
        "items": ["hunter22", 3, None, True],
        "t": ("hunter22",),
    }

    assert masker.mask_data(data) == {
        "url": f"https://x/?t={MASK}",
        "items": [MASK, 3, None, True],
        "t": (MASK,),
    }


def test_masker_mask_data_masks_keys() -> None:
    masker = Masker(["hunter22"])

    assert masker.mask_data({"hunter22": 1}) == {MASK: 1}


def test_masker_mask_data_leaves_input_unchanged() -> None:
    masker = Masker(["hunter22"])
    data = {"items": ["hunter22"]}
    masker.mask_data(data)

    assert data == {"items": ["hunter22"]}


def test_masker_add_from_threads() -> None:
    masker = Masker()
    secrets = [f"secret-{index:03d}" for index in range(200)]

    def add_all(part: list[str]) -> None:
        for secret in part:
            masker.add(secret)

    threads = [threading.Thread(target=add_all, args=(secrets[start::4],)) for start in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert masker.secrets == frozenset(secrets)
    assert masker.mask(" ".join(secrets)) == " ".join([MASK] * len(secrets))


def test_masker_large_text() -> None:
    secrets = [f"tok-{index:04d}-{'z' * (index % 30)}" for index in range(50)]
    masker = Masker(secrets)
    line = "INFO deploying web-1 version 1.4.2 to https://shop.example/healthz ok\n"
    text = line * 50_000 + secrets[-1] + "\n" + line * 50_000

    masked = masker.mask(text)

    assert masked == line * 50_000 + MASK + "\n" + line * 50_000


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    # The logger keeps propagating: pytest attaches its own capture handlers to every
    # non-propagating logger, and install() would then add filters to those too.
    test_logger = logging.getLogger(f"shipline.test.{request.node.name}")
    test_logger.setLevel(logging.DEBUG)
    yield test_logger
    test_logger.handlers.clear()
    test_logger.filters.clear()


def _stream_handler(logger: logging.Logger) -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    return stream


def test_masking_filter_masks_arguments(logger: logging.Logger) -> None:
    stream = _stream_handler(logger)
    install(logger, Masker(["hunter22"]))

    logger.warning("calling %s with %s", "https://x/?t=hunter22", {"password": "hunter22"})

    assert (
        stream.getvalue() == f"WARNING calling https://x/?t={MASK} with {{'password': '{MASK}'}}\n"
    )


def test_masking_filter_masks_message(logger: logging.Logger) -> None:
    stream = _stream_handler(logger)
    install(logger, Masker(["hunter22"]))

    logger.info("token hunter22")

    assert stream.getvalue() == f"INFO token {MASK}\n"


def test_masking_filter_sees_secrets_added_later(logger: logging.Logger) -> None:
    stream = _stream_handler(logger)
    masker = Masker()
    install(logger, masker)
    masker.add("hunter22")

    logger.info("token %s", "hunter22")

    assert stream.getvalue() == f"INFO token {MASK}\n"


def test_masking_filter_masks_traceback(logger: logging.Logger) -> None:
    stream = _stream_handler(logger)
    install(logger, Masker(["hunter22"]))

    try:
        raise ValueError("bad token hunter22")
    except ValueError:
        logger.exception("request failed")

    output = stream.getvalue()
    assert output.startswith("ERROR request failed\nTraceback (most recent call last):\n")
    assert output.endswith(f"ValueError: bad token {MASK}\n")
    assert "hunter22" not in output


def test_masking_filter_masks_stack_info(logger: logging.Logger) -> None:
    stream = _stream_handler(logger)
    install(logger, Masker(["stack_probe_function"]))

    def stack_probe_function() -> None:
        logger.info("inside", stack_info=True)

    stack_probe_function()

    output = stream.getvalue()
    assert output.startswith("INFO inside\nStack (most recent call last):\n")
    assert f"in {MASK}\n" in output
    assert "stack_probe_function" not in output


def test_masking_filter_handles_mismatched_arguments(logger: logging.Logger) -> None:
    stream = _stream_handler(logger)
    install(logger, Masker(["hunter22"]))

    logger.info("no placeholder", "hunter22")  # noqa: PLE1205 - the mismatch is the case under test

    assert stream.getvalue() == (
        f"INFO no placeholder (logging arguments did not match the message: ('{MASK}',))\n"
    )


def test_install_covers_child_logger_records(logger: logging.Logger) -> None:
    stream = _stream_handler(logger)
    install(logger, Masker(["hunter22"]))
    child = logging.getLogger(f"{logger.name}.child")

    child.warning("token %s", "hunter22")

    assert stream.getvalue() == f"WARNING token {MASK}\n"


def test_install_returns_filter_on_logger_and_handlers(logger: logging.Logger) -> None:
    _stream_handler(logger)
    masking_filter = install(logger, Masker())

    assert isinstance(masking_filter, MaskingFilter)
    assert logger.filters == [masking_filter]
    assert logger.handlers[0].filters == [masking_filter]


def test_masking_filter_on_handler_only(logger: logging.Logger) -> None:
    stream = _stream_handler(logger)
    logger.handlers[0].addFilter(MaskingFilter(Masker(["hunter22"])))

    logger.error("%s", "hunter22")

    assert stream.getvalue() == f"ERROR {MASK}\n"


def test_mask_each_word_of_a_value_with_spaces():
    masker = Masker(["pw:with space"])
    assert masker.mask("args: ['pw:with', 'space']") == "args: ['***', '***']"
