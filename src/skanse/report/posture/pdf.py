"""PDF from the report's HTML with WeasyPrint (the same page, its print rules applied).

WeasyPrint needs Pango at run time (Debian: libpango-1.0-0, libpangoft2-1.0-0); it is imported
only when a PDF is asked for, and its absence is a clear error, not a traceback.
"""

from __future__ import annotations

from typing import Any

from skanse.errors import PdfError

__all__ = ["render_pdf"]


def _refused(url: str) -> ValueError:
    # WeasyPrint skips a resource whose fetch raises an Exception and renders the rest
    return ValueError(f"the report asked for {url!r}: reports never fetch anything")


def _no_fetch(url: str, timeout: int = 10, ssl_context: object = None) -> dict[str, object]:
    """The fetcher of WeasyPrint before 68, which takes a function."""
    raise _refused(url)


def _url_fetcher(weasyprint: Any) -> object:
    """A fetcher that refuses every URL: the page is self-contained, so any fetch would be a
    bug or a hostile input. WeasyPrint 68 and later take a `URLFetcher` (it reads attributes
    of it, so a plain function fails on the first `url()`); earlier ones take a function."""
    base = getattr(getattr(weasyprint, "urls", None), "URLFetcher", None)
    if base is None:
        return _no_fetch

    class NoFetch(base):  # type: ignore[misc, valid-type]
        def fetch(self, url: str, headers: object = None) -> object:
            raise _refused(url)

    return NoFetch(fail_on_errors=False)


def render_pdf(html: str) -> bytes:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango's shared libraries are missing
        raise PdfError(
            f"PDF output needs WeasyPrint and Pango ({exc}); install them "
            "(pip install weasyprint; apt-get install libpango-1.0-0 libpangoft2-1.0-0) "
            "or write -f html and print it"
        ) from None
    try:
        pdf = weasyprint.HTML(string=html, url_fetcher=_url_fetcher(weasyprint)).write_pdf()
    except PdfError:
        raise
    except Exception as exc:  # WeasyPrint raises many types; name it, never a traceback
        raise PdfError(
            f"WeasyPrint could not render the report: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(pdf, bytes):
        raise PdfError("WeasyPrint returned no PDF")
    return pdf
