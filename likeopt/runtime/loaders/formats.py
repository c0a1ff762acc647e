"""The file types the loaders read, the limits they keep to, and the refusal words more than one of them gives."""

from __future__ import annotations

from pathlib import PurePath

TEXT_SUFFIXES = {".txt", ".text", ".rst"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
TABLE_SUFFIXES = {".csv", ".tsv"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
JSON_SUFFIXES = {".json", ".jsonc"}
"""JSON, and JSON with comments by its own suffix (.jsonc): every .json file may hold comments too (json_text)."""
OFFICE_SUFFIXES = {".docx", ".pptx", ".xlsx"}
ODF_SUFFIXES = {".odt", ".ods", ".odp"}
CODE_TYPES = {
    **dict.fromkeys((".py", ".pyi"), "python"),
    **dict.fromkeys((".js", ".mjs", ".cjs", ".jsx"), "javascript"),
    **dict.fromkeys((".ts", ".tsx"), "typescript"),
    **dict.fromkeys((".c", ".h"), "c"),
    **dict.fromkeys((".cpp", ".cc", ".cxx", ".hpp", ".hh"), "cpp"),
    **dict.fromkeys((".sh", ".bash", ".zsh"), "shell"),
    **dict.fromkeys((".kt", ".kts"), "kotlin"),
    **dict.fromkeys((".yaml", ".yml"), "yaml"),
    **dict.fromkeys((".ini", ".cfg", ".conf", ".properties"), "config"),
    **{".java": "java", ".go": "go", ".rs": "rust", ".cs": "csharp", ".rb": "ruby", ".php": "php"},
    **{".swift": "swift", ".scala": "scala", ".lua": "lua", ".r": "r", ".ps1": "powershell", ".sql": "sql"},
    **{".css": "css", ".proto": "protobuf", ".toml": "toml", ".xml": "xml", ".log": "log"},
    **dict.fromkeys((".dockerfile", ".containerfile"), "dockerfile"),
    **{".mk": "makefile"},
}
"""Source code, configuration and logs, by suffix, with the file_type each is read as: text whose lines and
indentation are its meaning, so it is read as a code block, never joined into sentences as hard-wrapped prose is.
XML is among them, read as written with its tags: in a repository or on a drive it is configuration (a pom.xml, a
.csproj, a manifest) whose element names say what each value is, and no XML parser meets its entity declarations.
So are the suffixes a Dockerfile (api.Dockerfile, as Docker's and VS Code's tooling name one of several) and a
Makefile's included parts (rules.mk) are given."""
MARKUP_TYPES = {".tex": "latex", ".adoc": "asciidoc", ".asciidoc": "asciidoc", ".org": "org"}
"""Prose written in a markup language no loader parses, read as plain text (as reStructuredText is): its paragraphs
are hard-wrapped sentences, which the chunker joins."""
SUPPORTED = (
    TEXT_SUFFIXES
    | MARKDOWN_SUFFIXES
    | HTML_SUFFIXES
    | TABLE_SUFFIXES
    | JSONL_SUFFIXES
    | JSON_SUFFIXES
    | OFFICE_SUFFIXES
    | ODF_SUFFIXES
    | CODE_TYPES.keys()
    | MARKUP_TYPES.keys()
    | {
        ".eml",
        ".epub",
        ".ipynb",
        ".mbox",
        ".pdf",
        ".rtf",
    }
)
NAMED_CODE = {
    **dict.fromkeys(("dockerfile", "containerfile"), "dockerfile"),
    **dict.fromkeys(("makefile", "gnumakefile"), "makefile"),
    **dict.fromkeys((".gitignore", ".dockerignore", ".npmignore", ".gitattributes", ".editorconfig"), "config"),
    **dict.fromkeys((".env.example", ".env.sample", ".env.template", "procfile", "codeowners"), "config"),
    **{"jenkinsfile": "groovy", "vagrantfile": "ruby", "gemfile": "ruby", "rakefile": "ruby"},
}
"""Files every repository keeps that have no suffix of their type, by their whole name (lower-cased), with the
file_type each is read as: code and configuration, read as written. A closed list: a name is a promise of what the
file holds only for these. A .env file itself is not among them: it holds secrets, where its examples hold none."""
NAMED_VARIANTS = {"dockerfile", "containerfile", "makefile", "gnumakefile", "jenkinsfile", "procfile"}
"""The NAMED_CODE names a repository also keeps in variants, NAME.VARIANT (Dockerfile.dev, Containerfile.test,
Makefile.am, Makefile.in, Jenkinsfile.release, Procfile.dev), each read as NAME is unless its last suffix is a type
of its own (Dockerfile.md is Markdown). A closed list: Gemfile.lock is no Ruby, and a .env's variants (.env.local)
hold secrets."""
NAMED_PROSE = {"readme", "license", "licence", "copying", "changelog", "changes", "notice", "authors", "contributors"}
"""Files every repository keeps, by their whole name (lower-cased), that are prose: read as plain text."""
NAMED_FILES = NAMED_CODE.keys() | NAMED_PROSE
ONE_DOCUMENT_SUFFIXES = SUPPORTED - JSONL_SUFFIXES - {".mbox"} | NAMED_FILES
"""The file types that are one document each, stored under the file's id (JSON Lines hold records with ids of their
own, a mailbox messages). A .json file is one too unless it holds documents, and one that cannot be read may have
been either."""

LEGACY_OFFICE = {".doc": ".docx", ".ppt": ".pptx", ".xls": ".xlsx"}
"""Older formats no loader reads, and the one to save them as (every Office version writes it)."""

MAX_FILE_BYTES = 50 * 1024 * 1024
TOO_LARGE = f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
NOT_UTF8 = "not valid UTF-8 text (convert it first, e.g. iconv -f WINDOWS-1252 -t UTF-8)"
NOT_TEXT = "contains NUL characters: not a text file"


def named_kind(name: str) -> str | None:
    """The kind a file is read as by its whole name (one of NAMED_FILES, which have no suffix of their type) or as a
    variant of one (NAMED_VARIANTS: Dockerfile.dev is read as a Dockerfile), else None: its suffix says."""
    whole = PurePath(name).name.lower()
    if whole in NAMED_FILES:
        return whole
    first, dot, _ = whole.partition(".")
    return first if dot and first in NAMED_VARIANTS and PurePath(whole).suffix not in SUPPORTED else None


def file_type(suffix: str) -> str:
    """What a file was read as, as its document's metadata says it: one name for each type whichever of its suffixes
    the file has (.htm and .html are html, .yml and .yaml yaml), so a search filter {"file_type": "pdf"} finds every
    PDF. A file whose bytes show another type than its name is that type (sniffed_suffix)."""
    return NAMED_TYPES.get(suffix, suffix.removeprefix("."))


NAMED_TYPES = {
    **dict.fromkeys(TEXT_SUFFIXES, "text"),
    **dict.fromkeys(MARKDOWN_SUFFIXES, "markdown"),
    **dict.fromkeys(HTML_SUFFIXES, "html"),
    **dict.fromkeys(JSON_SUFFIXES, "json"),
    **CODE_TYPES,
    **MARKUP_TYPES,
    **NAMED_CODE,
    **dict.fromkeys(NAMED_PROSE, "text"),
    ".ipynb": "notebook",
}
"""The file_type of each suffix whose type is not the suffix itself."""
