"""Issue 12: each hole a fuzzing of 12,000 hostile sites found, reproduced as the admin would hit it.

Every test here failed on the code before the fix. A refusal must read `site.yaml:LINE  field.path: reason`
and, where there is one, say what to write instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailprov.config.loader import parse_site
from mailprov.config.model import Site
from mailprov.errors import ConfigError
from mailprov.facts.platform import PRESETS
from mailprov.render import render_host

BASE = """\
domain: example.org
hosts:
  - name: mail.example.org
users:
  - login: alice
    password: {env: MAILPROV_ALICE_PASSWORD}
aliases:
  root: [alice]
"""


def refusal(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_site(text, "site.yaml")
    return str(info.value)


def line_of(text: str, marker: str) -> int:
    """1-based number of the first line holding marker."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def assert_refused_at(text: str, marker: str, field: str, *needles: str) -> str:
    """Refused with `site.yaml:LINE  field: …`, LINE the first line that holds marker."""
    line = line_of(text, marker)
    message = refusal(text)
    assert f"site.yaml:{line}  {field}: " in message, message
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in message
    return message


def with_recipient(*items: str) -> str:
    lines = "".join(f"    - {item}\n" for item in items)
    return BASE + "restrictions:\n  recipient:\n" + lines


# --- 1. open relay by injection through a restriction argument -----------------------------------------


@pytest.mark.parametrize(
    "argument",
    [
        "'inet:::%,:1'",  # the smallest form the fuzzer found
        "'inet:[::1%lo]:10023, permit, x'",
        "'inet:[::1%lo]:10023'",  # a zone alone: no `%` ever reaches main.cf
        "'inet:127.0.0.1:10023 permit'",
        "'inet:127.0.0.1:10023,permit'",
        "'unix:private/policy,permit'",
        "'inet:::1:10023'",  # an unbracketed IPv6 address is ambiguous to Postfix
    ],
)
def test_a_policy_endpoint_is_one_token(argument: str) -> None:
    text = with_recipient("permit_mynetworks", f"check_policy_service: {argument}", "reject_unauth_destination")
    assert_refused_at(
        text,
        "check_policy_service",
        "restrictions.recipient.1",
        "check_policy_service takes one endpoint",
        "inet:[::1]",
    )


@pytest.mark.parametrize("argument", ["zen.spamhaus.org,permit", "zen.spamhaus.org permit", "a.org=127.0.0.2,permit"])
def test_a_dnsbl_argument_is_one_zone(argument: str) -> None:
    text = with_recipient("reject_unauth_destination", f"'reject_rbl_client': '{argument}'")
    assert_refused_at(text, "reject_rbl_client", "restrictions.recipient.1", "reject_rbl_client")


@pytest.mark.parametrize(
    "argument", ["inet:127.0.0.1:10023", "inet:[::1]:10023", "inet:policy.example.org:9998", "unix:private/policy"]
)
def test_a_policy_endpoint_renders_as_one_word(argument: str) -> None:
    text = with_recipient("permit_mynetworks", "reject_unauth_destination", f"check_policy_service: '{argument}'")
    site = parse_site(text)
    for preset in ("centos5", "debian12"):
        main_cf = render_host(site, site.hosts[0], PRESETS[preset]).file("/etc/postfix/main.cf").text()
        assert (
            f"    check_policy_service {argument}\n" in main_cf or f"    check_policy_service {argument},\n" in main_cf
        )


# --- 2. dovecot.extra: `<file` reads a file into the setting, a trailing `\` joins the next line ---------


@pytest.mark.parametrize(
    ("value", "needle"),
    [("</etc/shadow", "`<`"), ("'< /etc/shadow'", "`<`"), ("'Mail \\'", "`\\`")],
)
def test_dovecot_extra_cannot_include_a_file_or_continue_a_line(value: str, needle: str) -> None:
    text = BASE + f"dovecot:\n  extra:\n    login_greeting: {value}\n"
    assert_refused_at(text, "login_greeting", "dovecot.extra.login_greeting", needle)


