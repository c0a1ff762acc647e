"""HTML as the text a reader sees: a real parser (BeautifulSoup on lxml) keeps table cells separate words and leaves
navigation, scripts and the page's own header and footer out (an article's header and footer are its headline,
byline and notes, and stay in)."""

from __future__ import annotations

import re
from typing import NamedTuple

from bs4 import BeautifulSoup, CData, NavigableString, PageElement, Tag

from likeopt.runtime.loaders.tidy import BLOCK_BREAK, tidy
from likeopt.runtime.text_layout import fenced

HTML_DROPPED = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "nav", "aside", "title"})
"""Elements whose text is not the page's content: code, navigation and page furniture."""
HTML_CONTROLS = frozenset({"button", "datalist", "input", "option", "select", "textarea"})
"""Form controls: their text is a choice, a value or an action ("Weekly", "Sign up"), not what the page says. A
<button> inside a heading stays: it is how an accordion (a FAQ's questions) shows its heading."""
HTML_PAGE_FURNITURE = frozenset({"header", "footer"})
"""Dropped only at page level (a site's banner and copyright line): inside HTML_CONTENT they are the content's own,
an article's headline and byline or a section's closing note."""
HTML_CONTENT = frozenset({"article", "section", "main"})
"""Elements that hold the page's content, as HTML5 scopes a <header> or <footer> to the nearest of them."""
HTML_FURNITURE_ROLES = frozenset({"navigation", "complementary"})
"""ARIA roles that mark an element as <nav> and <aside> do."""
HTML_PAGE_FURNITURE_ROLES = frozenset({"banner", "contentinfo"})
"""ARIA roles that mark an element as a page-level <header> and <footer> do: dropped at page level only."""
HTML_FURNITURE_WORDS = frozenset(
    {"breadcrumb", "breadcrumbs", "consent", "cookie", "cookies", "menu", "nav", "navbar", "navigation", "sidebar"}
)
"""Words of class names and ids that mark the furniture sites build of <div>s (menus, cookie banners, sidebars):
whole words ("site-nav", "cookieBanner", not "navigator"), and never on an element holding the page's main content
(_content_holders)."""
HTML_PAGE_FURNITURE_WORDS = frozenset({"footer"})
"""As HTML_FURNITURE_WORDS, dropped at page level only, as a <footer> is."""
_CLASS_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
"""A word of a class name or an id, split at hyphens, underscores, digits and camelCase humps."""
HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
HTML_WORDS = frozenset({"td", "th", "label"})
HTML_LINES = frozenset({"br"})
HTML_ITEMS = frozenset({"dd", "dt", "li", "tr"})
HTML_BLOCKS = HTML_HEADINGS | frozenset(
    {
        "address", "article", "blockquote", "caption", "center", "details", "dialog", "div", "dl", "fieldset",
        "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "legend", "main", "menu", "ol", "p",
        "search", "section", "summary", "table", "ul",
    }
)  # fmt: skip
"""Blocks start and end a line, an item (row, list item) ends a paragraph, a ``<br>`` a line, a cell or a form's
label a word; inline elements join their text as written, so ``<b>wo</b>rd`` stays one word, and an image is its
alt text. A ``<pre>`` is a code block (_html_visible_text)."""


def _html_separators(name: str) -> tuple[str, str]:
    """What an element leaves before and after its text."""
    if name in HTML_WORDS:
        return "", " "
    if name in HTML_LINES:
        return "", "\n"
    if name in HTML_ITEMS:
        return "", BLOCK_BREAK
    return ("\n", "\n") if name in HTML_BLOCKS else ("", "")


def _html_title(soup: BeautifulSoup) -> str:
    """The main content's heading, else <title>, else the first <h1>. The headline a reader sees over an article
    names it better than <title>, which sites pad with their own name ("How we cut latency | Acme Blog"), and
    better than a banner's <h1>, which names the site on every page of it."""
    for tag in (_main_content_heading(soup), soup.find("title"), soup.find("h1")):
        if isinstance(tag, Tag) and (title := " ".join(tag.get_text().split())):
            return title
    return ""


