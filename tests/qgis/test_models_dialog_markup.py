"""A model file must not be able to put its own markup into the Models dialog (issue 16)."""

from pathlib import Path

from onnx_factory import make_spec, weighted_sum_model

from arctic_assist.io import models

EVIL_NAME = "<h1>EVIL</h1>"
EVIL_DESCRIPTION = (
    "<a href='https://example.invalid/x'>click</a><font color=red>WARNING: your data is lost</font>"
)


def _evil_entry(tmp_path: Path) -> models.ModelEntry:
    spec = make_spec(
        name=EVIL_NAME,
        description=EVIL_DESCRIPTION,
        provenance={"method": "<b>bold</b>", "data": "<img src='x.png'>"},
    )
    path = weighted_sum_model(tmp_path / "evil<i>.onnx", weights=[1, 1, 1, 1], spec=spec)
    return models.ModelEntry(path, "user", models.read_spec(path))


def test_card_html_escapes_everything_from_the_file(tmp_path):
    from arctic_assist.gui.models_dialog import card_html

    html = card_html(_evil_entry(tmp_path), is_default=False)
    for needle in ("<h1>", "<a href", "<font", "<b>bold", "<img", "<i>.onnx"):
        assert needle not in html, html
    assert "&lt;h1&gt;EVIL&lt;/h1&gt;" in html


def test_text_browser_shows_the_markup_as_text(qgis_app, tmp_path):
    from qgis.PyQt.QtWidgets import QTextBrowser

    from arctic_assist.gui.models_dialog import card_html

    browser = QTextBrowser()
    browser.setHtml(card_html(_evil_entry(tmp_path), is_default=True))
    text = browser.toPlainText()
    assert EVIL_NAME in text  # shown literally, not rendered as a heading
    assert "WARNING: your data is lost" in text and "<font color=red>" in text
    # no anchor was created from the file's content
    doc = browser.document()
    block = doc.begin()
    anchors = []
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isAnchor():
                anchors.append(fmt.anchorHref())
            it += 1
        block = block.next()
    assert anchors == []


def test_unusable_model_error_is_escaped(tmp_path):
    from arctic_assist.gui.models_dialog import card_html

    entry = models.ModelEntry(
        tmp_path / "<b>x</b>.onnx", "user", None, "bad field '<script>alert(1)</script>'"
    )
    html = card_html(entry, is_default=False)
    assert "<script>" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;" in html
