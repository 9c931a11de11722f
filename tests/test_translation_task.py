"""The built-in English->German translation task and `fastformer make-data`."""
import datetime
import os
import re

import pytest

from fastformer.__main__ import main
from fastformer.data import translation_pairs, translation_splits
from fastformer.data.translation_task import (
    MONTHS, WEEKDAYS, english_number, english_ordinal, english_ordinal_digits, german_number, german_ordinal,
    german_year)


def test_number_words():
    cases = {0: ("null", "zero"), 1: ("eins", "one"), 16: ("sechzehn", "sixteen"), 17: ("siebzehn", "seventeen"),
             21: ("einundzwanzig", "twenty-one"), 30: ("dreißig", "thirty"), 87: ("siebenundachtzig", "eighty-seven"),
             101: ("einhunderteins", "one hundred and one"), 700: ("siebenhundert", "seven hundred"),
             1001: ("eintausendeins", "one thousand and one"),
             2345: ("zweitausenddreihundertfünfundvierzig", "two thousand three hundred and forty-five"),
             21000: ("einundzwanzigtausend", "twenty-one thousand"),
             101101: ("einhunderteintausendeinhunderteins", "one hundred and one thousand one hundred and one")}
    for n, (de, en) in cases.items():
        assert (german_number(n), english_number(n)) == (de, en), n
    assert german_year(1987) == "neunzehnhundertsiebenundachtzig" and german_year(1900) == "neunzehnhundert"
    assert german_year(2024) == "zweitausendvierundzwanzig" and german_year(2001) == "zweitausendeins"
    assert [german_ordinal(n) for n in (1, 3, 7, 8, 12, 20, 31)] == [
        "erste", "dritte", "siebte", "achte", "zwölfte", "zwanzigste", "einunddreißigste"]
    assert german_ordinal(12, dative=True) == "zwölften"
    assert [english_ordinal(n) for n in (1, 2, 3, 12, 20, 22, 30, 31)] == [
        "first", "second", "third", "twelfth", "twentieth", "twenty-second", "thirtieth", "thirty-first"]
    with pytest.raises(ValueError, match="n must be in"):
        german_number(10 ** 6)


def test_same_seed_same_pairs_and_a_function_of_the_source():
    pairs = translation_pairs(3000, seed=5)
    assert pairs == translation_pairs(3000, seed=5) and pairs != translation_pairs(3000, seed=6)
    assert len({s for s, _ in pairs}) == 3000
    for source, target in pairs:
        assert source and target and source.strip() == source and target.strip() == target
        assert not re.search(r"[\t\n\r]", source + target)
    # The same English sentence always gets the same German one (seeds differ, renderings agree).
    rendering = dict(pairs)
    for source, target in translation_pairs(3000, seed=7):
        assert rendering.setdefault(source, target) == target


def test_splits_are_disjoint_and_exact():
    splits = translation_splits({"train": 2000, "valid": 100, "test": 100}, seed=1)
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [2000, 100, 100]
    sources = [{s for s, _ in pairs} for pairs in splits.values()]
    assert sum(map(len, sources)) == len(set.union(*sources)) == 2200
    with pytest.raises(ValueError, match="split 'valid' must be a non-negative integer"):
        translation_splits({"train": 5, "valid": -1})


_EN_WORD = {english_number(n): n for n in range(60)}
_PERIODS = {"in the morning": range(5, 12), "in the afternoon": range(12, 18), "in the evening": range(18, 22),
            "at night": list(range(22, 24)) + list(range(0, 5))}
_MINUTE = {"five": 5, "ten": 10, "a quarter": 15, "twenty": 20, "twenty-five": 25, "half": 30}


def _spoken_time(text):
    """An independent reading of the English time -> (hour, minute)."""
    if text in ("noon", "midnight"):
        return (12 if text == "noon" else 0), 0
    if m := re.fullmatch(r"(\d\d):(\d\d)", text):
        return int(m[1]), int(m[2])
    if m := re.fullmatch(r"(\d+):(\d\d) (am|pm)", text):
        return int(m[1]) % 12 + (12 if m[3] == "pm" else 0), int(m[2])
    m = re.fullmatch(r"(?:(.+) (past|to) )?(\S+)(?: o'clock)? (in the \w+|at night)", text)
    named, minute = _EN_WORD[m[3]] % 12, _MINUTE[m[1]] if m[1] else 0
    if m[2] == "to":
        named, minute = named - 1, 60 - minute
    hour = next(h for h in _PERIODS[m[4]] if h % 12 == named % 12)
    return hour, minute


def test_times_follow_the_german_24_hour_clock():
    checked = 0
    for source, target in translation_pairs(4000, seed=2):
        if source.startswith("at "):
            hour, minute = _spoken_time(source[3:])
            expected = ("ein" if hour == 1 else german_number(hour)) + " Uhr" + (
                f" {german_number(minute)}" if minute else "")
            assert target == f"um {expected}", source
            checked += 1
    assert checked > 100


def test_dates_name_the_right_weekday_and_case():
    ordinal = {english_ordinal(n): n for n in range(1, 32)}
    ordinal.update({english_ordinal_digits(n): n for n in range(1, 32)})
    months = {en: (i + 1, de) for i, (en, de) in enumerate(MONTHS)}
    checked = 0
    for source, target in translation_pairs(4000, seed=3):
        m = re.fullmatch(r"on (\w+), the ([\w-]+) of (\w+) (\d{4})", source)
        if not m:
            continue
        day, (month, de_month), year = ordinal[m[2]], months[m[3]], int(m[4])
        en_day, de_day = WEEKDAYS[datetime.date(year, month, day).weekday()]
        assert m[1] == en_day
        assert target == f"am {de_day}, dem {german_ordinal(day, dative=True)} {de_month} {german_year(year)}"
        checked += 1
    assert checked > 5


def test_make_data_command(tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["make-data", "translation", "--out", str(out), "--train", "300", "--valid", "40", "--test", "50",
            "--seed", "4"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    names = ["train.tsv", "valid.tsv", "test.tsv", "test.src", "test.ref"]
    assert sorted(os.listdir(out)) == sorted(names)  # no temporary files left behind
    for name in names:
        assert f"wrote {out / name}" in printed
    lines = {name: (out / name).read_text(encoding="utf-8").splitlines() for name in names}
    assert [len(lines[n]) for n in names] == [300, 40, 50, 50, 50]
    split = {n: [line.split("\t") for line in lines[n]] for n in names[:3]}
    assert all(len(fields) == 2 for pairs in split.values() for fields in pairs)
    assert lines["test.src"] == [s for s, _ in split["test.tsv"]]
    assert lines["test.ref"] == [t for _, t in split["test.tsv"]]
    sources = [{s for s, _ in pairs} for pairs in split.values()]
    assert len(set.union(*sources)) == 390
    expected = translation_splits({"train": 300, "valid": 40, "test": 50}, seed=4)
    assert [tuple(p) for p in split["train.tsv"]] == expected["train"]
    before = {n: (out / n).read_bytes() for n in names}
    assert main(argv) == 0 and before == {n: (out / n).read_bytes() for n in names}


def test_make_data_refuses_bad_arguments(tmp_path, capsys):
    for argv in (["make-data", "translation", "--out", str(tmp_path), "--train", "0"],
                 ["make-data", "nonsense", "--out", str(tmp_path)],
                 ["make-data", "translation"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "--train: expected a positive integer" in capsys.readouterr().err
