"""`cmake --install`: the unit names the binary and the config file that the
install put there, for --prefix /usr (config in /etc/funneld) and /usr/local
(config in /usr/local/etc/funneld); systemd-analyze verify accepts the unit;
the bash completion of funnelctl completes commands, options and the stage
and persona names of the definition in use."""

import os
import re
import shlex
import shutil
import subprocess

import pytest

BUILD = os.environ.get("FUNNELD_BUILD_DIR", "build")
SRC = os.environ.get("FUNNELD_SOURCE_DIR", ".")


def _install(prefix, destdir=None):
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    if destdir is not None:
        env["DESTDIR"] = str(destdir)
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _exec_start(unit_text):
    m = re.search(r"^ExecStart=(.*)$", unit_text, re.M)
    assert m, unit_text
    return shlex.split(m.group(1))


@pytest.mark.parametrize("prefix,config,unitdir", [
    ("/usr", "/etc/funneld/funneld.yaml", "/usr/lib/systemd/system"),
    ("/usr/local", "/usr/local/etc/funneld/funneld.yaml", "/usr/local/lib/systemd/system"),
])
def test_the_unit_reads_the_config_that_was_installed(tmp_path, prefix, config, unitdir):
    root = tmp_path / "root"
    _install(prefix, root)
    unit = (root / unitdir.lstrip("/") / "funneld.service").read_text()
    argv = _exec_start(unit)
    assert argv[0] == prefix + "/bin/funneld", unit
    assert argv[1:3] == ["--config", config], unit
    for path in (argv[0], config, prefix + "/bin/funnelctl",
                 prefix + "/share/funneld/aida.yaml",
                 prefix + "/share/man/man8/funneld.8.gz",
                 prefix + "/share/bash-completion/completions/funnelctl"):
        assert (root / path.lstrip("/")).is_file(), path
    assert "/usr/etc" not in unit and "@" not in unit.replace("@system-service", ""), unit
    # The installed config names the installed definition, and loads.
    conf = (root / config.lstrip("/")).read_text()
    assert prefix + "/share/funneld/aida.yaml" in conf and "@" not in conf, conf
    r = subprocess.run([str(root / argv[0].lstrip("/")), "--config",
                        str(root / config.lstrip("/")), "--dump-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "state_dir: \"/var/lib/funneld\"" in r.stdout, r.stdout


def test_an_edited_config_is_kept_by_a_second_install(tmp_path):
    root = tmp_path / "root"
    _install("/usr", root)
    conf = root / "etc/funneld/funneld.yaml"
    conf.write_text("log_level: debug\n")
    out = _install("/usr", root)
    assert conf.read_text() == "log_level: debug\n"
    assert "Kept (exists)" in out, out


def test_systemd_analyze_verify_accepts_the_installed_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze not found: install Debian's package systemd "
                    "(tools/quickstart.sh does)")
    # A real prefix (no DESTDIR): verify checks that ExecStart's binary
    # exists and that the man pages of Documentation= are there.
    prefix = tmp_path / "usr"
    _install(str(prefix))
    unit = prefix / "lib/systemd/system/funneld.service"
    env = dict(os.environ, MANPATH=str(prefix / "share/man"))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stdout + r.stderr

    # The command line it runs works: the config it names loads.
    argv = _exec_start(unit.read_text())
    assert argv[0] == str(prefix / "bin/funneld")
    argv = [a.replace("${STATE_DIRECTORY}", str(tmp_path / "state")) for a in argv]
    r = subprocess.run(argv + ["--dump-config"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert 'state_dir: "%s"' % (tmp_path / "state") in r.stdout, r.stdout

    # A unit that systemd would refuse is refused by the same check.
    bad = tmp_path / "funneld.service"
    bad.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    r = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert "notifyy" in r.stderr, r.stderr


# -- bash completion -------------------------------------------------------

def _complete(completion, words, env=None):
    """Run the completion function on COMP_WORDS (the last one being
    completed); returns the candidates."""
    script = ('source %s || exit 3\n'
              'COMP_WORDS=(%s); COMP_CWORD=%d\n'
              '_funnelctl\n'
              'printf "%%s\\n" "${COMPREPLY[@]}"\n'
              % (shlex.quote(str(completion)), " ".join(shlex.quote(w) for w in words),
                 len(words) - 1))
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, **(env or {})))
    assert r.returncode == 0, r.stderr
    return [l for l in r.stdout.splitlines() if l]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("inst") / "usr"
    _install(str(prefix))
    return prefix


def test_completion_is_registered_for_funnelctl(installed):
    completion = installed / "share/bash-completion/completions/funnelctl"
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                        "source %s && complete -p funnelctl" % shlex.quote(str(completion))],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "complete -F _funnelctl funnelctl", r.stdout


