"""PDF from the report's HTML with WeasyPrint (the same page, its print rules applied).

WeasyPrint needs Pango at run time (Debian: libpango-1.0-0, libpangoft2-1.0-0); it is imported
only when a PDF is asked for, and its absence is a clear error, not a traceback.
"""

from __future__ import annotations

from skanse.errors import PdfError

__all__ = ["render_pdf"]


def _no_fetch(url: str, timeout: int = 10, ssl_context: object = None) -> dict[str, object]:
    """The page is self-contained; any fetch would be a bug or a hostile input."""
    raise PdfError(f"the report asked for {url!r}: reports never fetch anything")


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
        pdf = weasyprint.HTML(string=html, url_fetcher=_no_fetch).write_pdf()
    except PdfError:
        raise
    except Exception as exc:  # WeasyPrint raises many types; name it, never a traceback
        raise PdfError(
            f"WeasyPrint could not render the report: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(pdf, bytes):
        raise PdfError("WeasyPrint returned no PDF")
    return pdf