def test_dovecot_extra_include_refusal_says_what_to_write() -> None:
    message = refusal(BASE + "dovecot:\n  extra:\n    login_greeting: </etc/shadow\n")
    assert "write the value itself" in message


# --- 4. site users are people, not system accounts ------------------------------------------------------


@pytest.mark.parametrize("login", ["root", "daemon", "postfix", "bin", "nobody", "dovecot", "systemd-network", "_apt"])
def test_a_user_cannot_be_a_system_account(login: str) -> None:
    text = BASE.replace("login: alice", f"login: {login}").replace("root: [alice]", f"postmaster: [{login}]")
    assert_refused_at(text, "login:", "users.0.login", "is a system account", f"aliases: {{{login}: [alice]}}")


# --- 7. one definition of safe text: no C1, line or paragraph separators, bidi or format characters ----

UNSAFE = {
    "NEL U+0085": "\u0085",
    "LINE SEPARATOR": "\u2028",
    "PARAGRAPH SEPARATOR": "\u2029",
    "C1 CSI": "\u009b",
    "RLO (bidi override)": "\u202e",
    "RLI (bidi isolate)": "\u2067",
    "zero width space": "\u200b",
    "BOM": "\ufeff",
    "soft hyphen": "\u00ad",
}


def _yaml_string(value: str) -> str:
    """A double-quoted YAML scalar that survives any character (escaped as \\uXXXX)."""
    return '"' + "".join(ch if ch.isalnum() or ch in " .@/-_" else f"\\u{ord(ch):04x}" for ch in value) + '"'


@pytest.mark.parametrize(
    ("key", "template", "marker", "field"),
    [
        (
            "full_name",
            BASE.replace("login: alice", "login: alice\n    full_name: {v}"),
            "full_name",
            "users.0.full_name",
        ),
        (
            "greeting",
            BASE + "dovecot:\n  extra:\n    login_greeting: {v}\n",
            "login_gr",
            "dovecot.extra.login_greeting",
        ),
        ("postfix", BASE + "postfix:\n  extra:\n    smtpd_banner: {v}\n", "smtpd_banner", "postfix.extra.smtpd_banner"),
        (
            "reject text",
            BASE + "sender_access:\n  - {pattern: spam.example, action: REJECT, text: {v}}\n",
            "pattern",
            "sender_access.0.text",
        ),
        ("subject", BASE + "tls:\n  generate:\n    subject: {v}\n", "subject", "tls.generate.subject"),
        (
            "secret file",
            BASE.replace("{env: MAILPROV_ALICE_PASSWORD}", "{file: {v}}"),
            "password",
            "users.0.password.file",
        ),
    ],
)
@pytest.mark.parametrize("char", list(UNSAFE.values()), ids=list(UNSAFE))
def test_unsafe_characters_are_refused_everywhere(key: str, template: str, marker: str, field: str, char: str) -> None:
    base = "/C=US/CN=mail" if key == "subject" else ("secret.txt" if key == "secret file" else "Mail ready")
    text = template.replace("{v}", _yaml_string(base[:3] + char + base[3:]))
    message = assert_refused_at(text, marker, field, f"U+{ord(char):04X}")
    assert char not in message  # named, never printed


def test_a_lone_surrogate_is_refused_not_a_traceback() -> None:
    text = BASE.replace("login: alice", 'login: alice\n    full_name: "Al\\ud800ice"')
    assert_refused_at(text, "full_name", "users.0.full_name", "U+D800")


# --- 13. refusals say what to write instead ---------------------------------------------------------------


def test_a_scalar_alias_says_to_write_a_list() -> None:
    message = assert_refused_at(BASE + "  postmaster: alice\n", "postmaster", "aliases.postmaster", "write `[alice]`")
    assert "valid tuple" not in message


def test_an_unquoted_numeric_action_is_accepted() -> None:
    site = parse_site(BASE + "sender_access:\n  - {pattern: spam.example, action: 550, text: go away}\n")
    assert site.sender_access[0].line() == "spam.example 550 go away"


