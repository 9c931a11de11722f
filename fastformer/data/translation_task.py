"""A built-in translation task made by our own code: English dates, times,
quantities and prices, rendered in German words and conventions.

    "The concert starts on the 12th of March 2024 at a quarter past seven in the evening."
    -> "Das Konzert beginnt am zwölften März zweitausendvierundzwanzig um neunzehn Uhr fünfzehn."

German writes numbers as one compound word with the units before the tens
("siebenundachtzig" for 87), inflects ordinals by case ("der zwölfte",
"am zwölften"), picks "ein"/"eine" and "halber/halbe/halbes" by the noun's
gender, counts hours from 0 to 23 and puts a comma in decimals; English
gives the same thing as digits or as words, in several orders. Each English
sentence has exactly one German rendering, and everything is drawn from
`random.Random(seed)`, so the same seed gives the same pairs everywhere.
"""
import datetime
import random

# ----- numbers -------------------------------------------------------------------

_DE_UNITS = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn",
             "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn"]
_DE_TENS = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]
_EN_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
             "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _de_below_100(n):
    if n < 20:
        return _DE_UNITS[n]
    units, tens = n % 10, _DE_TENS[n // 10]
    if units == 0:
        return tens
    return ("ein" if units == 1 else _DE_UNITS[units]) + "und" + tens


def _de_below_1000(n):
    hundreds, rest = divmod(n, 100)
    head = _de_prefix(hundreds) + "hundert" if hundreds else ""
    return head + (_de_below_100(rest) if rest else "")


def _de_prefix(n):
    """A number as the first part of a compound: "ein" in "einhundert", "einundzwanzigtausend"."""
    word = _de_below_1000(n)
    return word[:-1] if word.endswith("eins") else word


def german_number(n):
    """0 <= n < 1_000_000 in German words: 2345 -> "zweitausenddreihundertfünfundvierzig"."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"n must be in [0, 1000000), got {n}")
    if n == 0:
        return "null"
    thousands, rest = divmod(n, 1000)
    head = _de_prefix(thousands) + "tausend" if thousands else ""
    return head + (_de_below_1000(rest) if rest else "")


def german_year(year):
    """1100-1999 as "neunzehnhundertsiebenundachtzig", other years as a cardinal."""
    if 1100 <= year <= 1999:
        rest = year % 100
        return _de_below_100(year // 100) + "hundert" + (_de_below_100(rest) if rest else "")
    return german_number(year)


def _en_below_100(n):
    if n < 20:
        return _EN_UNITS[n]
    units, tens = n % 10, _EN_TENS[n // 10]
    return tens if units == 0 else f"{tens}-{_EN_UNITS[units]}"


def english_number(n):
    """0 <= n < 1_000_000 in British English words: 2345 -> "two thousand three hundred and forty-five"."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"n must be in [0, 1000000), got {n}")
    if n < 100:
        return _en_below_100(n)
    thousands, rest = divmod(n, 1000)
    hundreds, tail = divmod(rest, 100)
    parts = [english_number(thousands) + " thousand"] if thousands else []
    if hundreds:
        parts.append(_EN_UNITS[hundreds] + " hundred")
    if tail:
        parts.append(("and " if parts else "") + _en_below_100(tail))
    return " ".join(parts)


def _digits(n):
    """12345 -> "12,345" (English thousands separator)."""
    return f"{n:,}"


# ----- ordinals and dates ----------------------------------------------------------

_EN_ORDINAL_WORDS = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth"}
_DE_ORDINAL_IRREGULAR = {1: "erste", 3: "dritte", 7: "siebte", 8: "achte"}
MONTHS = [("January", "Januar"), ("February", "Februar"), ("March", "März"), ("April", "April"),
          ("May", "Mai"), ("June", "Juni"), ("July", "Juli"), ("August", "August"),
          ("September", "September"), ("October", "Oktober"), ("November", "November"),
          ("December", "Dezember")]
WEEKDAYS = [("Monday", "Montag"), ("Tuesday", "Dienstag"), ("Wednesday", "Mittwoch"), ("Thursday", "Donnerstag"),
            ("Friday", "Freitag"), ("Saturday", "Samstag"), ("Sunday", "Sonntag")]


def english_ordinal(n):
    """1 -> "first", 21 -> "twenty-first", 30 -> "thirtieth" (1 <= n < 100)."""
    tens, units = divmod(n, 10)
    if n < 20 or units:
        last = units if n >= 20 else n
        word = _EN_ORDINAL_WORDS.get(last, _EN_UNITS[last] + "th")
        return word if n < 20 else f"{_EN_TENS[tens]}-{word}"
    return _EN_TENS[tens][:-1] + "ieth"


def english_ordinal_digits(n):
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def german_ordinal(n, dative=False):
    """The ordinal after an article: 12 -> "zwölfte" ("der zwölfte"), dative "zwölften" ("am zwölften")."""
    if n in _DE_ORDINAL_IRREGULAR:
        word = _DE_ORDINAL_IRREGULAR[n]
    elif n < 20:
        word = _DE_UNITS[n] + "te"
    else:
        word = german_number(n) + "ste"
    return word + ("n" if dative else "")


def _date(rng):
    """(English text, German nominative, German dative): dative as after "am", nominative after "ist"."""
    year = rng.randint(1800, 2099)
    month = rng.randint(1, 12)
    day = rng.randint(1, 31)
    while True:
        try:
            when = datetime.date(year, month, day)
            break
        except ValueError:
            day -= 1
    en_month, de_month = MONTHS[month - 1]
    with_year = rng.random() < 0.8
    style = rng.randrange(4)
    if style == 0:
        en = f"the {english_ordinal(day)} of {en_month}"
    elif style == 1:
        en = f"the {english_ordinal_digits(day)} of {en_month}"
    elif style == 2:
        en = f"{day} {en_month}"
    else:
        en = f"{en_month} {day}" + ("," if with_year else "")
    if with_year:
        en += f" {year}"
    tail = f"{de_month}" + (f" {german_year(year)}" if with_year else "")
    nominative = f"der {german_ordinal(day)} {tail}"
    dative = f"{german_ordinal(day, dative=True)} {tail}"  # "am" is the template's
    if rng.random() < 0.25:  # with the weekday: "Tuesday, the 12th of March" / "am Dienstag, dem zwölften März"
        en_day, de_day = WEEKDAYS[when.weekday()]
        en = f"{en_day}, {en if style in (0, 1) else 'the ' + english_ordinal(day) + ' of ' + en_month}"
        if style not in (0, 1) and with_year:
            en += f" {year}"
        nominative = f"{de_day}, {nominative}"
        dative = f"{de_day}, dem {dative}"
    return en, nominative, dative


# ----- times -------------------------------------------------------------------------

_EN_MINUTES = {5: "five", 10: "ten", 15: "a quarter", 20: "twenty", 25: "twenty-five", 30: "half"}


def _period(hour):
    if 5 <= hour <= 11:
        return "in the morning"
    if 12 <= hour <= 17:
        return "in the afternoon"
    if 18 <= hour <= 21:
        return "in the evening"
    return "at night"


def _time(rng):
    """(English, German): "a quarter past seven in the evening" -> "neunzehn Uhr fünfzehn"."""
    hour = rng.randrange(24)
    spoken = rng.random() < 0.6
    minute = rng.randrange(0, 60, 5) if spoken else rng.randrange(60)
    de_hour = "ein" if hour == 1 else german_number(hour)
    de = f"{de_hour} Uhr" + (f" {german_number(minute)}" if minute else "")
    if spoken:
        if minute == 0 and hour in (0, 12):
            return ("midnight" if hour == 0 else "noon"), de
        named = hour if minute <= 30 else (hour + 1) % 24
        h12 = _en_below_100(named % 12 or 12)
        if minute == 0:
            en = f"{h12} o'clock"
        elif minute <= 30:
            en = f"{_EN_MINUTES[minute]} past {h12}"
        else:
            en = f"{_EN_MINUTES[60 - minute]} to {h12}"
        return f"{en} {_period(hour)}", de
    if rng.random() < 0.5:
        return f"{hour:02d}:{minute:02d}", de
    return f"{hour % 12 or 12}:{minute:02d} {'am' if hour < 12 else 'pm'}", de


# ----- quantities and prices ---------------------------------------------------------

# (English singular, plural, German singular, plural, gender m/f/n, kind)
UNITS = [
    ("kilogram", "kilograms", "Kilogramm", "Kilogramm", "n", "mass"),
    ("gram", "grams", "Gramm", "Gramm", "n", "mass"),
    ("litre", "litres", "Liter", "Liter", "m", "volume"),
    ("bottle", "bottles", "Flasche", "Flaschen", "f", "volume"),
    ("cup", "cups", "Tasse", "Tassen", "f", "volume"),
    ("metre", "metres", "Meter", "Meter", "m", "distance"),
    ("kilometre", "kilometres", "Kilometer", "Kilometer", "m", "distance"),
    ("hour", "hours", "Stunde", "Stunden", "f", "duration"),
    ("minute", "minutes", "Minute", "Minuten", "f", "duration"),
    ("day", "days", "Tag", "Tage", "m", "duration"),
    ("week", "weeks", "Woche", "Wochen", "f", "duration"),
    ("month", "months", "Monat", "Monate", "m", "duration"),
    ("year", "years", "Jahr", "Jahre", "n", "duration"),
]
_DE_ONE = {"m": "ein", "f": "eine", "n": "ein"}
_DE_HALF = {"m": "ein halber", "f": "eine halbe", "n": "ein halbes"}


def _count(rng):
    """A count from 2 to 9999, smaller ones more often."""
    top = rng.choice((10, 100, 1000, 10000))
    while True:
        n = rng.randrange(2, top)
        if n % 100 != 1 or n < 100:  # "hunderteins Stunden" is not German; leave those out
            return n


def _quantity(rng, kind=None):
    """(English, German) for an amount of a unit of `kind` (any when None)."""
    en_one, en_many, de_one, de_many, gender, _ = rng.choice([u for u in UNITS if kind in (None, u[5])])
    form = rng.random()
    if form < 0.1:
        en_article = "an" if en_one[0] in "aeiou" or en_one == "hour" else "a"
        return f"{rng.choice(('one', en_article, '1'))} {en_one}", f"{_DE_ONE[gender]} {de_one}"
    if form < 0.2:
        en_article = "an" if en_one == "hour" else "a"
        return f"half {en_article} {en_one}", f"{_DE_HALF[gender]} {de_one}"
    if form < 0.35:
        n = rng.randint(1, 20)
        whole = "ein" if n == 1 else german_number(n)
        return f"{english_number(n)} and a half {en_many}", f"{whole}einhalb {de_many}"
    if form < 0.45:
        whole, tenths = rng.randrange(0, 100), rng.randrange(1, 10)
        return f"{whole}.{tenths} {en_many}", f"{german_number(whole)} Komma {german_number(tenths)} {de_many}"
    n = _count(rng)
    en = english_number(n) if rng.random() < 0.5 else _digits(n)
    return f"{en} {en_many}", f"{german_number(n)} {de_many}"


def _price(rng):
    """(English, German): "12.50 euros" -> "zwölf Euro fünfzig"."""
    euros, cents = _count(rng) if rng.random() < 0.5 else rng.randint(1, 99), rng.choice((0, rng.randrange(1, 100)))
    if rng.random() < 0.5:
        en = f"€{_digits(euros)}" + (f".{cents:02d}" if cents else "")
    else:
        en = f"{euros}.{cents:02d} euros" if cents else f"{_digits(euros)} euro" + ("" if euros == 1 else "s")
    de = ("ein" if euros == 1 else german_number(euros)) + " Euro" + (f" {german_number(cents)}" if cents else "")
    return en, de


# ----- sentences ---------------------------------------------------------------------

_FOODS = {"mass": [("flour", "Mehl"), ("sugar", "Zucker"), ("apples", "Äpfel"), ("cheese", "Käse"),
                   ("potatoes", "Kartoffeln"), ("rice", "Reis")],
          "volume": [("water", "Wasser"), ("milk", "Milch"), ("wine", "Wein"), ("juice", "Saft"),
                     ("coffee", "Kaffee"), ("oil", "Öl")]}


def _sentence(rng):
    kind = rng.randrange(16)
    if kind == 0:
        en, _, de = _date(rng)
        return f"on {en}", f"am {de}"
    if kind == 1:
        en, de, _ = _date(rng)
        return f"Today is {en}.", f"Heute ist {de}."
    if kind == 2:
        en, _, de = _date(rng)
        subject = rng.choice((("The meeting", "Die Besprechung"), ("The party", "Die Feier"),
                              ("The exam", "Die Prüfung"), ("My birthday", "Mein Geburtstag")))
        return f"{subject[0]} is on {en}.", f"{subject[1]} ist am {de}."
    if kind == 3:
        en, _, de = _date(rng)
        who = rng.choice((("She was", "Sie wurde"), ("He was", "Er wurde"), ("I was", "Ich wurde")))
        return f"{who[0]} born on {en}.", f"{who[1]} am {de} geboren."
    if kind == 4:
        en, de = _time(rng)
        return f"at {en}", f"um {de}"
    if kind == 5:
        en, de = _time(rng)
        verb = rng.choice((("The train leaves", "Der Zug fährt", " ab"), ("Call me", "Ruf mich", " an"),
                           ("The shop opens", "Das Geschäft öffnet", ""), ("We eat", "Wir essen", ""),
                           ("The film starts", "Der Film beginnt", "")))
        return f"{verb[0]} at {en}.", f"{verb[1]} um {de}{verb[2]}."
    if kind in (6, 7):
        date_en, _, date_de = _date(rng)
        time_en, time_de = _time(rng)
        event = rng.choice((("The concert starts", "Das Konzert beginnt"), ("The flight lands", "Der Flug landet"),
                            ("We meet", "Wir treffen uns"), ("The course begins", "Der Kurs beginnt")))
        return f"{event[0]} on {date_en} at {time_en}.", f"{event[1]} am {date_de} um {time_de}."
    if kind == 8:
        day_en, day_de = rng.choice(WEEKDAYS)
        time_en, time_de = _time(rng)
        return f"See you on {day_en} at {time_en}.", f"Wir sehen uns am {day_de} um {time_de}."
    if kind == 9:
        en, de = _quantity(rng)
        return en, de
    if kind == 10:
        which = rng.choice(("mass", "volume"))
        en, de = _quantity(rng, which)
        food_en, food_de = rng.choice(_FOODS[which])
        verb = rng.choice((("Please buy", "Bitte kauf"), ("I need", "Ich brauche"), ("We have", "Wir haben")))
        return f"{verb[0]} {en} of {food_en}.", f"{verb[1]} {de} {food_de}."
    if kind == 11:
        en, de = _quantity(rng, "distance")
        return rng.choice(((f"We walked {en}.", f"Wir sind {de} gelaufen."),
                           (f"The station is {en} away.", f"Der Bahnhof ist {de} entfernt.")))
    if kind == 12:
        en, de = _quantity(rng, "duration")
        return rng.choice(((f"The journey takes {en}.", f"Die Reise dauert {de}."),
                           (f"We stayed for {en}.", f"Wir sind {de} geblieben.")))
    if kind == 13:
        en, de = _price(rng)
        thing = rng.choice((("The ticket", "Die Karte"), ("The book", "Das Buch"), ("The room", "Das Zimmer")))
        return f"{thing[0]} costs {en}.", f"{thing[1]} kostet {de}."
    if kind == 14:
        year = rng.randint(1800, 2099)
        return f"in {year}", f"im Jahr {german_year(year)}"
    en, de = _price(rng)
    return en, de


def translation_pairs(n, seed=0):
    """`n` (English, German) pairs with distinct English sides, the same for the same seed."""
    return translation_splits({"all": n}, seed)["all"]


def translation_splits(sizes, seed=0):
    """{split: pairs} for `sizes` ({split: count}, in order): every English
    sentence appears at most once over all splits, so they never overlap."""
    for name, count in sizes.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"the size of split {name!r} must be a non-negative integer, got {count!r}")
    total = sum(sizes.values())
    rng = random.Random(seed)
    seen, pairs = set(), []
    attempts = 0
    while len(pairs) < total:
        attempts += 1
        if attempts > 20 * total + 1000:
            raise ValueError(f"the translation task cannot make {total} distinct sentences")
        source, target = _sentence(rng)
        if source not in seen:
            seen.add(source)
            pairs.append((source, target))
    splits, start = {}, 0
    for name, count in sizes.items():
        splits[name] = pairs[start:start + count]
        start += count
    return splits
