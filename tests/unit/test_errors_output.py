"""Unexpected failures reach the admin as one line (where, what), never a traceback unless --debug;
template errors name the template and line; no output can carry terminal control characters."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailprov import render
from mailprov.cli import main
from mailprov.render import TemplateError, render_template
from mailprov.report import Reporter

ROOT = Path(__file__).resolve().parents[2]


def test_template_error_names_template_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "bad.j2").write_text("ok\n{{ missing.attr }}\n")
    (tmp_path / "t" / "syntax.j2").write_text("a\nb\n{% if %}\n")
    monkeypatch.setattr(render, "TEMPLATE_DIR", tmp_path)
    monkeypatch.setattr(render, "_env", None)
    with pytest.raises(TemplateError, match=r"template t/bad.j2:2: 'missing' is undefined"):
        render_template("t/bad.j2")
    with pytest.raises(TemplateError, match=r"template t/syntax.j2:3: "):
        render_template("t/syntax.j2")


def test_unexpected_exception_is_one_line_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("mailprov.config.loader.load_site", boom)
    site = str(ROOT / "inventories" / "example.com.yaml")
    result = CliRunner().invoke(main, ["validate", site])
    assert result.exit_code == 1
    assert "internal error: ZeroDivisionError at test_errors_output.py:" in result.output
    assert "Traceback" not in result.output and "--debug" in result.output
    debug = CliRunner().invoke(main, ["--debug", "validate", site])
    assert isinstance(debug.exception, ZeroDivisionError)


def test_output_escapes_control_and_bidi_characters() -> None:
    out = io.StringIO()
    Reporter(out, color=False).line("evil\x1b]0;title\x07 \u202eabc \x85x")
    assert out.getvalue() == "evil\\u001b]0;title\\u0007 \\u202eabc \\u0085x\n"
