"""Stop words per language for Gopher's stop-word rule (`gopher_quality.stop_words`).

The rule keeps a page that contains at least two distinct stop words: a page of real prose does,
while word lists, tables of numbers and keyword spam do not. The words must be the language's
own: judged with Gopher's eight English words, 596 of 697 German pages of trafilatura's
evaluation set were dropped (docs/curation.md).

Sources:
- `en`: the Gopher paper's eight words (Rae et al. 2021, "Scaling Language Models", A.1.1).
- the others: FineWeb-2's per-language Gopher stop words (github.com/huggingface/fineweb-2,
  `configs/<iso639-3>_<script>.yml`, key `stopwords`, commit d0defb2, Apache-2.0), keyed by the
  lid.176 code our `language` stage writes. FineWeb-2 counts them with word tokenizers that split
  elisions and punctuation off; our words are whitespace tokens (`filters.textstats`), so the
  entries those can never be are left out: `l'` and `d'` (fr, it, ca), `d` (ca), `s.` (fi), `г.`
  (bg), `،` (ar), and the English `the` that the Turkish and Finnish lists hold.
A language missing here is one the rule does not know: it is skipped for it and counted.
"""

from __future__ import annotations

STOP_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("the", "be", "to", "of", "and", "that", "have", "with"),
    "de": (
        "der", "und", "die", "in", "von", "im", "den", "des", "mit", "das", "er", "dem", "als", "wurde",
        "für"
    ),
    "fr": (
        "de", "la", "le", "et", "à", "en", "des", "du", "les", "est", "un", "une", "il", "dans", "par", "au"
    ),
    "es": (
        "de", "la", "en", "el", "y", "a", "que", "del", "los", "se", "por", "un", "con", "una", "las", "su"
    ),
    "it": (
        "di", "e", "il", "la", "in", "a", "del", "che", "è", "della", "un", "per", "nel", "con", "da", "i",
        "una"
    ),
    "pt": ("de", "a", "e", "o", "em", "do", "da", "que", "um", "no", "uma", "com", "para", "na", "é", "foi"),
    "nl": (
        "de", "van", "in", "het", "een", "en", "is", "op", "voor", "met", "door", "zijn", "werd", "hij",
        "uit"
    ),
    "pl": (
        "w", "i", "na", "z", "do", "się", "roku", "od", "a", "jest", "przez", "po", "jako", "oraz", "o",
        "został", "był", "nie"
    ),
    "ru": (
        "в", "и", "на", "с", "года", "по", "году", "из", "был", "к", "не", "от", "что", "за", "для", "его",
        "как", "а", "он", "также", "до", "после"
    ),
    "sv": ("i", "och", "är", "av", "en", "som", "den", "med", "på", "till", "att", "för"),
    "da": (
        "i", "og", "af", "en", "til", "er", "den", "at", "som", "på", "for", "med", "det", "blev", "var",
        "der", "fra", "de", "han", "et"
    ),
    "no": (
        "i", "og", "av", "som", "en", "er", "til", "på", "for", "ble", "med", "den", "det", "var", "han",
        "de", "å", "fra"
    ),
    "cs": ("v", "a", "se", "na", "je", "z", "s", "do"),
    "sk": ("v", "a", "na", "sa", "je", "z", "roku", "s"),
    "tr": (
        "ve", "bir", "olarak", "bu", "ile", "için", "olan", "da", "de", "tarafından", "yılında", "sonra",
        "en", "daha", "ilk"
    ),
    "uk": ("у", "в", "на", "і", "з", "та", "до", "року", "за", "що"),
    "ro": ("de", "în", "a", "și", "din", "la", "o", "cu", "este", "un", "pe", "fost", "care", "al"),
    "hu": (
        "a", "az", "és", "is", "egy", "volt", "hogy", "nem", "meg", "de", "magyar", "első", "el", "között"
    ),
    "fi": (
        "ja", "on", "oli", "hän", "vuonna", "myös", "joka", "se", "ei", "sen", "ovat", "sekä", "mutta",
        "että", "tai", "vuoden", "kanssa", "hänen", "jälkeen"
    ),
    "ca": ("de", "el", "la", "a", "i", "en", "que", "va", "els", "per", "un", "les", "una", "amb", "es"),
    "id": ("dan", "yang", "di", "pada", "dari", "ini", "dengan", "adalah", "untuk", "dalam"),
    "ms": ("dan", "di", "yang", "pada", "dalam", "dengan", "untuk", "ini"),
    "vi": ("là", "và", "của", "một", "được", "trong", "năm", "các", "có", "loài", "này", "đã", "người"),
    "el": (
        "του", "και", "το", "της", "η", "την", "από", "ο", "με", "τον", "να", "που", "των", "στην", "για",
        "στο", "σε", "είναι", "τη", "τα", "οι"
    ),
    "bg": ("на", "и", "в", "е", "от", "за", "се", "с", "през", "да", "по"),
    "hr": ("je", "u", "i", "se", "na", "su", "za", "od", "s", "a"),
    "sl": ("je", "v", "in", "na", "so", "se", "ki", "za", "leta", "z"),
    "ar": (
        "في", "من", "على", "إلى", "عام", "أن", "مع", "أو", "هو", "عن", "التي", "كان", "بين", "ما", "كانت",
        "هي", "المتحدة", "بعد"
    ),
    "hi": ("के", "में", "है", "की", "और", "से", "का", "को", "एक", "हैं", "पर"),
    "he": ("של", "את", "על", "הוא", "עם", "בשנת", "גם", "היה", "היא", "לאחר", "לא", "ידי", "בין", "או", "כי"),
}