def _main_content_heading(soup: BeautifulSoup) -> Tag | None:
    """The first <h1> of the page's one <article>, else of its one <main>. None on a page of several articles (a
    blog's index): no one of their headlines names the page, nor does the first of them inside its <main>."""
    articles = soup.find_all("article", limit=2)
    if len(articles) > 1:
        return None
    for found in (articles, soup.find_all("main", limit=2)):
        if len(found) == 1 and isinstance(heading := found[0].find("h1"), Tag):
            return heading
    return None


class _Scope(NamedTuple):
    """Where an element lies: inside HTML_CONTENT (an article, a section, the main content), inside a heading."""

    content: bool = False
    heading: bool = False


def _html_visible_text(root: Tag) -> str:
    """The text of root without what _left_out leaves out, a line break around blocks and a space around cells;
    each ``<pre>`` a code block as written (fenced), the text between them tidied as prose.

    An explicit stack rather than recursion or tree edits: a page nested 200,000 levels deep
    must neither overflow Python's stack nor cost a walk to the bottom per inserted separator.
    """
    holders = _content_holders(root)
    blocks: list[str] = []
    parts: list[str] = []
    stack: list[tuple[PageElement | str, _Scope]] = [(root, _Scope())]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, Tag):
            if _left_out(node, scope, holders):
                continue
            if node.name == "pre":  # tidying would collapse its indentation, the chunker join its lines
                blocks += [tidy("".join(parts)), fenced(node.get_text())]
                parts = []
                continue
            opening, closing = _html_separators(node.name)
            parts += (opening, str(node.get("alt") or "") if node.name == "img" else "")
            if closing:
                stack.append((closing, scope))  # a plain str: emitted when the element's contents are done
            scope = _Scope(scope.content or node.name in HTML_CONTENT, scope.heading or node.name in HTML_HEADINGS)
            stack.extend((child, scope) for child in reversed(node.contents))
        elif type(node) in (NavigableString, CData) or type(node) is str:
            parts.append(str(node))  # comments, doctypes and processing instructions are other subclasses
    blocks.append(tidy("".join(parts)))
    return BLOCK_BREAK.join(block for block in blocks if block)


def _left_out(tag: Tag, scope: _Scope, holders: set[int]) -> bool:
    """Whether an element's text is not the page's: code, navigation, page furniture and form controls, by their
    elements, roles and class words, unless it holds the page's main content."""
    if tag.name in HTML_DROPPED or (tag.name in HTML_PAGE_FURNITURE and not scope.content):
        return True
    if tag.name in HTML_CONTROLS:
        return not (tag.name == "button" and scope.heading)
    if id(tag) in holders:
        return False
    roles, words = set(str(tag.get("role") or "").split()), _class_words(tag)
    if roles & HTML_FURNITURE_ROLES or words & HTML_FURNITURE_WORDS:
        return True
    return not scope.content and bool(roles & HTML_PAGE_FURNITURE_ROLES or words & HTML_PAGE_FURNITURE_WORDS)


def _class_words(tag: Tag) -> set[str]:
    """The words of an element's class names and id, lowercase: "navbar navbar-expand-lg" and "cookieBanner" name
    what the element holds as a tag name would."""
    names = [*tag.get_attribute_list("class"), str(tag.get("id") or "")]
    return {word.lower() for name in names if name for word in _CLASS_WORD.findall(name)}


def _content_holders(root: Tag) -> set[int]:
    """The ids of the elements that are or hold the page's main content (its <body>, <main>, an <article>, an
    <h1>, an element of role main): never left out for a class word or role, which a wrapper such as
    ``<body class="has-sidebar">`` or ``<div class="menu-open">`` around everything may carry."""
    holders: set[int] = set()
    for held in [*root.find_all(["body", "main", "article", "h1"]), *root.find_all(attrs={"role": "main"})]:
        element: Tag | None = held
        while element is not None and id(element) not in holders:  # stops where another's walk up passed
            holders.add(id(element))
            element = element.parent
    return holders


XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
"""What an XHTML page (an EPUB book's chapter, a page saved as XHTML) starts with. Beautiful Soup takes a page that
starts so, and shows no "</html" in its first 500 characters, for XML and warns that it is parsed as HTML: it is
HTML, and the encoding the declaration names has been applied already."""


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML or XHTML document."""
    soup = BeautifulSoup(XML_DECLARATION.sub("", html, count=1), "lxml")
    return _html_title(soup), _html_visible_text(soup)
