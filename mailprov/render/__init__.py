"""Templates → text, and `render_host`: every file a host needs, as the resources wish it.

Jinja is loaded on first use (validate and plan of an unchanged host need none of it); a template error
becomes one `TemplateError` naming the template and line, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.config.mailservices import PORTS
from mailprov.config.model import Host, Site
from mailprov.errors import MailprovError
from mailprov.facts.platform import Platform

if TYPE_CHECKING:
    import jinja2

    from mailprov.dialects import Dialect
    from mailprov.resources.base import ManagedFile
    from mailprov.resources.certificate import Certificate

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


class TemplateError(MailprovError):
    """A template could not be rendered (a defect of mailprov or of a changed template)."""


_env: jinja2.Environment | None = None


def _environment() -> jinja2.Environment:
    global _env
    if _env is None:
        import jinja2

        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,  # config files, not HTML; values are validated by the model instead
        )
    return _env


def render_template(name: str, **context: Any) -> str:
    """Render templates/NAME with `context`; any failure names the template and line."""
    import jinja2

    try:
        return _environment().get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {name}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {name}{_template_line(exc, name)}: {exc}") from None


def _template_line(exc: BaseException, name: str) -> str:
    """The line of `name` where rendering failed, from the traceback Jinja rewrites to template lines."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f":{line}" if line else ""


@dataclass(frozen=True)
class Rendered:
    """Every file one host gets (for `mailprov render`, golden files and tests)."""

    host: Host
    dialect: Dialect
    files: tuple[ManagedFile, ...]
    certificate: Certificate | None
    notes: tuple[str, ...] = field(default=())

    def file(self, path: str) -> ManagedFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)


def render_host(site: Site, host: Host, platform: Platform, base_dir: Path | None = None) -> Rendered:
    """Render every file `host` needs. base_dir resolves pushed certificate paths (the site's folder)."""
    from mailprov.resources import REGISTRY
    from mailprov.resources.base import HostContext
    from mailprov.resources.certificate import locate

    ctx = HostContext.of(site, host, platform, base_dir or Path.cwd())
    files: list[ManagedFile] = []
    notes: list[str] = []
    for resource in REGISTRY:
        desired = resource.desired(ctx)
        files += desired.files
        notes += desired.notes
    return Rendered(host, ctx.dialect, tuple(files), locate(ctx), tuple(notes))


__all__ = ["PORTS", "Rendered", "TemplateError", "render_host", "render_template"]