def test_a_bad_action_is_one_message_that_lists_the_choices() -> None:
    message = assert_refused_at(
        BASE + "sender_access:\n  - {pattern: spam.example, action: 250}\n",
        "action",
        "sender_access.0.action",
        "OK, REJECT, DUNNO, DISCARD, HOLD or a reply code such as 550",
    )
    assert message.count("sender_access.0.action") == 1
    assert "Input should be" not in message


def test_a_leading_dot_pattern_says_to_drop_the_dot() -> None:
    message = assert_refused_at(
        BASE + "sender_access:\n  - {pattern: .spam.example, action: REJECT}\n",
        "pattern",
        "sender_access.0.pattern",
        "no leading dot: write `spam.example`",
    )
    assert not re.search(r"\^\(|\[a-z0-9\]", message), "the raw regular expression is shown"


def test_the_example_site_still_validates(example_path: Path) -> None:
    from mailprov.config.loader import load_site

    assert isinstance(load_site(example_path), Site)


# --- 8. YAML: alias bombs, cycles and deep nesting are YAML errors with a line -----------------------------


def alias_bomb() -> str:
    """The fuzzer's 650-byte bomb: 9 levels of 9 aliases, a billion strings once expanded."""
    lines = [
        "domain: example.org",
        "hosts:",
        "  - name: mail.example.org",
        "x0: &a0 [" + ",".join(['"lollollollollol"'] * 9) + "]",
    ]
    lines += [f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def _in_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run code in a child limited to 1 GiB and 30 s (the unfixed loader would take the test run down)."""
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
    try:
        return subprocess.run(
            [sys.executable, "-c", limit + code, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd="/",  # import the installed mailprov, not a checkout in the current directory
        )
    except subprocess.TimeoutExpired:
        pytest.fail("still loading after 30 s")


def test_an_alias_bomb_is_refused_quickly_with_a_line(tmp_path: Path) -> None:
    text = alias_bomb()
    assert 500 < len(text.encode()) < 800
    code = (
        "import sys, time\n"
        "from mailprov.config.loader import parse_site\n"
        "from mailprov.errors import ConfigError\n"
        "started = time.perf_counter()\n"
        "try:\n"
        "    parse_site(sys.argv[1], 'site.yaml')\n"
        "except ConfigError as exc:\n"
        "    print(f'{time.perf_counter() - started:.3f}')\n"
        "    print(exc)\n"
    )
    done = _in_child(code, text)
    assert done.returncode == 0, done.stderr[-800:]
    elapsed, message = done.stdout.split("\n", 1)
    assert re.search(r"^site\.yaml:\d+  YAML: the aliases \(`\*name`\) expand to more than", message), message
    assert float(elapsed) < 0.5, elapsed


def test_an_alias_bomb_is_refused_by_the_cli(tmp_path: Path) -> None:
    site = tmp_path / "bomb.yaml"
    site.write_text(alias_bomb(), encoding="utf-8")
    done = _in_child("from mailprov.cli import main; main()", "validate", str(site))
    assert done.returncode == 2, done.stderr[-800:]
    assert f"{site}:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (BASE + "x: &a [1, *a]\n", 9, "inside its own anchor (a cycle)"),
        (BASE + "x: &a {k: *a}\n", 9, "inside its own anchor (a cycle)"),
        (BASE + "x: " + "[" * 500 + "]" * 500 + "\n", 9, "nested more than"),
        (BASE + "x:\n" + "".join("  " * i + "- \n" for i in range(1, 60)), 10, "nested more than"),
    ],
    ids=["recursive sequence", "recursive mapping", "500 [", "deep block list"],
)
def test_cycles_and_deep_nesting_are_yaml_errors_with_a_line(text: str, line: int, needle: str) -> None:
    message = refusal(text)
    assert message.startswith("site.yaml:") and "  YAML: " in message and needle in message, message
    assert int(message.split(":")[1].split()[0]) >= line


def test_a_few_anchors_for_shared_lists_still_work() -> None:
    text = BASE.replace("aliases:\n  root: [alice]", "aliases:\n  root: &people [alice]\n  abuse: *people")
    site = parse_site(text)
    assert site.aliases["abuse"] == ("alice",)


# --- 10. refusals found at render time name the site's file, line and field ---------------------------


def test_a_dialect_refusal_names_file_line_field_and_version(tmp_path: Path) -> None:
    from mailprov.config.loader import locate

    path = tmp_path / "site.yaml"
    path.write_text(BASE + "postfix:\n  maillog_file: /var/log/postfix.log\n", encoding="utf-8")
    site = parse_site(path.read_text(), str(path))
    with pytest.raises(ConfigError) as info:
        render_host(site, site.hosts[0], PRESETS["centos7"])
    placed = str(locate(info.value, path))
    assert f"{path}:10  postfix.maillog_file: needs Postfix 3.4 or later; this host has 2." in placed


def test_locate_uses_an_explicit_field(tmp_path: Path) -> None:
    from mailprov.config.loader import locate

    path = tmp_path / "site.yaml"
    path.write_text(BASE, encoding="utf-8")
    placed = str(locate(ConfigError("no such thing on this host", field="users.0.login"), path))
    assert f"{path}:5  users.0.login: no such thing on this host" in placed


def test_the_render_command_places_a_dialect_refusal(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mailprov.cli import main

    path = tmp_path / "site.yaml"
    path.write_text(BASE + "postfix:\n  maillog_file: /var/log/postfix.log\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["render", str(path), "--facts", "centos7", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert f"{path}:10  postfix.maillog_file: needs Postfix 3.4" in result.output


# --- 12. one postmaster line; no raw escape sequences in messages ---------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        BASE.replace("login: alice", "login: alice\n    aliases: [postmaster]"),
        BASE + "  postmaster: [alice]\n",
    ],
    ids=["user alias", "site alias"],
)
def test_postmaster_is_defined_once(text: str) -> None:
    site = parse_site(text)
    aliases = render_host(site, site.hosts[0], PRESETS["debian12"]).file("/etc/aliases").text()
    lines = [ln for ln in aliases.splitlines() if ln.startswith("postmaster:")]
    assert lines == ["postmaster: alice"], aliases


def test_postmaster_goes_to_root_when_nobody_else_has_it() -> None:
    site = parse_site(BASE)
    aliases = render_host(site, site.hosts[0], PRESETS["debian12"]).file("/etc/aliases").text()
    assert [ln for ln in aliases.splitlines() if ln.startswith("postmaster:")] == ["postmaster: root"]


@pytest.mark.parametrize(
    "text",
    [
        BASE + 'tls:\n  files: {cert: "mail\\e]0;owned\\a.pem", key: mail.key}\n',
        BASE + 'tls:\n  files: {cert: mail.pem, key: "mail\\e[2J\\u202e.key"}\n',
        BASE.replace("{env: MAILPROV_ALICE_PASSWORD}", '{file: "pw\\e[31m"}'),
    ],
    ids=["OSC in tls.files.cert", "CSI + RLO in tls.files.key", "CSI in a secret file"],
)
def test_messages_never_echo_raw_escape_or_bidi_characters(tmp_path: Path, text: str) -> None:
    """The fuzzer's case: a path with an escape sequence was accepted, and echoed raw by render."""
    from click.testing import CliRunner

    from mailprov.cli import main

    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["render", str(path), "--facts", "debian12", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output, repr(result.output)
    assert re.search(r"site\.yaml:\d+  (tls\.files\.(cert|key)|users\.0\.password\.file): ", result.output)


def test_every_mailprov_error_is_printable() -> None:
    from mailprov.errors import CommandError, TransportError

    assert "\x1b" not in str(TransportError("host \x1b]0;owned\x07 said no"))
    error = CommandError("h", "cmd", 1, "line one\nred \x1b[31m\u2028")
    assert "\x1b" not in str(error) and "\u2028" not in str(error) and "line one\n" in str(error)


# --- 10. an unset secret variable is reported at validate, with file:line ---------------------------------


def test_validate_reports_an_unset_secret_variable_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from mailprov.cli import main

    monkeypatch.delenv("MAILPROV_ALICE_PASSWORD", raising=False)
    path = tmp_path / "site.yaml"
    path.write_text(BASE, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output  # the file is valid; the variable may be set where it runs
    assert f"{path}:6  users.0.password: secret environment variable MAILPROV_ALICE_PASSWORD is not set" in (
        result.output
    )


def test_require_secrets_refuses_before_connecting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailprov.config.loader import require_secrets

    monkeypatch.delenv("MAILPROV_ALICE_PASSWORD", raising=False)
    path = tmp_path / "site.yaml"
    path.write_text(BASE.replace("aliases:", "  - login: bob\n    password: {file: nope.txt}\naliases:"))
    site = parse_site(path.read_text(), str(path))
    with pytest.raises(ConfigError) as info:
        require_secrets(site, path)
    message = str(info.value)
    assert f"{path}:6  users.0.password: secret environment variable" in message
    assert f"{path}:8  users.1.password: secret file" in message and "cannot be read" in message
    monkeypatch.setenv("MAILPROV_ALICE_PASSWORD", "x")
    (tmp_path / "nope.txt").write_text("pw\n")
    require_secrets(site, path)


# --- found while writing the fuzzer: an extra parameter overriding one mailprov manages ------------------


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("postfix", "smtpd_relay_restrictions", "permit"),  # an open relay no site rule ever saw
        ("postfix", "smtpd_recipient_restrictions", "permit"),
        ("postfix", "mynetworks", "0.0.0.0/0"),
        ("postfix", "smtpd_tls_security_level", "none"),
        ("dovecot", "disable_plaintext_auth", "no"),
        ("dovecot", "ssl", "no"),
        ("dovecot", "auth_mechanisms", "plain anonymous"),
    ],
)
def test_extra_cannot_override_a_managed_parameter(section: str, name: str, value: str) -> None:
    text = BASE + f"{section}:\n  extra:\n    {name}: {value}\n"
    assert_refused_at(text, name, f"{section}.extra.{name}", f"mailprov writes {name} itself")


def test_extra_still_takes_other_parameters() -> None:
    site = parse_site(BASE + "postfix:\n  extra:\n    smtpd_banner: $myhostname ESMTP\n")
    main_cf = render_host(site, site.hosts[0], PRESETS["debian12"]).file("/etc/postfix/main.cf").text()
    assert "\nsmtpd_banner = $myhostname ESMTP\n" in main_cf


# --- 7, the host side: parsers of host output split on "\n" only ----------------------------------------


def test_verify_reads_maildir_file_names_split_on_newlines_only() -> None:
    from mailprov.transport.base import CommandResult
    from mailprov.verify.hostchecks import find_in_maildir

    class Host:
        def run_script(self, script: str, **kwargs: object) -> CommandResult:
            return CommandResult("sh -s", 0, "/home/a/Maildir/new/1\u2028x\n/home/a/Maildir/cur/2\x85y\n", "")

    found = find_in_maildir(Host(), "a", "token")  # type: ignore[arg-type]
    assert found == ["/home/a/Maildir/new/1\u2028x", "/home/a/Maildir/cur/2\x85y"]


def test_the_fact_probe_reads_an_existing_account_with_a_line_separator_in_its_gecos() -> None:
    from mailprov.resources.accounts import parse_account

    account = parse_account("alice", "alice:x:1001:1001:Al\u2028ice:/home/alice:/bin/sh\nalice:$6$x:1::::::\n")
    assert account is not None and account.home == "/home/alice" and account.uid == 1001


def test_a_refusal_is_one_line_per_problem_whatever_the_value() -> None:
    """Found by the long fuzz run: a scalar alias holding newlines split its problem over three lines."""
    message = refusal(BASE + '  postmaster: "\\n\\ninjected = yes"\n')
    assert message.count("\n") == 1, message
    assert "site.yaml:9  aliases.postmaster: an alias lists its targets: write `[TARGET]`" in message
