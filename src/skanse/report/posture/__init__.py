"""`skanse report`: one posture report across every layer, as JSON, HTML and PDF.

    documents = [load_result_file(Path("scan.json")), run_host("/", config), ...]
    posture = build_posture(documents, tool_version=__version__)   # the JSON document
    html = render_html(posture); pdf = render_pdf(html)

Stages, one module each: `documents` (read and check layer results), `collect` (run the
layers through their library APIs), `risk` (the top-risk score), `build` (join and count),
`html` and `pdf` (render). The report never re-implements a check.
"""
