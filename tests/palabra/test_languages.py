import pytest

from bot.palabra import languages
from bot.palabra.errors import InvalidTaskError


def test_lists_are_the_union_of_current_older_and_hidden_codes():
    assert {"auto", "en", "yue", "fil", "ba", "eo", "ia"} <= languages.SOURCE_LANGUAGES
    assert {"en-us", "zh-hans", "es-la", "zh", "en-au", "en-ca", "az"} <= languages.TARGET_LANGUAGES
    assert "auto" not in languages.TARGET_LANGUAGES
    assert len(languages.SOURCE_LANGUAGES) == 57 + 1 + 3
    assert len(languages.TARGET_LANGUAGES) == 63 + 3


@pytest.mark.parametrize("code", ["en", "auto", "EN", " uk ", "yue"])
def test_known_sources_give_no_warning(code):
    assert languages.check_source(code) is None


@pytest.mark.parametrize("code", ["en-us", "pt-BR", "zh_hans", "es-la"])
def test_known_targets_give_no_warning(code):
    assert languages.check_target(code) is None


def test_unknown_but_wellformed_codes_only_warn():
    warning = languages.check_source("xx")
    assert warning and "'xx'" in warning and "anyway" in warning
    assert "tlh-latn" in languages.check_target("tlh-Latn")


@pytest.mark.parametrize("code", ["", "  ", "english", "e", "en us", "12", "en--us", "🇬🇧"])
def test_malformed_codes_raise(code):
    with pytest.raises(InvalidTaskError):
        languages.check_source(code)
    with pytest.raises(InvalidTaskError):
        languages.check_target(code)


def test_auto_is_not_a_target():
    with pytest.raises(InvalidTaskError, match="only valid as a source"):
        languages.check_target("auto")


def test_source_target_mappings():
    assert languages.to_target("en") == "en-us"
    assert languages.to_target("zh") == "zh-hans"
    assert languages.to_target("fr") == "fr"
    assert languages.to_source("en-gb") == "en"
    assert languages.to_source("zh-hant") == "zh"
    assert languages.to_source("uk") == "uk"


def test_check_targets_normalises_dedupes_and_warns_once_per_unknown_code():
    codes, warnings = languages.check_targets(["ES", "fr", "es", "xx-yy", "pt_BR"])
    assert codes == ["es", "fr", "xx-yy", "pt-br"]
    assert len(warnings) == 1 and "xx-yy" in warnings[0]
    with pytest.raises(InvalidTaskError):
        languages.check_targets(["es", "not a code!"])