def test_completion_of_commands_and_options(installed):
    c = installed / "share/bash-completion/completions/funnelctl"
    ctl = os.environ.get("FUNNELCTL_BIN", "funnelctl")
    usage = subprocess.run([ctl, "--help"], capture_output=True, text=True).stdout
    commands = re.findall(r"^  ([a-z]+)  ", usage.split("Commands:")[1].split("\n\n")[0],
                          re.M)
    assert len(commands) >= 8, usage
    assert _complete(c, ["funnelctl", ""]) == commands
    assert _complete(c, ["funnelctl", "fr"]) == ["friction"]
    assert _complete(c, ["funnelctl", "--json", "--query", "tcp://x:1", "st"]) == ["stats"]
    # Every option each command's --help documents is completed.
    for cmd in commands:
        text = subprocess.run([ctl, cmd, "--help"], capture_output=True, text=True).stdout
        documented = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text))
        offered = set(_complete(c, ["funnelctl", cmd, "--"]))
        assert documented <= offered, (cmd, documented - offered)
    assert _complete(c, ["funnelctl", "send", "--source", ""]) == ["marketing", "sales"]
    assert _complete(c, ["funnelctl", "funnel", "--by", "c"]) == ["cohort"]
    assert _complete(c, ["funnelctl", "friction", "--by", ""]) == ["persona", "source", "cohort"]
    assert _complete(c, ["funnelctl", "definition", ""]) == ["check", "diff", "promote"]
    assert "friction.stall" in _complete(c, ["funnelctl", "watch", "friction."])


def test_completion_names_come_from_the_definition_in_use(installed, tmp_path):
    c = installed / "share/bash-completion/completions/funnelctl"
    # The installed config names no definition: the built-in AIDA one.
    assert _complete(c, ["funnelctl", "friction", "--stage", ""]) == [
        "awareness", "interest", "decision", "action", "lost"]
    assert _complete(c, ["funnelctl", "funnel", "--persona", "e"]) == [
        "evaluator", "event_goer"]
    assert "demo_request" in _complete(c, ["funnelctl", "send", "--type", "d"])

    # The config names another definition: its names.
    mine = tmp_path / "mine.yaml"
    mine.write_text((open(os.path.join(SRC, "handlers/default.yaml")).read()
                     .replace("name: aida", "name: mine")
                     .replace("{name: decision,", "{name: evaluation,")
                     .replace("to: decision", "to: evaluation")
                     .replace("name: event_goer", "name: webinar_fan")))
    ctl = os.environ.get("FUNNELCTL_BIN", "funnelctl")
    r = subprocess.run([ctl, "definition", "check", str(mine)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    conf = installed / "etc/funneld/funneld.yaml"
    saved = conf.read_text()
    try:
        edited = re.sub(r"^definition:.*$", "definition: %s" % mine, saved, flags=re.M)
        assert edited != saved
        conf.write_text(edited)
        assert _complete(c, ["funnelctl", "friction", "--leads", "--stage", ""]) == [
            "awareness", "interest", "evaluation", "action", "lost"]
        assert _complete(c, ["funnelctl", "funnel", "--persona", "w"]) == ["webinar_fan"]
    finally:
        conf.write_text(saved)
    # FUNNELCTL_DEFINITION wins.
    assert _complete(c, ["funnelctl", "friction", "--stage", "ev"],
                     env={"FUNNELCTL_DEFINITION": str(mine)}) == ["evaluation"]
