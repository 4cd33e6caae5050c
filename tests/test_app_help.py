"""The Help page: the pipeline in words, and every setting explained from the settings' own help texts."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from segmentation.params import SETTINGS
from testdata import ROOT


def test_help_page_explains_every_setting_and_choice():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/help.py").run()
    text = "\n".join(m.value for m in at.markdown)
    assert "| 1 · Filter |" in text and "When the result looks wrong" in text
    for name, spec in SETTINGS.items():
        assert f"(`{name}` in the settings file) — {spec.help}" in text, name
        for key, method in (spec.choices or {}).items():
            assert f"*{method.label}* (`{key}`): {method.help}" in text, (name, key)
    assert "python -m segmentation" in text  # the command line, as in the README
