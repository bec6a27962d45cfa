"""The languages of CodeGeeX's pretraining corpus: tags, file extensions and shebangs.

CodeGeeX prepends a language tag line to every training file (``codegeex/data/data_utils.py:
LANGUAGE_TAG``): ``# language: Python``, ``// language: C++``, ``<!--language: HTML-->`` ... This
table is the one place that knows them; the six HumanEval-X languages are the same objects as in
``geex.languages``. Detection is by file extension, and for files without one by a ``#!`` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from geex.errors import UserError
from geex.languages import HUMANEVALX_LANGUAGES, Language


@dataclass(frozen=True)
class CorpusLanguage:
    language: Language  # name, display (the tag's text), comment sign
    extensions: tuple[str, ...]
    interpreters: tuple[str, ...] = ()  # names on a #! line
    tag_template: str = ""  # for tags that are not "<comment> language: <display>"

    @property
    def name(self) -> str:
        return self.language.name

    @property
    def tag(self) -> str:
        if self.tag_template:
            return self.tag_template.format(display=self.language.display)
        return self.language.tag


def _lang(name: str, display: str, comment: str, extensions: str, interpreters: str = "",
          template: str = "") -> CorpusLanguage:
    return CorpusLanguage(Language(name, display, "", extensions.split()[0] if extensions else "", comment),
                          tuple(extensions.split()), tuple(interpreters.split()), template)


_HX = {lang.name: lang for lang in HUMANEVALX_LANGUAGES}
CORPUS_LANGUAGES: tuple[CorpusLanguage, ...] = (
    CorpusLanguage(_HX["python"], ("py", "pyw", "pyi"), ("python", "python2", "python3", "pypy", "pypy3")),
    CorpusLanguage(_HX["cpp"], ("cpp", "cc", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "tcc")),
    CorpusLanguage(_HX["java"], ("java",)),
    CorpusLanguage(_HX["js"], ("js", "mjs", "cjs", "jsx"), ("node", "nodejs")),
    CorpusLanguage(_HX["go"], ("go",)),
    CorpusLanguage(_HX["rust"], ("rs",)),
    _lang("c", "C", "//", "c h"),
    _lang("csharp", "C#", "//", "cs"),
    _lang("cuda", "Cuda", "//", "cu cuh"),
    _lang("dart", "Dart", "//", "dart"),
    _lang("lua", "Lua", "//", "lua", "lua luajit"),
    _lang("objectivec", "Objective-C", "//", "m"),
    _lang("objectivecpp", "Objective-C++", "//", "mm"),
    _lang("swift", "swift", "//", "swift"),  # lower case, as the original's table
    _lang("scala", "Scala", "//", "scala sc"),
    _lang("php", "PHP", "//", "php", "php"),
    _lang("typescript", "TypeScript", "//", "ts tsx mts cts", "ts-node deno"),
    _lang("kotlin", "Kotlin", "//", "kt kts"),
    _lang("pascal", "Pascal", "//", "pas pp"),
    _lang("groovy", "Groovy", "//", "groovy gradle", "groovy"),
    _lang("actionscript", "ActionScript", "//", "as"),
    _lang("solidity", "Solidity", "//", "sol"),
    _lang("cobol", "Cobol", "//", "cob cbl"),
    _lang("perl", "Perl", "#", "pl pm", "perl"),
    _lang("shell", "Shell", "#", "sh bash zsh ksh", "sh bash zsh ksh dash"),
    _lang("ruby", "Ruby", "#", "rb rake gemspec", "ruby"),
    _lang("r", "R", "#", "r", "Rscript"),
    _lang("gdscript", "GDScript", "#", "gd"),
    _lang("julia", "Julia", "#", "jl", "julia"),
    _lang("elixir", "Elixir", "#", "ex exs", "elixir"),
    _lang("powershell", "PowerShell", "#", "ps1 psm1", "pwsh"),
    _lang("prolog", "Prolog", "%", "pro prolog"),
    _lang("tex", "TeX", "%", "tex sty cls"),
    _lang("matlab", "Matlab", "%", ""),  # .m is Objective-C's here: Matlab files need an explicit language
    _lang("erlang", "Erlang", "%", "erl hrl", "escript"),
    _lang("lisp", "Lisp", ";", "lisp lsp cl el"),
    _lang("scheme", "Scheme", ";", "scm ss", "guile"),
    _lang("assembly", "Assembly", ";", "asm s"),
    _lang("clojure", "Clojure", ";", "clj cljs cljc edn"),
    _lang("sql", "SQL", "--", "sql"),
    _lang("lean", "Lean", "--", "lean"),
    _lang("haskell", "Haskell", "--", "hs lhs", "runhaskell"),
    _lang("vb", "Visual Basic", "'", "vb vbs"),
    _lang("basic", "Basic", "'", "bas"),
    _lang("excel", "Excel", "'", ""),
    _lang("css", "CSS", "", "css", template="/* language: {display} */"),
    _lang("vue", "Vue", "", "vue", template="<!--language: {display}-->"),
    _lang("markdown", "Markdown", "", "md markdown", template="<!--language: {display}-->"),
    _lang("html", "HTML", "", "html htm xhtml", template="<!--language: {display}-->"),
    _lang("fortran", "Fortran", "", "f f90 f95 f03 for", template="!language: {display}"),
    _lang("delphi", "Delphi", "", "dpr dfm", template="{{language: {display}}}"),
    _lang("abap", "Abap", "", "abap", template="* language: {display}"),
)

_BY_NAME = {c.name: c for c in CORPUS_LANGUAGES}
_BY_EXTENSION = {ext: c for c in CORPUS_LANGUAGES for ext in c.extensions}
_BY_INTERPRETER = {i: c for c in CORPUS_LANGUAGES for i in c.interpreters}
_SHEBANG = re.compile(rb"#![ \t]*(\S+)([^\n]*)")


def corpus_language(name: str) -> CorpusLanguage:
    key = name.strip().lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    for c in CORPUS_LANGUAGES:  # HumanEval-X aliases and display names: c++, javascript, C#
        if key in (c.language.display.lower(), *c.language.aliases):
            return c
    raise UserError(f"unknown corpus language {name!r} (known: {', '.join(_BY_NAME)})")


def detect(path: str, head: bytes = b"") -> CorpusLanguage | None:
    """The language of a file from its extension; a file without one (a script) from a ``#!`` line at
    the start of ``head``."""
    name = path.rsplit("/", 1)[-1]
    if "." in name.lstrip("."):  # a file with an extension is what its extension says (or nothing)
        return _BY_EXTENSION.get(name.rsplit(".", 1)[1].lower())
    m = _SHEBANG.match(head)
    if m is None:
        return None
    program, *args = [m.group(1).rsplit(b"/", 1)[-1], *m.group(2).split()]
    if program == b"env":  # "#!/usr/bin/env -S python3 -u"
        program = next((a for a in args if not a.startswith(b"-")), b"")
    name = re.sub(r"[\d.]+$", "", program.decode(errors="replace"))  # python3.11 -> python
    return _BY_INTERPRETER.get(name)
